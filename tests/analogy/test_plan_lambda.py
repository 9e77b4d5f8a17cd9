"""λ selection arithmetic and the fine-tuning plan (which jobs exist, which coincide)."""

from __future__ import annotations

import pytest

from asr_analogy.analogy.config import validate_recipe_dict
from asr_analogy.analogy.lambdas import choose_lambda, mean_curve, select_lambda, sweep_lambda
from asr_analogy.analogy.plan import build_plan, resolve_domains
from asr_analogy.errors import ConfigError

COUNTS = {"vm": 10, "conf": 8, "gen": 12, "dig": 6}


def cfg(**over):
    base = {"name": "p", "domains": {"targets": ["vm"]}, "ensemble": {"enabled": False},
            "lambda": {"mode": "pseudo_target", "pseudo_targets": ["gen"]}}
    for k, v in over.items():
        base[k] = v
    return validate_recipe_dict(base, "test")


def test_choose_lambda_minimum_and_ties_to_smallest():
    assert choose_lambda([0.0, 0.2, 0.4, 0.6], [0.30, 0.25, 0.25, 0.40]) == 0.2
    assert choose_lambda([0.0, 0.5], [0.1, 0.1]) == 0.0  # flat: stay at θ_C
    with pytest.raises(ConfigError):
        choose_lambda([0.0, 0.5], [0.1])


def test_mean_curve_by_hand():
    m = mean_curve([{"lambdas": [0, 1], "wer": [0.2, 0.4], "cer": [0.1, 0.1]},
                    {"lambdas": [0, 1], "wer": [0.4, 0.0], "cer": [0.3, 0.1]}])
    assert m == {"lambdas": [0, 1], "wer": pytest.approx([0.3, 0.2]), "cer": pytest.approx([0.2, 0.1])}
    with pytest.raises(ConfigError, match="different grids"):
        mean_curve([{"lambdas": [0, 1], "wer": [0, 0]}, {"lambdas": [0, 2], "wer": [0, 0]}])


def test_select_lambda_modes():
    assert select_lambda("fixed", value=0.2) == (0.2, "fixed λ = 0.2")
    lam, how = select_lambda("pseudo_target", pseudo_target_curves=[{"lambdas": [0, 0.5, 1], "wer": [0.3, 0.2, 0.25]}])
    assert lam == 0.5 and "pseudo-target" in how
    lam, how = select_lambda("oracle", oracle_curve={"lambdas": [0, 1], "wer": [0.5, 0.1]})
    assert lam == 1.0 and how.startswith("ORACLE")


def test_sweep_lambda_calls_set_then_score():
    state = {}
    curve = sweep_lambda(lambda l: state.update(lam=l), lambda: (state["lam"] - 0.4) ** 2, [0.0, 0.4, 1.0])
    assert curve["wer"] == pytest.approx([0.16, 0.0, 0.36])
    assert choose_lambda(curve["lambdas"], curve["wer"]) == 0.4


def test_holdout_makes_pseudo_target_models_the_main_ones():
    plan = build_plan(cfg(), COUNTS)
    (tp,) = plan.targets
    assert tp.main.sources == ("conf", "dig")  # gen held out of the sources, vm is the target
    (ps,) = tp.pseudo
    assert ps.target == "gen" and (ps.A, ps.B, ps.S) == (tp.main.A, tp.main.B, tp.main.S)
    assert ps.C != tp.main.C
    roles = sorted(j.role for j in plan.jobs.values())
    assert roles == ["A", "B", "C", "C", "S", "UB"]
    # every job comes after the job it starts from
    order = list(plan.jobs)
    for k, j in plan.jobs.items():
        if j.init != "base":
            assert order.index(j.init) < order.index(k)


def test_without_holdout_pseudo_target_gets_its_own_models():
    plan = build_plan(cfg(**{"lambda": {"mode": "pseudo_target", "pseudo_targets": ["gen"],
                                        "holdout_from_sources": False}}), COUNTS)
    (tp,) = plan.targets
    assert tp.main.sources == ("conf", "dig", "gen")
    (ps,) = tp.pseudo
    assert ps.sources == ("conf", "dig") and ps.A != tp.main.A
    assert len(plan.jobs) == 9  # A, B, S, C, UB for the target + A′, B′, S′, C′ for the pseudo-target
    assert sorted(j.role for j in plan.jobs.values()).count("A") == 2


def test_leave_one_out_and_shared_source_pools():
    two = {"targets": ["vm", "conf"]}
    shared = build_plan(cfg(domains={**two, "source_pool": "shared"}, **{"lambda": {"mode": "fixed"}}), COUNTS)
    assert [tp.main.sources for tp in shared.targets] == [("dig", "gen"), ("dig", "gen")]
    assert shared.targets[0].main.A == shared.targets[1].main.A  # trained once
    loo = build_plan(cfg(domains={**two, "source_pool": "leave_one_out"}, **{"lambda": {"mode": "fixed"}}), COUNTS)
    assert [tp.main.sources for tp in loo.targets] == [("conf", "dig", "gen"), ("dig", "gen", "vm")]


def test_ensembles_add_pairs():
    by_voice = build_plan(cfg(ensemble={"by": "voice"}), COUNTS, voices=["piper:joe", "hibari:heart"])
    pairs = by_voice.targets[0].main.ensemble
    assert [p[0] for p in pairs] == ["voice piper:joe", "voice hibari:heart"]
    assert all(b == by_voice.targets[0].main.B for _, _, b in pairs)
    by_domain = build_plan(cfg(ensemble={"by": "domain"}), COUNTS)
    assert [p[0] for p in by_domain.targets[0].main.ensemble] == ["domain conf", "domain dig"]
    with pytest.raises(ConfigError, match="two TTS voices"):
        build_plan(cfg(ensemble={"by": "voice"}), COUNTS, voices=["piper:joe"])


def test_c_from_base_and_select_best_use_source_dev_only():
    plan = build_plan(cfg(finetune={"c_init": "base", "select_best": True}), COUNTS)
    tp = plan.targets[0]
    assert plan.jobs[tp.main.C].init == "base" and tp.main.S is None
    for j in plan.jobs.values():
        assert all(d.source == "real" and d.split == "dev" and "vm" not in d.domains for d in j.dev)


def test_unknown_domains_are_reported():
    with pytest.raises(ConfigError, match=r"domains.targets \['nope'\] not in the corpus"):
        resolve_domains(cfg(domains={"targets": ["nope"]}), COUNTS)
    with pytest.raises(ConfigError, match="no source domain left"):
        resolve_domains(cfg(domains={"targets": ["vm"], "sources": ["gen"]}), COUNTS)


def test_schedules_source_jobs_and_target_stage():
    plan = build_plan(cfg(finetune={"max_steps": 40, "learning_rate": 1e-4,
                                    "target_stage": {"lr_scale": 0.1, "max_steps": 10}}), COUNTS)
    tp = plan.targets[0]
    for k in (tp.main.A, tp.main.B, tp.main.S):
        assert plan.jobs[k].max_steps == 40 and plan.jobs[k].lr_scale == 1.0
    for k in (tp.main.C, tp.main.UB, tp.pseudo[0].C):
        assert plan.jobs[k].max_steps == 10 and plan.jobs[k].lr_scale == 0.1
        assert plan.jobs[k].init == tp.main.S
    assert plan.jobs[tp.main.UB].consumer == "finetune/upper_bound" and plan.jobs[tp.main.C].consumer == "finetune/C"


def test_the_pick_can_be_an_ensemble_and_best_then_decodes_that_c_with_the_ensemble_vector():
    from asr_analogy.analogy.plan import Suite
    from asr_analogy.analogy.stages.select_lambda import _best
    from asr_analogy.analogy.systems import has_choice, planned, systems_for, table_order

    c = cfg(finetune={"c_init": "source", "baselines": ["tts"]}, ensemble={"enabled": True, "by": "domain"})
    suite = Suite("vm", ("conf", "dig"), "A", "B", "C", "S", None, [("domain conf", "Ac", "Bc")],
                  {"paper": "C", "tts": "Ctts"})
    variants = {"paper": {"single": {"scale": 0.2, "pseudo_wer": 0.30}, "ensemble": {"scale": 0.4, "pseudo_wer": 0.25}},
                "tts": {"single": {"scale": 0.6, "pseudo_wer": 0.28}, "ensemble": {"scale": 1.0, "pseudo_wer": 0.21}}}
    best = _best(None, variants)
    assert best == {"variant": "tts", "option": "ensemble", "scale": 1.0, "pseudo_wer": 0.21}
    selection = {"value": 0.2, "value_ensemble": 0.4, "variants": variants, "best": best}
    systems = {s["system"]: s for s in systems_for(c, suite, selection, {"syn2real": "v", "ensemble": "e"})}
    assert systems["ensemble"] == {"system": "ensemble", "model": "C", "vector": "e", "lambda": 0.4}
    assert systems["C_tts_syn2real_ensemble"] == {"system": "C_tts_syn2real_ensemble", "model": "Ctts",
                                                  "vector": "e", "lambda": 1.0}
    assert systems["best"] == {**systems["C_tts_syn2real_ensemble"], "system": "best",
                               "picked": "C_tts_syn2real_ensemble"}
    assert table_order(c).index("C_tts_syn2real_ensemble") < table_order(c).index("best")
    # one C, no options: the ensemble alone makes a choice; without it there is none
    assert has_choice(cfg(ensemble={"enabled": True, "by": "domain"})) and not has_choice(cfg())
    # only the pseudo-target picks: with a fixed λ there is no best to plan
    assert "best" in planned(c)
    assert "best" not in planned(cfg(ensemble={"enabled": True, "by": "domain"}, **{"lambda": {"mode": "fixed"}}))

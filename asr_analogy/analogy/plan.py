"""What a syn2real experiment trains: domains per target, and the fine-tuning jobs (A, B, S, C, upper bound).

For a target domain t with source domains Src (see ``DomainsConfig.source_pool``):

| job | initialised from                 | trained on                                   | role                          |
|-----|----------------------------------|----------------------------------------------|-------------------------------|
| A   | base                             | Src synthetic, train                         | θ_A of the analogy            |
| B   | base                             | Src real, train                              | θ_B of the analogy            |
| S   | base                             | Src real + synthetic, train                  | source stage of C (paper)     |
| C   | S (c_init source) or base        | t synthetic, train (lr × lr_scale after S)   | θ_C of the analogy            |
| UB  | like C                           | t *real*, train                              | upper bound (reference only)  |
| C_tts | base                           | t synthetic, train (target_stage's steps)    | baseline ``tts``              |
| C_paper | S                            | t synthetic, train (lr × lr_scale)           | baseline ``paper`` (= C of c_init source) |
| C_multi | base                         | Src real + Src synthetic + t synthetic, train (max_steps + target_stage's steps) | baseline ``multi`` |

Ensembles add one pair per TTS voice (A_v: Src synthetic of voice v; B) or per source domain (A_d, B_d).
Pseudo-targets p (held-out source domains, for λ selection) get the same suite built on Src without p; with
``holdout_from_sources`` Src excludes p for the real target too, so the pseudo-target's A′/B′/S′ *are* A/B/S.

A job is identified by what it computes (its initialisation, data and schedule), not by its name, so jobs that
coincide (A′ = A, the shared A/B/S of several targets) are trained once.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field

from asr_analogy.errors import ConfigError

from asr_analogy.analogy.config import RecipeConfig


@dataclass(frozen=True)
class DataSpec:
    """A slice of the recipe's data: real or synthetic utterances of some domains and one split."""

    source: str  # "real" | "synthetic"
    domains: tuple[str, ...]
    split: str = "train"
    voices: tuple[str, ...] | None = None  # synthetic only: keep these voices

    def describe(self) -> str:
        v = f", voice {'/'.join(self.voices)}" if self.voices else ""
        return f"{self.source} {'+'.join(self.domains)} ({self.split}{v})"


@dataclass(frozen=True)
class Job:
    """One fine-tune. ``init`` is "base" or the key of another job."""

    role: str  # A, B, S, C, UB, A_voice, A_domain, B_domain, C_tts, C_multi
    init: str
    train: tuple[DataSpec, ...]
    lr_scale: float = 1.0
    max_steps: int | None = None
    num_epochs: float | None = None
    dev: tuple[DataSpec, ...] = ()  # best-checkpoint selection data (source real dev), may be empty

    @property
    def key(self) -> str:
        """Content hash: equal jobs (same init, data, schedule) share one model."""
        blob = json.dumps(
            {
                "init": self.init,
                "train": [asdict(d) for d in self.train],
                "dev": [asdict(d) for d in self.dev],
                "lr_scale": self.lr_scale,
                "max_steps": self.max_steps,
                "num_epochs": self.num_epochs,
                "upper_bound": self.role == "UB",
            },
            sort_keys=True,
        )
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    @property
    def dirname(self) -> str:
        return f"{self.role}-{self.key}"

    @property
    def consumer(self) -> str:
        """Name under which the job reads data (the leakage guard lets only the upper bound see target real)."""
        return "finetune/upper_bound" if self.role == "UB" else f"finetune/{self.role}"

    def describe(self, jobs: dict[str, "Job"]) -> str:
        init = "base" if self.init == "base" else jobs[self.init].dirname
        lr = f", lr × {self.lr_scale:g}" if self.lr_scale != 1 else ""
        steps = f", {self.max_steps} steps" if self.max_steps else ""
        return f"{self.dirname}: {init} → {' + '.join(d.describe() for d in self.train)}{lr}{steps}"


@dataclass
class Suite:
    """The models of one analogy for one (stand-in) target: θ_C + λ·combine(θ_B_i − θ_A_i)."""

    target: str
    sources: tuple[str, ...]
    A: str
    B: str
    C: str
    S: str | None = None
    UB: str | None = None
    ensemble: list[tuple[str, str, str]] = field(default_factory=list)  # (label, A_i key, B_i key)
    variants: dict[str, str] = field(default_factory=dict)  # every C system: tts / paper / multi → job key


@dataclass
class TargetPlan:
    target: str
    main: Suite
    pseudo: list[Suite]  # one per pseudo-target domain (their `target` is the held-out source domain)


@dataclass
class Plan:
    jobs: dict[str, Job]  # key → job, in an order where every job comes after its init
    targets: list[TargetPlan]
    voices: list[str] | None

    def ordered_jobs(self) -> list[Job]:
        return list(self.jobs.values())


def resolve_domains(cfg: RecipeConfig, counts: dict[str, int]) -> dict[str, dict]:
    """Per target: its source domains and pseudo-targets, from the corpus' train counts per domain.

    Returns ``{target: {"sources": [...], "pseudo": [...], "pseudo_sources": {p: [...]}}}``. Raises
    ``ConfigError`` for domains missing from the corpus or an empty source set.
    """
    d = cfg.domains
    lam = cfg.lambda_
    known = set(counts)
    for what, names in (("domains.targets", d.targets), ("domains.sources", d.sources or []),
                        ("domains.exclude", d.exclude), ("lambda.pseudo_targets", lam.pseudo_targets or [])):
        missing = [n for n in names if n not in known]
        if missing:
            raise ConfigError(
                f"{cfg.source_path or 'recipe'}: {what} {missing} not in the corpus (domains: {', '.join(sorted(known))})"
            )
    out = {}
    for t in d.targets:
        if d.sources is not None:
            src = list(d.sources)
        elif d.source_pool == "shared":
            src = [x for x in sorted(known) if x not in d.targets and x not in d.exclude]
        else:
            src = [x for x in sorted(known) if x != t and x not in d.exclude]
        src = [x for x in src if counts.get(x, 0) > 0]
        pseudo: list[str] = []
        if lam.mode == "pseudo_target":
            if lam.pseudo_targets:
                pseudo = [p for p in lam.pseudo_targets if p != t]
            else:
                pseudo = [max(src, key=lambda x: (counts.get(x, 0), x))] if src else []
            bad = [p for p in pseudo if p not in src]
            if bad:
                raise ConfigError(f"{cfg.source_path or 'recipe'}: lambda.pseudo_targets {bad} are not source domains of target '{t}'")
        if lam.holdout_from_sources and pseudo:
            main_src = [x for x in src if x not in pseudo]
            pseudo_src = {p: main_src for p in pseudo}
        else:
            main_src = src
            pseudo_src = {p: [x for x in src if x != p] for p in pseudo}
        for label, s in [(t, main_src)] + list(pseudo_src.items()):
            if not s:
                raise ConfigError(f"{cfg.source_path or 'recipe'}: no source domain left for '{label}' (sources {src}, pseudo-targets {pseudo})")
        out[t] = {"sources": main_src, "pseudo": pseudo, "pseudo_sources": pseudo_src}
    return out


def build_plan(cfg: RecipeConfig, counts: dict[str, int], voices: list[str] | None = None) -> Plan:
    """All fine-tuning jobs of the experiment (deduplicated) and, per target, which models form its analogy.

    ``counts``: train utterances per corpus domain. ``voices``: the TTS voices present in the synthetic data
    (needed for ``ensemble.by: voice``).
    """
    ft = cfg.finetune
    ens = cfg.ensemble
    jobs: dict[str, Job] = {}

    def add(job: Job) -> str:
        jobs.setdefault(job.key, job)
        return job.key

    def dev_for(src: tuple[str, ...]) -> tuple[DataSpec, ...]:
        return (DataSpec("real", src, "dev"),) if ft.select_best else ()

    ts = ft.target_stage
    sched = {"max_steps": ft.max_steps, "num_epochs": ft.num_epochs}  # schedule of the jobs started from the base
    tgt_steps = ts.max_steps if ts.max_steps is not None else ft.max_steps
    tgt_epochs = ts.num_epochs if ts.num_epochs is not None else ft.num_epochs

    if ens.enabled and ens.by == "voice" and (voices is None or len(voices) < 2):
        raise ConfigError(
            f"{cfg.source_path or 'recipe'}: ensemble.by 'voice' needs at least two TTS voices "
            f"(synthesis.voices gives {voices or 'the backend default only'}); use ensemble.by 'domain' or list voices"
        )

    def suite(target: str, src: list[str], upper_bound: bool) -> Suite:
        s = tuple(sorted(src))
        dev = dev_for(s)
        a = add(Job("A", "base", (DataSpec("synthetic", s),), **sched, dev=dev))
        b = add(Job("B", "base", (DataSpec("real", s),), **sched, dev=dev))
        if ft.c_init == "source":
            sk = add(Job("S", "base", (DataSpec("real", s), DataSpec("synthetic", s)), **sched, dev=dev))
            c = add(Job("C", sk, (DataSpec("synthetic", (target,)),), ts.lr_scale, tgt_steps, tgt_epochs, dev=dev))
            ub = add(Job("UB", sk, (DataSpec("real", (target,)),), ts.lr_scale, tgt_steps, tgt_epochs, dev=dev)) if upper_bound else None
        else:
            sk = None
            c = add(Job("C", "base", (DataSpec("synthetic", (target,)),), **sched, dev=dev))
            ub = add(Job("UB", "base", (DataSpec("real", (target,)),), **sched, dev=dev)) if upper_bound else None
        variants = {ft.primary_c: c}
        for name in ft.c_variants[1:]:
            if name == "tts":
                variants[name] = add(Job("C_tts", "base", (DataSpec("synthetic", (target,)),), 1.0, tgt_steps,
                                         tgt_epochs, dev=dev))
            elif name == "paper":
                sp = add(Job("S", "base", (DataSpec("real", s), DataSpec("synthetic", s)), **sched, dev=dev))
                variants[name] = add(Job("C", sp, (DataSpec("synthetic", (target,)),), ts.lr_scale, tgt_steps,
                                         tgt_epochs, dev=dev))
            else:  # multi: the two stages of paper in one fine-tune, every utterance in one pool
                if ft.max_steps is None or tgt_steps is None:
                    raise ConfigError(f"{cfg.source_path or 'recipe'}: the multi baseline needs finetune.max_steps "
                                      "and target steps (it takes as many steps as the two stages of paper)")
                variants[name] = add(Job("C_multi", "base", (DataSpec("real", s), DataSpec("synthetic", s),
                                                             DataSpec("synthetic", (target,))),
                                         1.0, ft.max_steps + tgt_steps, None, dev=dev))
        pairs: list[tuple[str, str, str]] = []
        if ens.enabled and ens.by == "voice":
            for v in voices or []:
                av = add(Job("A_voice", "base", (DataSpec("synthetic", s, voices=(v,)),), **sched, dev=dev))
                pairs.append((f"voice {v}", av, b))
        elif ens.enabled and ens.by == "domain":
            if len(s) < 2:
                raise ConfigError(f"{cfg.source_path or 'recipe'}: ensemble.by 'domain' needs at least two source domains for '{target}', got {list(s)}")
            for dom in s:
                ad = add(Job("A_domain", "base", (DataSpec("synthetic", (dom,)),), **sched, dev=dev))
                bd = add(Job("B_domain", "base", (DataSpec("real", (dom,)),), **sched, dev=dev))
                pairs.append((f"domain {dom}", ad, bd))
        return Suite(target, s, a, b, c, sk, ub, pairs, variants)

    domains = resolve_domains(cfg, counts)
    targets = []
    for t, info in domains.items():
        main = suite(t, info["sources"], ft.upper_bound)
        pseudo = [suite(p, info["pseudo_sources"][p], False) for p in info["pseudo"]]
        targets.append(TargetPlan(t, main, pseudo))
    return Plan(_topological(jobs), targets, voices)


def _topological(jobs: dict[str, Job]) -> dict[str, Job]:
    out: dict[str, Job] = {}

    def visit(k: str) -> None:
        if k in out:
            return
        j = jobs[k]
        if j.init != "base":
            visit(j.init)
        out[k] = j

    for k in jobs:
        visit(k)
    return out


def domain_counts(records: list[dict], split: str = "train") -> dict[str, int]:
    """Utterances per domain in ``split`` (domains with none in the split are listed with 0)."""
    c = Counter(r.get("domain") for r in records if r.get("split") == split)
    for r in records:
        c.setdefault(r.get("domain"), 0)
    return {str(k): v for k, v in c.items() if k is not None}

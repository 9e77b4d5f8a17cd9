"""The syn2real recipe config: one YAML, validated at load time.

A recipe config names a base model, a real-speech corpus with domain labels, the target domains, a TTS set-up,
fine-tuning hyperparameters, how the Synthetic2Real vector is combined (single / ensemble) and how its scale λ
is chosen. Every section rejects unknown keys; errors name the key and the file::

    name: ivr_syn2real               # outputs go to <exp_dir>/<name>/
    base_model: bundled:tiny.en      # "bundled:<name>", a local model directory, or a hub id
    corpus: {preparer: ivr_prompts}
    domains: {targets: [voicemail]}
    synthesis: {backend: piper}
    finetune: {learning_rate: 3.0e-5, max_steps: 40, audio_context_s: 8}
    lambda: {mode: pseudo_target, pseudo_targets: [general]}
    variants:                        # named overrides: `asr-analogy run CONFIG --variant demo`
      demo: {domains: {targets: [voicemail]}}

``load_recipe_config(path, variant=None, overrides=None)`` reads the file with ``asr_analogy.io.yaml_file.load_yaml``
(duplicate keys refused) and deep-merges the variant (and ``--set key=value`` overrides, parsed by
``parse_overrides``) over it before validating, so a variant's typo is reported like any other.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from asr_analogy.analogy.vectors import ensemble_method, ensemble_parameters
from asr_analogy.errors import ConfigError
from asr_analogy.io.yaml_file import deep_merge, load_yaml

DEFAULT_LAMBDA_GRID = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0]



def _checked_by(check, value):
    """``value`` once ``check(value)`` passes; its ``ConfigError`` becomes the ``ValueError`` pydantic reports
    under the key being validated."""
    try:
        check(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return value

class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CorpusConfig(_Section):
    """Where the real speech comes from. Every record needs ``domain`` and ``split`` (train/dev/test)."""

    preparer: str = "ivr_prompts"  # a module of data_prep with prepare(out_dir, ...), or "manifest"
    manifest: str | None = None  # preparer "manifest": an existing real-speech manifest (relative to the config)
    from_dir: str | None = None  # passed to the preparer as from_dir (an unpacked corpus instead of a download)
    cache_dir: str | None = None  # the preparer's download cache
    options: dict[str, Any] = Field(default_factory=dict)  # more keyword arguments for prepare()
    max_duration_s: float | None = None  # drop utterances longer than this everywhere (seconds); None keeps all
    # pass every real clip, of every domain and split, through this condition at prep (TTS audio stays clean):
    # steps joined with "+", left to right, e.g. "music:snr_db=5+gsm" (real hold music at 5 dB SNR, then a GSM
    # codec round trip), "babble:snr_db=5,talkers=4", "noise:snr_db=10"; see asr_analogy.speech.degrade
    degrade: str | None = None
    degrade_seed: int = 0  # with the utterance's domain/id, seeds every draw (music segment, babble talkers)
    # music steps: a folder of music wav files; None: Debian asterisk-moh-opsound-wav (apt-get download, cached)
    music_dir: str | None = None

    @model_validator(mode="after")
    def _manifest_needs_path(self):
        if self.preparer == "manifest" and not self.manifest:
            raise ValueError("corpus.preparer 'manifest' needs corpus.manifest (a JSONL manifest path)")
        return self

    @field_validator("degrade")
    @classmethod
    def _known_condition(cls, v):
        from asr_analogy.speech.degrade import parse_degrade

        return _checked_by(parse_degrade, v)


class DomainsConfig(_Section):
    """Which corpus domains are targets (text only, for the method) and which are sources (text and audio)."""

    targets: list[str] = Field(min_length=1)  # target domains; their real audio is read only for evaluation
    sources: list[str] | None = None  # source domains; None: every corpus domain not excluded and not a target
    exclude: list[str] = Field(default_factory=list)  # domains used nowhere
    # shared: one source set (all non-target domains) for every target, so A, B and the source stage of C are
    # trained once; leave_one_out: for each target, the sources are all other domains (as in the paper).
    source_pool: Literal["shared", "leave_one_out"] = "shared"


class SynthesisConfig(_Section):
    """Arguments of asr_analogy.speech.tts.synthesize for the source and target text."""

    backend: str = "piper"  # a backend name of asr_analogy.speech.tts, or "module:function" for a custom one
    voices: list[str] | None = None  # None: the backend's default voice
    samples_per_sentence: int = Field(default=1, ge=1)
    seed: int = 0
    workers: int = Field(default=2, ge=1)
    channel: Any = None  # channel simulation of the synthetic audio (e.g. "telephone"), see the TTS module
    splits: list[str] = Field(default_factory=lambda: ["train"])  # whose text is synthesized (never test)
    cache_dir: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)  # more keyword arguments for synthesize()

    @field_validator("splits")
    @classmethod
    def _no_test_text(cls, v):
        if "test" in v:
            raise ValueError("synthesizing the test split's text would leak it into training; use train/dev")
        return v


class TargetStageConfig(_Section):
    """Second stage of C and of the upper bound: continue from the source model on target data."""

    lr_scale: float = Field(default=0.1, gt=0)  # learning rate = finetune.learning_rate × lr_scale (paper: 0.1)
    max_steps: int | None = Field(default=None, ge=1)  # None: finetune.max_steps
    num_epochs: float | None = None


class FinetuneSettings(_Section):
    """Hyperparameters shared by every fine-tune of the recipe (A, B, the source stage S, C, upper bound)."""

    learning_rate: float = Field(default=1e-5, gt=0)
    max_steps: int | None = Field(default=100, ge=1)  # optimizer steps per fine-tune (None: use num_epochs)
    num_epochs: float | None = None
    batch_size: int = Field(default=8, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    warmup_steps: int = Field(default=0, ge=0)
    freeze_encoder: bool = False
    audio_context_s: int | None = Field(default=None, ge=1, le=30)  # shorter Whisper encoder window (whole seconds)
    select_best: bool = False  # keep the checkpoint with the best WER on *source* real dev (never target)
    eval_steps: int | None = Field(default=None, ge=1)
    seed: int = 0
    # repeat every fine-tune (and everything after it) once per seed: the runs go to <exp_dir>/<name>/seed<k>/
    # and the report gives each system's mean ± standard deviation over seeds; None: one run with `seed`
    seeds: list[int] | None = None
    resume: bool = True  # a killed fine-tune continues from its last checkpoint
    # source: C = (source real + synthetic) then target synthetic at lr × lr_scale (the paper);
    # base: C = target synthetic only, from the base model
    c_init: Literal["source", "base"] = "source"
    target_stage: TargetStageConfig = Field(default_factory=TargetStageConfig)
    # more C systems beside c_init's, each scored alone and with the syn2real vector: tts (target synthetic
    # from the base), paper (source real + synthetic, then target synthetic at lr × lr_scale), multi (one
    # fine-tune from the base on source real + source synthetic + target synthetic together, as many steps as
    # paper's two stages). tts and paper take target_stage's steps on the target text.
    baselines: list[Literal["tts", "paper", "multi"]] = Field(default_factory=list)
    upper_bound: bool = True  # also train the reference system on target *real* train audio
    extra: dict[str, Any] = Field(default_factory=dict)  # more FinetuneConfig fields, passed through

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v):
        if v is not None and (not v or len(set(v)) != len(v)):
            raise ValueError("finetune.seeds must list at least one seed, each once")
        return v

    @property
    def primary_c(self) -> str:
        """The C of ``c_init``: ``paper`` (source stage first) or ``tts`` (from the base)."""
        return "paper" if self.c_init == "source" else "tts"

    @property
    def c_variants(self) -> list[str]:
        """Every C system of the run, c_init's first."""
        return [self.primary_c] + [b for b in dict.fromkeys(self.baselines) if b != self.primary_c]

    @field_validator("extra")
    @classmethod
    def _extra_keeps_the_plan(cls, v):
        """The data, model and output of each fine-tune come from the plan (and so pass the leakage guard)."""
        planned = sorted(set(v) & {"model", "train_manifest", "dev_manifest", "output_dir"})
        if planned:
            raise ValueError(f"finetune.extra may not set {', '.join(planned)}: the recipe plans each fine-tune's "
                             "data, model and output itself")
        return v


class EnsembleConfig(_Section):
    """An ensemble Synthetic2Real vector: the combination of several (θ_A_i, θ_B_i) pair vectors by a merge
    preset, checked here against the parameters the merge method declares (``analogy.vectors.ensemble_parameters``)."""

    enabled: bool = True
    by: Literal["voice", "domain"] = "voice"  # one pair per TTS voice, or per source domain
    # a merge preset that combines task vectors: task_arithmetic (the mean), ties, dare_linear, dare_ties,
    # magnitude_prune, breadcrumbs, breadcrumbs_ties
    method: str = "task_arithmetic"
    density: float | None = Field(default=None, validate_default=True)  # required by (only) the sparsifying ones
    seed: int = 0  # DARE's drop masks (seeded per tensor, member and chunk)

    @field_validator("method")
    @classmethod
    def _method(cls, v):
        return _checked_by(ensemble_method, v)

    @field_validator("density")
    @classmethod
    def _density(cls, v, info: ValidationInfo):
        if "method" in info.data:  # else the method's own error is reported
            try:
                ensemble_parameters(info.data["method"], v)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return v


class LambdaConfig(_Section):
    """How λ in θ_D = θ_C + λ(θ_B − θ_A) is chosen."""

    # fixed: use `value`; pseudo_target: hold out source domains as stand-in targets and pick λ on their real
    # audio; oracle: pick on the *target* real dev audio (an upper bound on selection, labelled, never default)
    mode: Literal["fixed", "pseudo_target", "oracle"] = "pseudo_target"
    value: float = 0.2  # mode fixed
    grid: list[float] = Field(default_factory=lambda: list(DEFAULT_LAMBDA_GRID))
    pseudo_targets: list[str] | None = None  # source domains held out; None: the largest source domain
    # true: the pseudo-targets are removed from the sources of the real targets too, so A′/B′ and the source
    # stage of C′ are the very models A/B/S (no extra fine-tunes); false: A/B/S keep them, A′/B′/S′ are extra
    holdout_from_sources: bool = True
    select_splits: list[str] = Field(default_factory=lambda: ["dev"])  # pseudo-target real splits scored
    report_oracle: bool = False  # also find the oracle λ on target real dev and report it (labelled)
    # more ways to add the vector, each chosen on the pseudo-target like λ and scored as its own system:
    # "encdec" (one λ for the encoder, one for the decoder), "layers" (lower encoder half, upper encoder half,
    # decoder), both by coordinate search over `grid` starting from the chosen single λ; "topk:F" (the vector
    # keeps its fraction F of largest-magnitude entries per tensor, then λ from `grid`)
    search: list[str] = Field(default_factory=list)

    @field_validator("search")
    @classmethod
    def _search(cls, v):
        from asr_analogy.analogy.options import parse_option

        for item in v:
            _checked_by(parse_option, item)
        if len(set(v)) != len(v):
            raise ValueError("lambda.search lists an option twice")
        return v

    @field_validator("grid")
    @classmethod
    def _grid(cls, v):
        if not v:
            raise ValueError("lambda.grid must hold at least one value")
        bad = [x for x in v if not math.isfinite(float(x))]
        if bad:
            raise ValueError(f"lambda.grid holds {bad[0]!r}; every λ must be a finite number")
        return sorted(set(float(x) for x in v))


class EvaluateConfig(_Section):
    normalizer: str = "whisper_english"  # applied to references and hypotheses alike
    bootstrap: int = Field(default=1000, ge=0)  # resamples for the 95 % interval
    seed: int = 0
    batch_size: int = Field(default=16, ge=1)
    num_beams: int = Field(default=1, ge=1)
    max_new_tokens: int | None = Field(default=None, ge=1)  # cap on generated tokens per clip (None: the model's)
    # a clip decoded into a loop up to the token cap keeps one copy of the loop (asr_analogy.speech.repetition)
    repetition_guard: bool = False
    test_split: str = "test"
    # every system but the upper bound is scored on *all* the target's real utterances (no target real audio is
    # trained on; the text of the train split was synthesized for C); the upper bound, which trains on target
    # real train audio, on test_split only. false: every system on test_split
    all_target_utterances: bool = False
    lambda_curve: bool = True  # also score the λ grid on target test, for the WER-vs-λ plot (reporting only)
    export_models: bool = True  # write θ_D (and the ensemble's) as model directories under final/<target>/
    # also score the exported models as deployed: CTranslate2 at this weight type, rows "<system> (CT2 <type>)"
    deployed: Literal["float32", "float16", "int8"] | None = None

    def decoding(self) -> dict:
        """The settings besides the model that change a transcript, for cache keys (the guard only when on, so
        keys made before it existed stay valid)."""
        return {"beams": self.num_beams, "max_new_tokens": self.max_new_tokens,
                **({"repetition_guard": True} if self.repetition_guard else {})}

    @model_validator(mode="after")
    def _deployed_needs_exports(self):
        if self.deployed and not self.export_models:
            raise ValueError("evaluate.deployed scores the exported models: it needs evaluate.export_models")
        return self


class RecipeConfig(_Section):
    """A whole syn2real experiment."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    exp_dir: str = "exp"  # outputs go to <exp_dir>/<name>/ (relative to the working directory)
    base_model: str = "bundled:tiny.en"
    device: str = "cpu"
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    domains: DomainsConfig
    synthesis: SynthesisConfig = Field(default_factory=SynthesisConfig)
    finetune: FinetuneSettings = Field(default_factory=FinetuneSettings)
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig)
    lambda_: LambdaConfig = Field(default_factory=LambdaConfig, alias="lambda")
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict)  # named overrides (see module docstring)

    # filled by load_recipe_config, not read from YAML
    source_path: str | None = Field(default=None, exclude=True)
    variant: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _domains_consistent(self):
        d = self.domains
        both = set(d.targets) & set(d.sources or [])
        if both:
            raise ValueError(f"domains {sorted(both)} are both targets and sources")
        if set(d.targets) & set(d.exclude):
            raise ValueError(f"domains {sorted(set(d.targets) & set(d.exclude))} are both targets and excluded")
        pts = self.lambda_.pseudo_targets or []
        bad = set(pts) & set(d.targets)
        if bad:
            raise ValueError(f"lambda.pseudo_targets {sorted(bad)} are target domains; pick source domains")
        if self.lambda_.mode == "pseudo_target" and d.sources is not None and pts and not set(pts) <= set(d.sources):
            raise ValueError(f"lambda.pseudo_targets {sorted(set(pts) - set(d.sources))} are not in domains.sources")
        return self

    @model_validator(mode="after")
    def _splits_never_leak(self):
        """The evaluated split of a target is never text the models trained on (the train split, fine-tuned on
        as real or synthetic audio) or text that was synthesized; λ is chosen only on the pseudo-targets' dev/test
        splits (their synthesized dev text, if any, is never trained on: fine-tunes use the train split only)."""
        trained = {"train", *self.synthesis.splits}
        known = {"train", "dev", "test"}
        for split in self.synthesis.splits:
            if split not in known:
                raise ValueError(f"synthesis.splits: unknown split {split!r}; use train or dev")
        test = self.evaluate.test_split
        if test not in known:
            raise ValueError(f"evaluate.test_split: unknown split {test!r}; use test (or dev)")
        if test in trained:
            why = "the models are fine-tuned on it" if test == "train" else "its text is synthesized for training"
            raise ValueError(f"evaluate.test_split '{test}' would score the target on text it was trained on "
                             f"({why}); use a split that is neither 'train' nor in synthesis.splits")
        if test == "dev" and (self.lambda_.mode == "oracle" or self.lambda_.report_oracle):
            raise ValueError("evaluate.test_split 'dev' is the split the oracle λ is chosen on; score on test, or "
                             "set lambda.mode to fixed/pseudo_target and lambda.report_oracle to false")
        for split in self.lambda_.select_splits:
            if split == "train" and self.lambda_.holdout_from_sources:
                continue  # the pseudo-targets' real audio is then trained on by nothing, like a target's
            if split not in ("dev", "test"):
                raise ValueError(f"lambda.select_splits: '{split}' is not a held-out split (λ is chosen on "
                                 "pseudo-target dev/test audio, and on train only with lambda.holdout_from_sources, "
                                 "never on audio the models learn from)")
        return self

    @property
    def out_dir(self) -> Path:
        """``<exp_dir>/<name>``: every output of the recipe lies under it."""
        return Path(self.exp_dir) / self.name

    def resolve_path(self, value: str | None) -> str | None:
        """A path from the config: relative paths are taken relative to the config file's directory."""
        if value is None:
            return None
        p = Path(os.path.expanduser(value))
        if p.is_absolute() or self.source_path is None:
            return str(p)
        return str((Path(self.source_path).parent / p).resolve())

    def section_hash(self, *names: str) -> str:
        """A short fingerprint of the named sections (their validated values), for stage invalidation."""
        data = self.model_dump(mode="json", by_alias=True)
        blob = json.dumps({n: data.get(n) for n in names}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _format_error(err: dict) -> str:
    loc = ".".join(str(x) for x in err["loc"]) or "<top level>"
    if err["type"] == "extra_forbidden":
        return f"unknown key '{loc}'"
    if err["type"] == "missing":
        return f"missing key '{loc}'"
    msg = err["msg"].removeprefix("Value error, ")
    return f"key '{loc}': {msg}" if err["loc"] else msg


def validate_recipe_dict(data: Any, where: str) -> RecipeConfig:
    """Validate a recipe mapping; ``where`` (file, variant) is named in every error."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return RecipeConfig.model_validate(data)
    except ValidationError as exc:
        msgs = "; ".join(_format_error(e) for e in exc.errors())
        raise ConfigError(f"{where}: {msgs}") from None


def load_recipe_config(
    path: str | os.PathLike, variant: str | None = None, overrides: dict | None = None
) -> RecipeConfig:
    """Read and validate a recipe YAML; apply a named variant and then ``overrides`` (nested dict) first.

    Raises ``ConfigError`` naming the file (and variant) and the offending key.
    """
    path = Path(path)
    data = load_yaml(path, "recipe config")
    where = str(path)
    base = validate_recipe_dict(data, where)  # the file itself must be valid on its own
    if variant is not None:
        variants = data.get("variants") or {}
        if variant not in variants:
            known = ", ".join(sorted(variants)) or "none"
            raise ConfigError(f"{path}: no variant '{variant}' (known: {known})")
        where = f"{path} (variant '{variant}')"
        over = variants[variant]
        if not isinstance(over, dict):
            raise ConfigError(f"{where}: a variant must be a mapping of overrides")
        data = deep_merge(data, over)
        data.setdefault("name", base.name)
        if "name" not in over:
            data["name"] = f"{base.name}_{variant}"
    if overrides:
        where = f"{where} with --set overrides"
        data = deep_merge(data, overrides)
    cfg = validate_recipe_dict(data, where)
    cfg.source_path = str(path.resolve())
    cfg.variant = variant
    return cfg

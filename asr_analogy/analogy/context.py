"""What every stage of the syn2real recipe shares: the config, the run directory's paths, the fine-tuning plan,
the trained models and vectors by key, the selected λ per target, and the decoding cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from asr_analogy.errors import AsrAnalogyError, ManifestError
from asr_analogy.io.manifest import read_manifest

from asr_analogy.analogy import _deps
from asr_analogy.analogy.access import DataAccess
from asr_analogy.analogy.cache import read_json, short_hash
from asr_analogy.analogy.config import RecipeConfig
from asr_analogy.analogy.options import option_slug
from asr_analogy.analogy.plan import Plan, Suite, build_plan, domain_counts


class RecipeContext:
    """One experiment's config and output directory ``<exp_dir>/<name>/``, read by the stages.

    ``echo`` prints progress; ``access`` hands out utterances under the leakage guard; ``decoder`` transcribes
    with θ or θ_C + λ·v and remembers results across stages.
    """

    def __init__(self, cfg: RecipeConfig, echo: Callable[[str], None] = print):
        self.cfg = cfg
        self.echo = echo
        self.out = cfg.out_dir
        self.access = DataAccess(cfg.domains.targets, self.out / "access_log.jsonl")
        self.real_manifest = self.out / "data" / "real.jsonl"
        self.syn_dir = self.out / "data" / "synthetic"
        self.syn_manifest = self.syn_dir / "manifest.jsonl"
        self._plan: Plan | None = None
        self._base_dir: str | None = None
        self._decoder = None

    # ---- data and plan -----------------------------------------------------------------------------------
    @property
    def base_dir(self) -> str:
        """The base model's directory (or hub id); a relative name is looked up next to the config first."""
        if self._base_dir is None:
            name = self.cfg.base_model
            if not name.startswith("bundled:") and not os.path.isabs(name) and self.cfg.source_path:
                local = Path(self.cfg.source_path).parent / name
                if local.is_dir():
                    name = str(local.resolve())
            self._base_dir = _deps.resolve_base_model(name)
        return self._base_dir

    def real_records(self) -> list[dict]:
        if not self.real_manifest.is_file():
            raise ManifestError(f"{self.real_manifest} is missing: run the prep stage first")
        return read_manifest(self.real_manifest)

    def manifest_of(self, source: str) -> Path:
        """The manifest of ``source`` "real" or "synthetic"."""
        return self.real_manifest if source == "real" else self.syn_manifest

    def _voices(self) -> list[str] | None:
        if self.syn_manifest.is_file():
            seen: dict[str, None] = {}
            for r in read_manifest(self.syn_manifest, resolve_paths=False):
                if r.get("voice") is not None:
                    seen.setdefault(str(r["voice"]))
            return list(seen) or None
        return list(self.cfg.synthesis.voices) if self.cfg.synthesis.voices else None

    def plan(self) -> Plan:
        """The fine-tuning plan (needs the prepared corpus, and the synthetic manifest for voice ensembles)."""
        if self._plan is None:
            counts = domain_counts(self.real_records(), "train")
            self._plan = build_plan(self.cfg, counts, self._voices())
        return self._plan

    def forget_plan(self) -> None:
        """Drop the cached plan (its inputs, the corpus or the synthetic voices, were just rewritten)."""
        self._plan = None

    # ---- trained models ------------------------------------------------------------------------------------
    def job_dir(self, key: str) -> Path:
        return self.out / "models" / self.plan().jobs[key].dirname

    def job_record(self, key: str) -> dict:
        """``models/<job>/job.json`` of a completed job (its model directory, fingerprint, schedule)."""
        done = self.job_dir(key) / "job.json"
        if not done.is_file():
            raise AsrAnalogyError(f"model {self.job_dir(key).name} is not trained yet: run the finetune stage")
        return read_json(done)

    def model_dir(self, key: str) -> Path:
        """Final directory of a completed job."""
        return Path(self.job_record(key)["model_dir"])

    def job_fingerprint(self, key: str) -> str:
        return self.job_record(key)["fingerprint"]

    # ---- vectors and λ -------------------------------------------------------------------------------------
    def vector_path(self, vector_id: str) -> Path:
        return self.out / "vectors" / f"{vector_id}.safetensors"

    def pair_id(self, a: str, b: str) -> str:
        """Id of the vector θ_B − θ_A of two trained jobs (changes when either is retrained)."""
        return "pair-" + short_hash([self.job_fingerprint(a), self.job_fingerprint(b)])

    def suite_vectors(self, suite: Suite) -> dict:
        """Ids of the suite's vectors: ``{"syn2real": id, "ensemble": id or None}``, plus one per sparse option
        of ``lambda.search`` (``{"topk:0.2": id}``)."""
        ensemble = None
        if suite.ensemble:
            e = self.cfg.ensemble
            pairs = [(self.job_fingerprint(a), self.job_fingerprint(b)) for _, a, b in suite.ensemble]
            ensemble = "ens-" + short_hash({"pairs": pairs, "method": e.method, "density": e.density, "seed": e.seed})
        main = self.pair_id(suite.A, suite.B)
        sparse = {opt: f"{main}-{option_slug(opt)}" for opt in self.cfg.lambda_.search if opt.startswith("topk:")}
        return {"syn2real": main, "ensemble": ensemble, **sparse}

    def selection(self, target: str) -> dict:
        """``lambda/<target>.json``: the λ chosen for a target (``value``, ``value_ensemble``, ``how``, curves)."""
        return read_json(self.out / "lambda" / f"{target}.json")

    @property
    def decoder(self):
        """The decoding cache (``asr_analogy.analogy.decoding.Decoder``), made on first use."""
        if self._decoder is None:
            from asr_analogy.analogy.decoding import Decoder

            self._decoder = Decoder(self.cfg.device, self.cfg.evaluate)
        return self._decoder

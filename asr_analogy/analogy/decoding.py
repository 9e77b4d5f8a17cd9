"""The recipe's decoding cache: transcripts of θ (a model directory) or θ_C + λ·v, each decoded once per run.

A λ curve, C (λ = 0) and the selected system share decodes, so ``Decoder.hyps`` remembers every result and
keeps at most ``Decoder.KEEP`` models loaded. ``Decoder.curve`` scores a model over a λ grid (WER and CER as
fractions) through ``lambdas.sweep_lambda``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from asr_analogy.analogy import _deps
from asr_analogy.analogy.config import EvaluateConfig
from asr_analogy.analogy.lambdas import sweep_lambda
from asr_analogy.ops.param_groups import canonical


class Decoder:
    """Transcribes records with ``device`` and the decoding settings of ``evaluate`` (beams, batch, token cap)."""

    KEEP = 2  # models kept loaded (θ_C and one other, e.g. the upper bound)

    def __init__(self, device: str, evaluate: EvaluateConfig):
        self.device = device
        self.settings = evaluate
        self.loaded: dict[str, tuple] = {}  # model dir → (model, processor, LambdaModel), oldest first
        self.vectors: dict[str, dict] = {}
        self.memo: dict[tuple, list[dict]] = {}

    def _load(self, model_dir: str) -> tuple:
        if model_dir in self.loaded:
            self.loaded[model_dir] = self.loaded.pop(model_dir)
            return self.loaded[model_dir]
        from asr_analogy.analogy.vectors import LambdaModel
        from asr_analogy.io.checkpoint import load_state_dict

        while len(self.loaded) >= self.KEEP:
            self.loaded.pop(next(iter(self.loaded)))
        model, processor = _deps.load_model(model_dir, self.device)
        self.loaded[model_dir] = (model, processor, LambdaModel(model, load_state_dict(model_dir)))
        return self.loaded[model_dir]

    def _vector(self, path: Path) -> dict:
        from asr_analogy.analogy.vectors import load_vector

        key = str(path)
        if key not in self.vectors:
            self.vectors = {key: load_vector(path)}  # one vector in memory at a time is enough
        return self.vectors[key]

    def hyps(self, model_dir, records: list[dict], vector_file: Path | None = None, lam=0.0) -> list[dict]:
        """Records with ``hypothesis`` from θ (``vector_file`` None or λ = 0) or θ + λ·v; ``lam`` is a number
        or a per-group scale (``asr_analogy.ops.param_groups``)."""
        model_dir = str(model_dir)
        lam = canonical(lam)
        use_vector = vector_file is not None and lam != 0.0
        key = (model_dir, str(vector_file) if use_vector else None,
               json.dumps(lam, sort_keys=True) if use_vector else "0.0",
               tuple(r.get("id") or r["audio_filepath"] for r in records))
        if key not in self.memo:
            model, processor, lambda_model = self._load(model_dir)
            if use_vector:
                lambda_model.set(lam, self._vector(vector_file))
            elif lambda_model.lam not in (None, 0.0):
                lambda_model.reset()
            s = self.settings
            self.memo[key] = _deps.transcribe(
                model, records, processor=processor, batch_size=s.batch_size, num_beams=s.num_beams,
                device=self.device, max_new_tokens=s.max_new_tokens, repetition_guard=s.repetition_guard,
            )
        return [dict(r) for r in self.memo[key]]

    def curve(self, model_dir, vector_file: Path, records: list[dict], grid: list[float],
              echo: Callable[[str], None]) -> dict:
        """``{"lambdas", "wer", "cer"}`` of θ + λ·v on ``records`` for every λ of ``grid`` (no bootstrap)."""
        point = _CurvePoint(self, model_dir, vector_file, records, echo)
        return sweep_lambda(point.set, point.score, grid)


class _CurvePoint:
    """One λ of a curve at a time: ``set(λ)`` picks it, ``score()`` decodes and scores θ + λ·v there."""

    def __init__(self, decoder: Decoder, model_dir, vector_file: Path, records: list[dict], echo):
        self.decoder, self.model_dir, self.vector_file, self.records, self.echo = (
            decoder, model_dir, vector_file, records, echo)
        self.lam = 0.0

    def set(self, lam: float) -> None:
        self.lam = lam

    def score(self) -> dict:
        hyps = self.decoder.hyps(self.model_dir, self.records, self.vector_file, self.lam)
        metrics = _deps.score(hyps, normalizer=self.decoder.settings.normalizer, bootstrap=0)
        self.echo(f"    λ={self.lam:<5g} WER {100 * metrics['wer']:.2f} %")
        return metrics

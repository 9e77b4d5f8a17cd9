"""The syn2real recipe's stages, one module each, run in the order of ``STAGES`` by ``base.StageRunner``.

``base``: the stage interface (``Stage``: name, inputs, outputs, fingerprint, describe, run) and the resumable
runner; a new stage is one module defining ``STAGE`` and one line in ``STAGES``.
"""

from __future__ import annotations

from asr_analogy.analogy.stages import evaluate, finetune, prep, report, select_lambda, synthesize, vectors
from asr_analogy.analogy.stages.base import Stage, StageError, StageRunner, read_marker

STAGES: tuple[Stage, ...] = (
    prep.STAGE,
    synthesize.STAGE,
    finetune.STAGE,
    vectors.STAGE,
    select_lambda.STAGE,
    evaluate.STAGE,
    report.STAGE,
)
STAGE_NAMES = tuple(s.name for s in STAGES)

__all__ = ["STAGES", "STAGE_NAMES", "Stage", "StageError", "StageRunner", "read_marker"]

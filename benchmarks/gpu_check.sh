#!/usr/bin/env bash
# The CUDA paths, checked on a machine with a GPU (issue 11): one line per check, PASS / FAIL / SKIP + numbers.
#
#   1. merge --device cuda against the same merge on the CPU (bitwise equal, or max |diff|)
#   2. 20 fine-tuning steps with fp16, and 20 with bf16 (finite losses, the step count reached)
#   3. a 2-process torchrun launch of finetune (data-parallel), where two GPUs exist
#
# Usage, from the repository root:
#   bash benchmarks/gpu_check.sh              # makes .venv-gpu: torch==2.13.0 from the default index (the CUDA
#                                             # build on Linux x86-64) and this package, then runs the checks
#   DRY_RUN=1 bash benchmarks/gpu_check.sh    # CPU only, existing .venv, a tiny random Whisper, 2 steps: checks
#                                             # that the script and the commands it runs work, not the GPU
# Environment: PYTHON (the interpreter to use instead of making .venv-gpu), MODEL (default bundled:tiny.en),
# STEPS (default 20), WORK (scratch folder, default a new temporary one).
set -uo pipefail

cd "$(dirname "$0")/.."
DRY_RUN=${DRY_RUN:-0}
STEPS=${STEPS:-20}
WORK=${WORK:-$(mktemp -d -t gpu_check.XXXXXX)}
mkdir -p "$WORK"
FAILED=0

say() { printf '%-5s %-28s %s\n' "$1" "$2" "$3"; [ "$1" = FAIL ] && FAILED=1; return 0; }

# --- the interpreter -------------------------------------------------------------------------------------
if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
elif [ "$DRY_RUN" = 1 ]; then
    PY=.venv/bin/python
else
    if [ ! -x .venv-gpu/bin/python ]; then
        python3 -m venv .venv-gpu || { say FAIL venv "python3 -m venv failed"; exit 1; }
        .venv-gpu/bin/pip install -q torch==2.13.0 || { say FAIL install "pip install torch==2.13.0 failed"; exit 1; }
        .venv-gpu/bin/pip install -q -e . || { say FAIL install "pip install -e . failed"; exit 1; }
    fi
    PY=.venv-gpu/bin/python
fi
GPUS=$("$PY" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' 2>/dev/null || echo 0)
TORCH=$("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda)' 2>/dev/null)
say INFO environment "torch $TORCH, $GPUS GPU(s), dry run $DRY_RUN, work $WORK"
if [ "$DRY_RUN" = 1 ]; then
    DEVICE=cpu; STEPS=2; MODEL=${MODEL:-tiny-random}
elif [ "$GPUS" -lt 1 ]; then
    say SKIP all "no CUDA device visible to $PY"; exit 0
else
    DEVICE=cuda; MODEL=${MODEL:-bundled:tiny.en}
fi

# --- fixtures: a base, two perturbed fine-tunes, a merge config, a small training manifest ---------------
"$PY" - "$WORK" "$MODEL" <<'EOF' || { say FAIL fixtures "could not build the inputs"; exit 1; }
import json, sys
from pathlib import Path
import numpy as np, torch
from asr_analogy.io.audio import write_wav
from asr_analogy.io.manifest import read_manifest, write_manifest
from asr_analogy.speech.finetune_config import resolve_model

work, model = Path(sys.argv[1]), sys.argv[2]
if model == "tiny-random":
    from asr_analogy.speech.models.whisper import tiny_whisper
    m, p = tiny_whisper(seed=0)
    m.save_pretrained(work / "base"); p.save_pretrained(work / "base")
    model = str(work / "base")
from transformers import WhisperForConditionalGeneration, WhisperProcessor
base = WhisperForConditionalGeneration.from_pretrained(resolve_model(model))
processor = WhisperProcessor.from_pretrained(resolve_model(model))
for i in (1, 2):
    g = torch.Generator().manual_seed(i)
    ft = WhisperForConditionalGeneration.from_pretrained(resolve_model(model))
    with torch.no_grad():
        for t in ft.parameters():
            t.add_(0.01 * t.std().nan_to_num() * torch.randn(t.shape, generator=g))
    ft.save_pretrained(work / f"ft{i}")
(work / "merge.yaml").write_text(json.dumps({
    "merge_method": "ties", "base_model": resolve_model(model),
    "models": [{"model": str(work / "ft1"), "parameters": {"weight": 1.0}},
               {"model": str(work / "ft2"), "parameters": {"weight": 0.5}}],
    "parameters": {"density": 0.5, "lambda": 1.0}}))
ivr = Path("data/ivr/manifest.jsonl")
if ivr.is_file():
    recs = [r for r in read_manifest(ivr) if r.get("split") == "train" and float(r.get("duration") or 99) <= 10][:64]
else:
    recs = []
    for i in range(16):
        t = np.arange(16000 + 1600 * i) / 16000
        write_wav(work / f"c{i}.wav", 0.3 * np.sin(2 * np.pi * (200 + 20 * i) * t))
        recs.append({"audio_filepath": str(work / f"c{i}.wav"), "text": f"press {i} for sales", "duration": len(t) / 16000})
write_manifest(recs, work / "train.jsonl", relative=False)
(work / "model.txt").write_text(model)
EOF
MODEL=$(cat "$WORK/model.txt")

# --- 1. merge on the GPU against the CPU -----------------------------------------------------------------
compare_merges() {  # $1, $2: merged directories -> "max_abs_diff bitwise_equal_tensors tensors"
    "$PY" - "$1" "$2" <<'EOF'
import sys
from asr_analogy.io.checkpoint import CheckpointReader
with CheckpointReader(sys.argv[1]) as a, CheckpointReader(sys.argv[2]) as b:
    names = a.names()
    assert names == b.names(), "different tensor names"
    diff = max(float((a.get(n).double() - b.get(n).double()).abs().max()) if a.get(n).numel() else 0.0 for n in names)
    same = sum(bool((a.get(n) == b.get(n)).all()) for n in names)
print(f"{diff:.3g} {same} {len(names)}")
EOF
}
check="merge --device $DEVICE"
if ! "$PY" -m asr_analogy merge "$WORK/merge.yaml" "$WORK/merged_cpu" --device cpu --quiet >"$WORK/merge_cpu.log" 2>&1; then
    say FAIL "$check" "the CPU merge failed: see $WORK/merge_cpu.log"
elif ! "$PY" -m asr_analogy merge "$WORK/merge.yaml" "$WORK/merged_dev" --device "$DEVICE" --quiet >"$WORK/merge_dev.log" 2>&1; then
    say FAIL "$check" "see $WORK/merge_dev.log"
elif ! out=$(compare_merges "$WORK/merged_cpu" "$WORK/merged_dev"); then
    say FAIL "$check" "the outputs cannot be compared: $out"
else
    read -r diff same total <<<"$out"
    if [ "$same" = "$total" ]; then
        say PASS "$check" "bitwise equal to the CPU merge ($total tensors)"
    elif "$PY" -c "import sys; sys.exit(0 if float('$diff') <= 1e-5 else 1)"; then
        say PASS "$check" "max |diff| $diff vs CPU; $same of $total tensors bitwise equal"
    else
        say FAIL "$check" "max |diff| $diff vs CPU; $same of $total tensors bitwise equal"
    fi
fi

# --- 2. fp16 and bf16 fine-tuning ------------------------------------------------------------------------
write_finetune_config() {  # $1: name, then KEY=VALUE pairs
    local name=$1; shift
    "$PY" - "$WORK" "$name" "$MODEL" "$STEPS" "$@" <<'EOF'
import json, sys
from pathlib import Path
work, name, model, steps, *pairs = sys.argv[1:]
cfg = {"model": model, "train_manifest": str(Path(work) / "train.jsonl"), "output_dir": str(Path(work) / name),
       "max_steps": int(steps), "batch_size": 4, "audio_context_s": 10, "logging_steps": 1, "save_steps": 1000,
       "learning_rate": 1e-5}
for pair in pairs:
    key, value = pair.split("=", 1)
    cfg[key] = json.loads(value)
(Path(work) / f"{name}.yaml").write_text(json.dumps(cfg))
EOF
}
losses() {  # $1: the fine-tune directory -> "steps first_loss last_loss finite"
    "$PY" - "$1" <<'EOF'
import json, math, sys
state = json.load(open(f"{sys.argv[1]}/trainer_state.json"))
losses = [h["loss"] for h in state["log_history"] if "loss" in h]
print(state["global_step"], f"{losses[0]:.4f}", f"{losses[-1]:.4f}", int(all(math.isfinite(x) for x in losses)))
EOF
}
for precision in fp16 bf16; do
    if [ "$DEVICE" = cuda ] && [ "$precision" = bf16 ] && ! "$PY" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_bf16_supported() else 1)'; then
        say SKIP "finetune $precision" "this GPU has no bfloat16"; continue
    fi
    write_finetune_config "ft_$precision" "$precision=true"
    start=$(date +%s)
    if "$PY" -m asr_analogy finetune "$WORK/ft_$precision.yaml" >"$WORK/ft_$precision.log" 2>&1; then
        read -r steps first last finite <<<"$(losses "$WORK/ft_$precision")"
        note="$steps steps in $(( $(date +%s) - start )) s, loss $first -> $last"
        [ "$DEVICE" = cpu ] && note="$note (CPU: $precision ignored)"
        if [ "$steps" = "$STEPS" ] && [ "$finite" = 1 ]; then say PASS "finetune $precision" "$note"
        else say FAIL "finetune $precision" "$note, finite losses: $finite"; fi
    else
        say FAIL "finetune $precision" "see $WORK/ft_$precision.log"
    fi
done

# --- 3. two processes under torchrun ---------------------------------------------------------------------
if [ "$DEVICE" = cuda ] && [ "$GPUS" -lt 2 ]; then
    say SKIP "torchrun 2 processes" "one GPU only"
else
    write_finetune_config ft_ddp
    start=$(date +%s)
    if "$PY" -m torch.distributed.run --standalone --nproc_per_node 2 -m asr_analogy finetune "$WORK/ft_ddp.yaml" \
            >"$WORK/ft_ddp.log" 2>&1; then
        read -r steps first last finite <<<"$(losses "$WORK/ft_ddp")"
        note="$steps steps in $(( $(date +%s) - start )) s on 2 processes ($DEVICE), loss $first -> $last"
        if [ "$steps" = "$STEPS" ] && [ "$finite" = 1 ]; then say PASS "torchrun 2 processes" "$note"
        else say FAIL "torchrun 2 processes" "$note"; fi
    else
        say FAIL "torchrun 2 processes" "see $WORK/ft_ddp.log"
    fi
fi
exit $FAILED

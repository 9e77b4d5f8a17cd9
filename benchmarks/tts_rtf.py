"""Synthesis speed per TTS backend, side by side, and the cost of a fully cached re-run.

    .venv/bin/python benchmarks/tts_rtf.py [--backends piper,hibari,espeak] [--limit 120] [--workers 2]

Sentences: the transcripts of the IVR corpus (``data/ivr/manifest.jsonl`` from ``asr-analogy prep ivr-prompts``),
else the transcript file of the Debian package if it was fetched into the cache, else ~50 built-in IVR-like
sentences. ``--limit`` takes an evenly spaced subset (0 = all).

For each backend, ``synthesize()`` runs end to end with an empty cache (worker start-up and voice loading
included), then again into a new output directory with the same cache; then, in this process, the voice is
loaded and the backend alone is timed over the same sentences. Printed per backend:

    RTF        wall seconds / seconds of audio produced (lower is faster; 1/RTF = x real time)
    vs piper   the backend's RTF divided by piper's
    cached     wall seconds of the cached re-run, and its ratio to the first run
    load s     seconds of the first call in one process (loading the voice)
    1-proc RTF RTF of the backend calls alone, one process, after loading

Wall-clock numbers depend on what else runs on the machine; the load average before and after is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUILTIN = [
    "Thank you for calling. Please listen carefully, as our menu options have changed.",
    "For billing questions, press 1.",
    "To speak with a representative, press 0 at any time.",
    "Please enter your account number, followed by the pound key.",
    "The number you have dialed is not in service.",
    "Please hold while I transfer your call.",
    "Your call is important to us. Please stay on the line.",
    "You have 3 new messages and 2 saved messages.",
    "To listen to your messages, press 1. To change your greeting, press 3.",
    "Message deleted.",
    "Please record your message after the tone. When you are finished, hang up or press pound.",
    "Your password has been changed.",
    "The person at extension 204 is not available.",
    "Please enter the extension of the party you wish to reach.",
    "You are the first caller in the queue.",
    "The estimated hold time is less than 5 minutes.",
    "All of our agents are currently assisting other callers.",
    "You are now entering the conference.",
    "There are 4 other participants in this conference.",
    "The conference is now locked.",
    "You are currently muted. Press star 6 to unmute.",
    "Please say or enter your 5 digit zip code.",
    "I'm sorry, I didn't understand that.",
    "Goodbye.",
    "Please enter your personal identification number.",
    "That was an invalid entry. Please try again.",
    "Our office hours are Monday through Friday, 8 a.m. to 6 p.m.",
    "To repeat this menu, press 9.",
    "To return to the main menu, press star.",
    "Your balance is $42.17.",
    "Your next payment of $125 is due on the 15th.",
    "Please spell the last name of the person you wish to reach.",
    "For the company directory, press 8.",
    "The mailbox is full and cannot accept any messages at this time.",
    "Press 1 to accept this call, or 2 to decline.",
    "Call forwarding is now on.",
    "Do not disturb has been turned off.",
    "Please wait while we connect you to the next available agent.",
    "This call may be recorded for quality assurance.",
    "The party you are calling is on another call.",
    "You have reached the voicemail of Doctor Smith.",
    "Please state your name after the tone.",
    "Your request has been submitted.",
    "For technical support, press 2. For sales, press 3.",
    "To hear these options in Spanish, press 7.",
    "The time is now 3:45 p.m.",
    "Your confirmation number is 7 4 9 1 2.",
    "Please enter the date of your appointment.",
    "Your appointment is scheduled for Tuesday at 10:30 a.m.",
    "Thank you for your patience. Goodbye.",
]


def load_sentences(limit: int) -> tuple[list[str], str]:
    ivr = ROOT / "data" / "ivr" / "manifest.jsonl"
    texts, source = [], ""
    if ivr.is_file():
        texts = [json.loads(line)["text"] for line in ivr.read_text(encoding="utf-8").splitlines() if line.strip()]
        source = str(ivr.relative_to(ROOT))
    else:
        cache = Path(os.environ.get("ASR_ANALOGY_CACHE") or Path.home() / ".cache" / "asr_analogy") / "corpora" / "ivr"
        found = sorted(cache.rglob("core-sounds-en.txt*")) if cache.is_dir() else []
        if found:
            from data_prep.ivr_prompts import clean_text, is_note_only, parse_transcripts

            texts = [clean_text(raw) for _, raw in parse_transcripts(found[0]) if not is_note_only(raw)]
            source = str(found[0])
    texts = [t for t in dict.fromkeys(texts) if t.strip()]
    if not texts:
        texts, source = list(BUILTIN), "built-in IVR-like sentences"
    if limit and len(texts) > limit:
        step = len(texts) / limit
        texts = [texts[int(i * step)] for i in range(limit)]
    return texts, source


def steady_state(name: str, texts: list[str]) -> dict:
    """One process, no pipeline: seconds to load the voice (first call), then RTF of the backend call alone."""
    from asr_analogy.speech.tts import get_backend
    from asr_analogy.speech.tts.normalize import normalize_for_tts

    engine = get_backend(name)
    t0 = time.perf_counter()
    engine.synthesize("Warm up.", seed=0)
    load = time.perf_counter() - t0
    audio_s, t0 = 0.0, time.perf_counter()
    for i, text in enumerate(texts):
        try:
            audio, sr = engine.synthesize(normalize_for_tts(text), seed=i)
        except Exception:
            continue
        audio_s += len(audio) / sr
    return {"load_s": load, "steady_rtf": (time.perf_counter() - t0) / audio_s}


def run_backend(name: str, texts: list[str], workers: int, tmp: Path) -> dict:
    from asr_analogy.speech.tts import synthesize

    cache = tmp / f"cache-{name}"
    t0 = time.perf_counter()
    manifest = synthesize(texts, tmp / f"{name}-cold", backend=name, workers=workers, cache_dir=cache, progress=False)
    cold = time.perf_counter() - t0
    summary = json.loads((manifest.parent / "synthesized.json").read_text())
    t0 = time.perf_counter()
    again = synthesize(texts, tmp / f"{name}-cached", backend=name, workers=workers, cache_dir=cache, progress=False)
    cached = time.perf_counter() - t0
    second = json.loads((again.parent / "synthesized.json").read_text())
    audio_s = summary["audio_hours"] * 3600.0
    return {
        "backend": name, "samples": summary["samples_written"], "skipped": summary["skipped"], "audio_s": audio_s,
        "cold_s": cold, "rtf": cold / audio_s, "cached_s": cached, "cached_synthesized": second["synthesized"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="piper,hibari,espeak")
    parser.add_argument("--limit", type=int, default=120, help="evenly spaced subset of the sentences; 0 = all")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-steady", action="store_true", help="skip the single-process steady-state timing")
    args = parser.parse_args()

    texts, source = load_sentences(args.limit)
    print(f"sentences: {len(texts)} from {source}; workers: {args.workers}; cpus: {os.cpu_count()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (a shared machine slows every row)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="tts-rtf-") as tmp:
        for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
            try:
                row = run_backend(name, texts, args.workers, Path(tmp))
                if not args.no_steady:
                    row.update(steady_state(name, texts))
                rows.append(row)
            except Exception as exc:  # a backend that is not installed is reported, the others still run
                print(f"{name}: not measured ({type(exc).__name__}: {exc})")
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not rows:
        sys.exit(1)
    ref = next((r for r in rows if r["backend"] == "piper"), rows[0])
    head = (f"{'backend':<8} {'samples':>7} {'audio s':>8} {'wall s':>7} {'RTF':>6} {'x RT':>6} "
            f"{'vs ' + ref['backend']:>9} {'cached s':>9} {'cached/cold':>11} {'load s':>7} {'1-proc RTF':>10}")
    print(head)
    print("-" * len(head))
    for r in rows:
        steady = f"{r['load_s']:>7.2f} {r['steady_rtf']:>10.3f}" if "load_s" in r else f"{'-':>7} {'-':>10}"
        print(f"{r['backend']:<8} {r['samples']:>7} {r['audio_s']:>8.1f} {r['cold_s']:>7.1f} {r['rtf']:>6.3f} "
              f"{1 / r['rtf']:>6.1f} {r['rtf'] / ref['rtf']:>9.2f} {r['cached_s']:>9.2f} "
              f"{r['cached_s'] / r['cold_s']:>11.3f} {steady}")
    print("wall s / RTF: end to end with the workers, start-up and voice loading included; load s: first call in "
          "one process; 1-proc RTF: backend calls alone after loading, one process")
    bad = [r["backend"] for r in rows if r["cached_synthesized"] != 0]
    if bad:
        print(f"warning: the cached re-run synthesized again for {', '.join(bad)}")


if __name__ == "__main__":
    main()

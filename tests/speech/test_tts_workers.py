"""synthesize(workers > 1): worker processes that leave the caller's ``__main__`` alone, give the same audio as one
process, and report a sample whose synthesis kills its worker."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

BACKEND = '''
import os
from pathlib import Path

import numpy as np

from asr_analogy.speech.tts import TTSBackend


class ToneBackend(TTSBackend):
    """A 220 Hz tone with seeded noise, 0.1 s per word at 8 kHz. Notes the pid of every call in $PIDS;
    text containing CRASH ends the process on the spot (a crash inside native code)."""

    name = "tone"
    default_voice = "a"

    def list_voices(self):
        return ["a"]

    def _synthesize(self, text, voice, *, seed, speed, pitch):
        if "CRASH" in text:
            os._exit(3)
        (Path(os.environ["PIDS"]) / str(os.getpid())).touch()
        n = 800 * len(text.split())
        noise = np.random.default_rng(seed).standard_normal(n) * 0.01
        return (0.3 * np.sin(2 * np.pi * 220 * np.arange(n) / 8000) + noise).astype(np.float32), 8000
'''

# No `if __name__ == "__main__":` guard, on purpose: workers must not run this script again.
SCRIPT = '''
import sys
from pathlib import Path

from asr_analogy.speech.tts import synthesize
from tone_backend import ToneBackend

out, cache, runs, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with open(runs, "a") as fh:
    fh.write("run\\n")
main = sys.modules["__main__"]
before = (main.__file__, main.__spec__)
texts = ["one two three", "four five", "six seven eight nine", "please CRASH now", "ten"]
if workers == 1:  # here the crash would end the script itself
    texts.remove("please CRASH now")
synthesize(texts, out, backend=ToneBackend(), workers=workers, cache_dir=cache, progress=False)
assert (main.__file__, main.__spec__) == before, "synthesize changed __main__"
'''


def _run_script(tmp_path: Path, name: str, workers: int) -> Path:
    (tmp_path / "tone_backend.py").write_text(BACKEND)
    (tmp_path / "script.py").write_text(textwrap.dedent(SCRIPT))
    pids = tmp_path / f"pids-{name}"
    pids.mkdir()
    env = dict(os.environ, PIDS=str(pids), PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    args = [sys.executable, str(tmp_path / "script.py"), str(tmp_path / name), str(tmp_path / f"cache-{name}"),
            str(tmp_path / "runs.txt"), str(workers)]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return tmp_path / name


def _audio_by_text(out: Path) -> dict[str, bytes]:
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return {r["text"]: (out / r["audio_filepath"]).read_bytes() for r in records}


def test_workers_leave_main_alone_match_one_process_and_survive_a_crash(tmp_path):
    pooled = _run_script(tmp_path, "pooled", 2)
    # The script ran once: no worker imported it (it has no __main__ guard), and __main__ is unchanged (the
    # script asserts it).
    assert (tmp_path / "runs.txt").read_text() == "run\n"
    # The samples were made in processes other than the script's ...
    pids = {int(p.name) for p in (tmp_path / "pids-pooled").iterdir()}
    assert pids and all(pid > 0 for pid in pids)
    summary = json.loads((pooled / "synthesized.json").read_text())
    assert (summary["synthesized"], summary["skipped"]) == (4, 1)
    # ... the sample that killed its worker (twice) is reported, the others are written ...
    skipped = [json.loads(line) for line in (pooled / "skipped.jsonl").read_text().splitlines()]
    assert [(s["id"], s["reason"]) for s in skipped] == [("s00004-0", "worker_crashed")]
    assert "exited with status 3" in skipped[0]["detail"]
    # ... and the audio equals a one-process run bit for bit.
    single = _run_script(tmp_path, "single", 1)
    assert (tmp_path / "runs.txt").read_text() == "run\nrun\n"
    assert not pids & {int(p.name) for p in (tmp_path / "pids-single").iterdir()}
    pooled_audio, single_audio = _audio_by_text(pooled), _audio_by_text(single)
    assert sorted(pooled_audio) == ["four five", "one two three", "six seven eight nine", "ten"]
    assert pooled_audio == single_audio

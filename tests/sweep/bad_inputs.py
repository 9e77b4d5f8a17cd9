"""Bad-input sweep of the ``asr-analogy`` CLI, as a new user would try it.

    python -m tests.sweep.bad_inputs --out exp/sweep/        (a few minutes on 2 cores)

Every case runs one command (in process through click's runner, or in a subprocess for the faults that need
one: a file-size limit standing in for a full disk) and is classified:

- ``clear error``: exit != 0, one line naming the problem, no traceback, inputs unchanged, no output left;
- ``ok``: a valid use that succeeded and whose result passed its check;
- ``silently wrong``: exit 0 for a bad input, a wrong/empty/non-finite/partial result, or output left by a
  refused command;
- ``unclear error``: refused, but the message does not name the problem;
- ``refused valid``: a valid use refused;
- ``traceback``: an exception escaped;
- ``data lost``: an input (every byte under the fixture folder, plus each case's own inputs) was modified or
  deleted.

Prints the table and writes ``OUT/cases.json`` (per case: command, expectation, outcome, exit code, output).
The module name does not start with ``test_``: pytest never collects it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tests.sweep.cases import all_cases
from tests.sweep.fixtures import build, tree_hash

REPO = Path(__file__).resolve().parents[2]
COLUMNS = ["ok", "clear error", "silently wrong", "unclear error", "refused valid", "traceback", "data lost",
           "setup failed"]


@dataclass
class Outcome:
    exit_code: int
    output: str
    exception: str | None = None


def invoke(argv: list[str], env: dict | None = None) -> Outcome:
    """The CLI in this process; ``env`` is set for the call only."""
    from click.testing import CliRunner

    from asr_analogy.cli import main

    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        result = CliRunner().invoke(main, argv)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    exc = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        exc = "".join(traceback.format_exception(result.exception))[-3000:]
    return Outcome(result.exit_code, result.output, exc)


def invoke_subprocess(argv: list[str], file_size_limit: int | None = None, timeout: float = 300) -> Outcome:
    """The CLI in a fresh interpreter; ``file_size_limit`` (bytes) makes every larger write fail (EFBIG), the
    way a full disk makes it fail (ENOSPC), without root or a mount."""
    import resource
    import signal

    def limit():
        if file_size_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "asr_analogy", *argv], capture_output=True, text=True,
                          preexec_fn=limit, env=env, timeout=timeout, cwd=REPO)
    output = proc.stdout + proc.stderr
    return Outcome(proc.returncode, output, output[-3000:] if "Traceback (most recent call last)" in output else None)


def _one_line_error(output: str) -> bool:
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("error: ", "Error: "))]
    return len(errors) == 1 or (lines[-1:] == ["Aborted!"] and not errors)  # an interrupt (a simulated kill)


def classify(case, outcome: Outcome, lost: list[str], leftover: list[str], problem: str | None) -> str:
    if lost:
        return "data lost"
    if outcome.exception or "Traceback (most recent call last)" in outcome.output:
        return "traceback"
    if case.expect == "error":
        if outcome.exit_code == 0:
            return "silently wrong"
        if leftover:
            return "silently wrong"
        if not _one_line_error(outcome.output) or (case.msg and not re.search(case.msg, outcome.output, re.I | re.S)):
            return "unclear error"
        return "clear error"
    if outcome.exit_code != 0:
        return "refused valid"
    return "silently wrong" if problem else "ok"


def run_case(case, fx: Path, work: Path) -> dict:
    w = work / case.name
    shutil.rmtree(w, ignore_errors=True)
    w.mkdir(parents=True)
    from tests.sweep.cases import fill

    if case.setup:
        try:
            case.setup(fx, w)
        except Exception as exc:  # noqa: BLE001 - a broken case is reported, the sweep goes on
            return {"name": case.name, "group": case.group, "command": " ".join(case.argv), "setup": case.note,
                    "expect": case.expect, "status": "setup failed", "exit_code": None,
                    "output": f"{type(exc).__name__}: {exc}", "traceback": None, "inputs_changed": [],
                    "output_left": [], "problem": None, "seconds": 0}
    protected = [fx] + [w / p for p in case.protect]
    before = {str(p): tree_hash(p) if p.exists() else None for p in protected}
    outs = [Path(fill(o, fx, w)) for o in case.outs]
    out_existed = {str(o): o.exists() for o in outs}
    argv = [fill(a, fx, w) for a in case.argv]
    started = time.perf_counter()
    try:
        with (case.patch(fx, w) if case.patch else contextlib.nullcontext()):
            if case.subprocess:
                outcome = invoke_subprocess(argv, file_size_limit=case.file_size_limit)
            else:
                outcome = invoke(argv, env=case.env)
    finally:
        if case.teardown:
            case.teardown(fx, w)
    seconds = time.perf_counter() - started
    lost = [p for p, h in before.items() if (tree_hash(Path(p)) if Path(p).exists() else None) != h]
    leftover = []
    if outcome.exit_code != 0:
        leftover = [str(o) for o in outs if o.exists() and not out_existed[str(o)]]
        for o in outs:  # hidden temporaries of a refused write
            if o.parent.is_dir():
                leftover += [str(p) for p in o.parent.iterdir() if p.name.startswith(f".{o.name}.tmp-")]
    problem = None
    if case.check and outcome.exit_code == 0 and not lost:
        try:
            problem = case.check(fx, w, outcome)
        except Exception as exc:  # a check that cannot read the result: the result is wrong
            problem = f"check failed: {type(exc).__name__}: {exc}"
    status = classify(case, outcome, lost, leftover, problem)
    return {"name": case.name, "group": case.group, "command": "asr-analogy " + " ".join(argv),
            "setup": case.note, "expect": case.expect, "status": status, "exit_code": outcome.exit_code,
            "output": outcome.output[-1500:], "traceback": outcome.exception, "inputs_changed": lost,
            "output_left": leftover, "problem": problem, "seconds": round(seconds, 2)}


def table(rows: list[dict]) -> str:
    groups = sorted({r["group"] for r in rows}, key=[r["group"] for r in rows].index)
    head = f"{'group':<22}{'tried':>6}" + "".join(f"{c:>16}" for c in COLUMNS)
    lines = [head, "-" * len(head)]
    for g in groups + ["total"]:
        sel = [r for r in rows if g in ("total", r["group"])]
        lines.append(f"{g:<22}{len(sel):>6}" + "".join(f"{sum(r['status'] == c for r in sel):>16}" for c in COLUMNS))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="exp/sweep", help="Where fixtures, case folders and cases.json go.")
    parser.add_argument("--only", default=None, help="Run the cases whose name contains this text.")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = Path(args.out).absolute()
    fx = out / "inputs"
    build(fx)
    work = out / "cases"
    rows = []
    for case in all_cases():
        if args.only and args.only not in case.name:
            continue
        row = run_case(case, fx, work)
        rows.append(row)
        print(f"{row['status']:<15} {row['name']:<40} exit {row['exit_code']}  "
              f"{(row['output'].strip().splitlines() or [''])[-1][:110]}", flush=True)
    (out / "cases.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False))
    print()
    print(table(rows))
    bad = [r for r in rows if r["status"] not in ("ok", "clear error")]
    if bad:
        print("\nnot handled well:")
        for r in bad:
            print(f"  [{r['status']}] {r['name']}: {r['command']}")
    print(f"\ndetails: {out / 'cases.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Mutation testing of the merge maths and its neighbours with mutmut (``make mutation``; slow, not in CI).

Each module in scope is copied into a scratch directory, mutmut plants one small bug at a time in it
(an operator flipped, a constant changed, an argument dropped) and runs the tests that reach the mutated
function. A mutant that no test notices *survives*: either a test is missing, or the mutant is
*equivalent* (behaves exactly like the original, so no test can kill it). Equivalent mutants are listed
with a reason in ``tools/mutation_equivalent.txt`` and left out of the score.

    python tools/mutation.py                            # every module in SCOPES (long)
    python tools/mutation.py --scope asr_analogy/ops    # one area (a few minutes)
    python tools/mutation.py --scope asr_analogy/merge/compressed.py   # one file, with its package's tests

Writes ``exp/mutation/report.md``: the score (killed / (mutants - equivalent)), the run time, the count per
status and the diff of every surviving mutant. mutmut's own files stay in ``exp/mutation/work``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCOPES: dict[str, list[str]] = {
    # module (file or package, relative to the repository) -> the fast tests that exercise it (globs)
    "asr_analogy/ops": ["tests/ops"],
    "asr_analogy/merge": ["tests/merge"],
    "asr_analogy/io": ["tests/io"],
    "asr_analogy/speech/metrics.py": ["tests/speech/test_metrics*.py", "tests/speech/test_bootstrap*.py"],
    "asr_analogy/analogy/vectors.py": ["tests/analogy/test_vectors*.py"],
    "asr_analogy/analogy/lambdas.py": ["tests/analogy/test_*lambda*.py"],
    "asr_analogy/analogy/access.py": ["tests/analogy/test_*access*.py"],
}

# Slow, resource-bound or process-spawning tests stay out: each mutant reruns the tests that reach it, and a
# survivor runs all of them (three CLI tests in a new process took 31 s of the merge tests' 36 s).
PYTEST_ARGS = ["-q", "-p", "no:cacheprovider", "-m", "not slow and not real_model and not real_corpus and not spawns"]

# mutmut exit-code classes (mutmut.stats.status_by_exit_code) that count as detected.
DETECTED = {"killed", "timeout", "segfault", "caught by type check"}
EQUIVALENT_FILE = ROOT / "tools" / "mutation_equivalent.txt"


def mutmut_config(scope: list[str], tests: list[str]) -> str:
    """The [tool.mutmut] table for ``scope`` (mutmut reads it from pyproject.toml in its working directory)."""
    only = [f"{s}/*" if (ROOT / s).is_dir() else s for s in scope]
    lines = [
        "[tool.mutmut]",
        'source_paths = ["asr_analogy"]',
        f"only_mutate = {json.dumps(only)}",
        'also_copy = ["data_prep"]',
        f"pytest_add_cli_args = {json.dumps(PYTEST_ARGS)}",
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
        "use_git_change_detection = false",
    ]
    return "\n".join(lines) + "\n"


def tests_for(scope: list[str]) -> list[str]:
    """Existing test files and folders for the modules in ``scope``."""
    found: list[str] = []
    for module in scope:
        patterns = SCOPES.get(module.rstrip("/"))
        if patterns is None:  # a file inside a package of SCOPES: that package's tests
            parents = [k for k in SCOPES if module.startswith(k + "/")]
            patterns = SCOPES[max(parents, key=len)] if parents else None
        if patterns is None:
            raise SystemExit(f"no tests are known for {module}; add it to SCOPES in {Path(__file__).name}")
        for pattern in patterns:
            for path in sorted(ROOT.glob(pattern)):
                rel = str(path.relative_to(ROOT))
                if rel not in found:
                    found.append(rel)
    return found


def prepare(work: Path, scope: list[str], tests: list[str]) -> None:
    """A fresh scratch copy of the package, the tests and pyproject.toml with the mutmut table."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("asr_analogy", "data_prep", "tests"):
        shutil.copytree(ROOT / name, work / name, ignore=ignore)
    project = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    (work / "pyproject.toml").write_text(project + "\n" + mutmut_config(scope, tests), encoding="utf-8")


def read_equivalent() -> dict[str, str]:
    """{mutant name: reason} from ``tools/mutation_equivalent.txt`` (``name  reason`` per line, # comments)."""
    out: dict[str, str] = {}
    if EQUIVALENT_FILE.exists():
        for line in EQUIVALENT_FILE.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, reason = line.partition(" ")
                out[name] = reason.strip()
    return out


def results(work: Path) -> dict[str, str]:
    """{mutant name: status} from mutmut's per-file ``.meta`` records."""
    from mutmut.stats import status_by_exit_code

    out: dict[str, str] = {}
    for meta in sorted((work / "mutants").rglob("*.py.meta")):
        data = json.loads(meta.read_text(encoding="utf-8"))
        for name, code in data.get("exit_code_by_key", {}).items():
            out[name] = status_by_exit_code[code]
    return out


_DIFFS = """
import json, sys
from mutmut.mutation.diff_apply import find_mutant, get_diff_for_mutant
out = {}
for name in json.load(sys.stdin):
    out[name] = get_diff_for_mutant(name, path=find_mutant(name).path)
print(json.dumps(out))
"""


def diffs(work: Path, names: list[str], env: dict) -> dict[str, str]:
    """{mutant name: unified diff of the mutated function} (one process for all, as ``mutmut show`` prints)."""
    if not names:
        return {}
    shown = subprocess.run([sys.executable, "-c", _DIFFS], cwd=work, env=env, input=json.dumps(names),
                           capture_output=True, text=True, check=True)
    return json.loads(shown.stdout.splitlines()[-1])


def report(work: Path, scope: list[str], tests: list[str], seconds: float, env: dict) -> str:
    status = results(work)
    equivalent = {n: r for n, r in read_equivalent().items() if n in status and status[n] not in DETECTED}
    counts = Counter(status.values())
    counted = [n for n in status if n not in equivalent and status[n] not in ("skipped", "not checked")]
    detected = sum(status[n] in DETECTED for n in counted)
    score = 100.0 * detected / len(counted) if counted else float("nan")
    missed = [n for n in counted if status[n] not in DETECTED]
    # mutmut also stops a mutant's tests after a wall-clock limit (half its CPU limit): on a loaded machine a
    # slow but harmless mutant can time out. Counting timeouts as missed gives a lower bound.
    timeouts = sorted(n for n in counted if status[n] == "timeout")
    floor = 100.0 * (detected - len(timeouts)) / len(counted) if counted else float("nan")
    from importlib.metadata import version

    lines = [
        "# Mutation testing report",
        "",
        f"- scope: {', '.join(scope)}",
        f"- tests: {', '.join(tests)}",
        f"- tool: mutmut {version('mutmut')}; run time {seconds / 60:.1f} min",
        f"- **score: {score:.1f} %** ({detected} of {len(counted)} mutants detected; "
        f"{len(equivalent)} equivalent left out)",
        f"- by status: {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}",
        f"- lower bound, timeouts counted as missed: {floor:.1f} %",
        "",
        f"## Not detected ({len(missed)})",
        "",
        "Each needs a test that fails on it, or a line in tools/mutation_equivalent.txt saying why none can.",
        "",
    ]
    shown = diffs(work, missed, env)
    for name in missed:
        lines += [f"### {name} ({status[name]})", "", "```diff", shown[name].strip(), "```", ""]
    if timeouts:
        lines += [f"## Timed out ({len(timeouts)}, counted as detected)", "", ", ".join(f"`{n}`" for n in timeouts), ""]
    if equivalent:
        lines += ["## Equivalent (left out of the score)", ""]
        lines += [f"- `{n}`: {r}" for n, r in sorted(equivalent.items())]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scope", nargs="+", default=list(SCOPES), help="modules to mutate (default: all of SCOPES)")
    ap.add_argument("--work", type=Path, default=ROOT / "exp" / "mutation" / "work")
    ap.add_argument("--report", type=Path, default=ROOT / "exp" / "mutation" / "report.md")
    ap.add_argument("--max-children", type=int, default=2, help="mutants tested in parallel")
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from the last run (after "
                    "editing tools/mutation_equivalent.txt)")
    args = ap.parse_args(argv)
    scope = [s.rstrip("/") for s in args.scope]
    tests = tests_for(scope)
    # One thread per test process: mutmut forks a process per mutant, and forked OpenMP pools can hang.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    timing = args.work / "seconds.txt"
    if not args.report_only:
        prepare(args.work, scope, tests)
        start = time.monotonic()
        cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children)]
        run = subprocess.run(cmd, cwd=args.work, env=env)
        timing.write_text(f"{time.monotonic() - start:.1f}\n")
        if run.returncode != 0:
            print(f"mutmut run failed (exit {run.returncode}); see the output above", file=sys.stderr)
            return run.returncode
    seconds = float(timing.read_text()) if timing.exists() else float("nan")
    text = report(args.work, scope, tests, seconds, env)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text + "\n", encoding="utf-8")
    print("\n".join(text.splitlines()[:8]))
    print(f"report: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

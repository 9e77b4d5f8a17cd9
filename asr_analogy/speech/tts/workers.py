"""Worker processes for ``synthesize``: fresh interpreters that load one backend and produce samples.

Each worker is a new ``python`` running ``main()`` of this module; it never imports the caller's main script
(``multiprocessing``'s spawn start method would, so a script without an ``if __name__ == "__main__":`` guard
would run its synthesis again in every worker), inherits no threads, and leaves the caller's process as it was.
Parent and worker talk over the worker's stdin and stdout with length-prefixed pickles: first
``(sys.path, backend class path, backend options)``, then one task per message, each answered by its result
dict. Anything the backend prints goes to stderr. A worker that dies (a crash in native code) costs its task
one more try in a fresh worker; a task that crashes a worker twice is reported as ``worker_crashed``.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

_LAUNCH = "from asr_analogy.speech.tts.workers import main; main()"
_HEADER = struct.Struct("<Q")


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _receive(stream):
    """The next message; ``EOFError`` when the other side closed the stream (or died) before a whole one."""
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)  # noqa: S301 - written by our own parent or worker process


def load_backend(class_path: str, options: dict):
    """Instantiate the backend class ``"package.module:Class"`` with ``options``."""
    import importlib

    module, _, qualname = class_path.partition(":")
    cls = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    return cls(**options)


def main() -> None:
    """Worker entry point: load the backend, then answer tasks until stdin closes."""
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray output of the backend (native code included) goes to stderr, not into the results
    tasks = sys.stdin.buffer
    sys_path, class_path, options = _receive(tasks)
    sys.path[:] = sys_path
    from asr_analogy.speech.tts.pipeline import run_task

    backend = load_backend(class_path, options)
    while True:
        try:
            task = _receive(tasks)
        except EOFError:
            return
        _send(results, run_task(task, backend))


def _start(class_path: str, options: dict) -> subprocess.Popen:
    package_root = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCH], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    _send(proc.stdin, (list(sys.path), class_path, options))
    return proc


def _stop(proc: subprocess.Popen) -> None:
    for stream in (proc.stdin, proc.stdout):
        try:
            stream.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_pool(tasks: list, class_path: str, options: dict, workers: int, done: Callable[[], None]) -> dict[str, dict]:
    """Run ``tasks`` (each with an ``id``) in up to ``workers`` worker processes; results by task id.

    ``done`` is called once per finished task (from the threads that feed the workers, one at a time).
    """
    results: dict[str, dict] = {}
    lock = threading.Lock()
    remaining = list(tasks)
    for attempt in range(2):
        if not remaining:
            break
        todo: queue.SimpleQueue = queue.SimpleQueue()
        for task in remaining:
            todo.put(task)
        crashed: list[tuple[object, str]] = []
        procs: list[subprocess.Popen] = []

        def feed(proc: subprocess.Popen) -> None:
            while True:
                try:
                    task = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    _send(proc.stdin, task)
                    result = _receive(proc.stdout)
                except (EOFError, OSError):
                    code = proc.wait()
                    with lock:
                        crashed.append((task, f"the worker process exited with status {code}"))
                    return
                with lock:
                    results[task.id] = result
                    done()

        try:
            for _ in range(min(workers, len(remaining))):
                procs.append(_start(class_path, options))
            threads = [threading.Thread(target=feed, args=(p,), daemon=True) for p in procs]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        except BaseException:  # interrupted: no worker outlives the call
            for proc in procs:
                proc.kill()
            raise
        finally:
            for proc in procs:
                _stop(proc)
        while True:  # tasks no live worker was left to take
            try:
                crashed.append((todo.get_nowait(), "every worker process exited"))
            except queue.Empty:
                break
        remaining = [task for task, _ in crashed]
        if attempt == 1:
            for task, detail in crashed:
                results[task.id] = {"ok": False, "reason": "worker_crashed", "detail": detail}
                done()
    return results

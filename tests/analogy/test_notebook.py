"""The walkthrough notebook runs top to bottom on a finished recipe run (tiny models here)."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

from tests.analogy.conftest import REPO


def test_walkthrough_notebook_executes(e2e_run, monkeypatch):
    _, exp, _ = e2e_run
    monkeypatch.setenv("SYN2REAL_EXP", str(exp))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(REPO / "notebooks" / "syn2real_walkthrough.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "C_paper (source real+TTS, then target TTS)" in text  # the result table
    assert "max |difference| = " in text  # the notebook asserts the hand computation itself
    assert "leaks: []" in text
    assert "ref: " in text and "hyp: " in text  # the in-memory sweep transcribed clips

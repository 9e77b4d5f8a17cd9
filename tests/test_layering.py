"""Imports point one way: io -> ops -> merge -> speech -> analogy -> cli; data_prep sits beside them.

``layer_violations(root)`` checks every module of ``root/asr_analogy`` and ``root/data_prep``: plain imports,
``from`` imports (relative ones resolved) and string imports (``importlib.import_module("asr_analogy.x")``,
``import_module(f"data_prep.{name}")``: the literal prefix up to the first ``{``). Rules:
- an ``asr_analogy`` layer imports only its own or lower layers (``RANK``);
- ``data_prep`` imports only ``asr_analogy.errors``, ``asr_analogy.io`` and itself;
- only ``asr_analogy.analogy`` and ``asr_analogy.cli`` import ``data_prep``.
``ops`` imports no transformers and no config libraries.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RANK = {"__init__": 0, "errors": 0, "io": 0, "ops": 1, "merge": 2, "speech": 3, "store": 3, "textlm": 3, "analogy": 4, "cli": 5, "__main__": 6}
"""asr_analogy layer → rank: a module may import layers of equal or lower rank (``__init__``: the package root)."""
DATA_PREP = "data_prep"
DATA_PREP_USES = {"errors", "io"}
"""The asr_analogy layers data_prep may import."""
DATA_PREP_USERS = {"analogy", "cli"}
"""The asr_analogy layers that may import data_prep."""
OPS_FORBIDDEN = ("transformers", "yaml", "pydantic", "datasets", "asr_analogy.merge")


def layer_of(path: Path, root: Path) -> str:
    """``data_prep`` for a module under ``root/data_prep``, else the first part below ``root/asr_analogy``."""
    rel = path.relative_to(root)
    if rel.parts[0] == DATA_PREP:
        return DATA_PREP
    return rel.parts[1].removesuffix(".py")


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _string_import(node: ast.Call) -> str | None:
    """The module named by ``import_module(...)``/``importlib.import_module(...)``: a literal, or an f-string's
    literal prefix up to its first ``{`` (without a trailing dot)."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name != "import_module" or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr):
        prefix = ""
        for part in arg.values:
            if not (isinstance(part, ast.Constant) and isinstance(part.value, str)):
                break
            prefix += part.value
        return prefix.rstrip(".") or None
    return None


def imported_modules(path: Path, root: Path) -> list[str]:
    """Every module ``path`` imports: ``import a.b``, ``from a.b import c`` (as ``a.b.c`` when ``a.b`` is a
    package root such as ``asr_analogy``), relative imports resolved against ``root``, and string imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            if module in ("asr_analogy", DATA_PREP):
                names.extend(f"{module}.{a.name}" for a in node.names)
            else:
                names.append(module)
        elif isinstance(node, ast.Call):
            name = _string_import(node)
            if name is not None:
                names.append(name)
    return names


def module_violations(path: Path, root: Path) -> list[str]:
    """The imports of ``path`` that break the layer rules, each as ``"<file>: <why>"``."""
    mine = layer_of(path, root)
    rel = path.relative_to(root)
    out = []
    for name in imported_modules(path, root):
        parts = name.split(".")
        if parts[0] == DATA_PREP:
            if mine not in (DATA_PREP, *DATA_PREP_USERS):
                out.append(f"{rel}: layer {mine} imports {name}; only {sorted(DATA_PREP_USERS)} may import data_prep")
            continue
        if parts[0] != "asr_analogy":
            continue
        if len(parts) < 2:
            out.append(f"{rel}: imports {name!r}, which names no layer")
            continue
        other = parts[1]
        if mine == DATA_PREP:
            if other not in DATA_PREP_USES:
                out.append(f"{rel}: data_prep imports {name}; it may import only asr_analogy.errors and .io")
        elif other not in RANK:
            out.append(f"{rel}: imports unknown layer {name}")
        elif RANK[other] > RANK[mine]:
            out.append(f"{rel}: layer {mine} imports higher layer {name}")
    return out


def modules(root: Path) -> list[Path]:
    """The checked modules: ``asr_analogy/`` (known layers and unknown ones alike) and ``data_prep/``."""
    return sorted([*(root / "asr_analogy").rglob("*.py"), *(root / DATA_PREP).rglob("*.py")])


def layer_violations(root: Path) -> list[str]:
    """Every layer violation under ``root`` (an empty list when the house is in order)."""
    out = []
    for path in modules(root):
        if layer_of(path, root) not in (*RANK, DATA_PREP):
            out.append(f"{path.relative_to(root)}: not in a known layer")
        else:
            out.extend(module_violations(path, root))
    return out


@pytest.mark.parametrize("path", modules(REPO), ids=lambda p: str(p.relative_to(REPO)))
def test_imports_point_one_way(path):
    assert layer_of(path, REPO) in (*RANK, DATA_PREP), f"{path}: not in a known layer"
    assert module_violations(path, REPO) == []


@pytest.mark.parametrize(
    "path", [p for p in modules(REPO) if layer_of(p, REPO) == "ops"], ids=lambda p: p.name
)
def test_ops_is_pure(path):
    for name in imported_modules(path, REPO):
        assert not name.startswith(OPS_FORBIDDEN), f"{path}: ops/ must not import {name}"


PLANTED = {
    # upward imports, in each form the checker reads
    "asr_analogy/io/bad.py": "from asr_analogy.merge import engine\n",
    "asr_analogy/io/bad_plain.py": "import asr_analogy.speech.train\n",
    "asr_analogy/io/bad_from_root.py": "from asr_analogy import analogy\n",
    "asr_analogy/merge/bad_string.py": "import importlib\nimportlib.import_module('asr_analogy.analogy.recipe')\n",
    "asr_analogy/ops/bad_fstring.py": "from importlib import import_module\nimport_module(f'asr_analogy.speech.{x}')\n",
    "asr_analogy/speech/bad_relative.py": "from ..analogy import recipe\n",
    # data_prep: imports only errors and io; only analogy and cli import it
    "data_prep/bad.py": "from asr_analogy.speech.data import SkipReport\n",
    "asr_analogy/speech/bad_data_prep.py": "import data_prep.slurp\n",
    "asr_analogy/merge/bad_data_prep_string.py": "import importlib\nimportlib.import_module(f'data_prep.{name}')\n",
    # allowed
    "asr_analogy/analogy/ok.py": (
        "import importlib\nimport data_prep.slurp\nfrom data_prep import tabular\n"
        "importlib.import_module(f'data_prep.{name}')\nfrom asr_analogy.speech import train\nfrom . import recipe\n"
    ),
    "asr_analogy/cli.py": "from data_prep.slurp import prepare\nfrom asr_analogy.analogy import recipe\n",
    "data_prep/ok.py": "from asr_analogy.io.manifest import read_manifest\nfrom asr_analogy.errors import ConfigError\n"
    "from data_prep._common import write_corpus\nfrom ._common import Entry\n",
    "asr_analogy/io/ok.py": "from asr_analogy.errors import ConfigError\nimport importlib\n"
    "importlib.import_module(name)\n",
}


def test_checker_flags_planted_violations(tmp_path):
    for rel, text in PLANTED.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = layer_violations(tmp_path)
    assert sorted(f.split(":")[0] for f in found) == sorted(rel for rel in PLANTED if "/bad" in rel)
    messages = "\n".join(found)
    assert "asr_analogy/io/bad.py: layer io imports higher layer asr_analogy.merge" in messages
    assert "asr_analogy/ops/bad_fstring.py: layer ops imports higher layer asr_analogy.speech" in messages
    assert "asr_analogy/speech/bad_relative.py: layer speech imports higher layer asr_analogy.analogy" in messages
    assert "data_prep/bad.py: data_prep imports asr_analogy.speech.data" in messages
    assert "asr_analogy/merge/bad_data_prep_string.py: layer merge imports data_prep" in messages

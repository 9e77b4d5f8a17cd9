"""Imports point one way: io -> ops -> merge -> speech -> analogy -> cli; ops imports no transformers/config."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "asr_analogy"
RANK = {"errors": 0, "io": 0, "ops": 1, "merge": 2, "speech": 3, "analogy": 4, "cli": 5, "__main__": 6}
OPS_FORBIDDEN = ("transformers", "yaml", "pydantic", "datasets", "asr_analogy.merge")


def _layer(module_path: Path) -> str:
    rel = module_path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


MODULES = [p for p in PACKAGE.rglob("*.py") if _layer(p) in RANK]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_one_way(path):
    mine = RANK[_layer(path)]
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] != "asr_analogy" or len(parts) < 2:
            continue
        other = parts[1]
        assert other in RANK, f"{path}: imports unknown layer {name}"
        assert RANK[other] <= mine, f"{path} (layer {_layer(path)}) imports higher layer {name}"


@pytest.mark.parametrize("path", [p for p in MODULES if _layer(p) == "ops"], ids=lambda p: p.name)
def test_ops_is_pure(path):
    for name in _imports(path):
        assert not name.startswith(OPS_FORBIDDEN), f"{path}: ops/ must not import {name}"


def test_layer_table_catches_a_violation(tmp_path):
    # The checker itself must be able to fail: an io module importing merge is a violation.
    bad = "from asr_analogy.merge import engine\n"
    names = [n.module for n in ast.walk(ast.parse(bad)) if isinstance(n, ast.ImportFrom)]
    assert RANK[names[0].split(".")[1]] > RANK["io"]

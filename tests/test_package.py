"""The helpers package keeps the promises its docstring makes to a student who copies one module."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parents[1] / "helpers"
MODULES = sorted(p for p in HELPERS.glob("*.py") if p.name != "__init__.py")
WIRING = "run.py"  # the one module that wires the others together (the command line)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_every_public_function_and_class_has_a_docstring_and_type_hints(path):
    missing = []
    for node in _tree(path).body:  # module level: what a student calls
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            if ast.get_docstring(node) is None:
                missing.append(f"{node.name}: no docstring")
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            untyped = [a.arg for a in args if a.annotation is None]
            if untyped:
                missing.append(f"{node.name}: no type hint for {', '.join(untyped)}")
            if node.returns is None:
                missing.append(f"{node.name}: no return type")
    assert not missing, f"{path.name}: {missing}"


@pytest.mark.parametrize("path", [p for p in MODULES if p.name != WIRING], ids=lambda p: p.name)
def test_each_helper_module_can_be_copied_alone(path):
    """Only run.py imports other helper modules: every other one works when copied into an assignment."""
    imported = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").split(".")[0] == "helpers"):
            imported.append(f"from {'.' * node.level}{node.module or ''}")
        if isinstance(node, ast.Import):
            imported += [a.name for a in node.names if a.name.split(".")[0] == "helpers"]
    assert not imported, f"{path.name} imports {imported}"


def test_importing_the_helpers_prints_nothing_and_reaches_for_no_data(tmp_path):
    """No module-level downloads or prints: importing every module in a fresh process, from an empty folder,
    writes nothing to the terminal and leaves the folder empty."""
    names = ", ".join(f"helpers.{p.stem}" for p in MODULES)
    path = os.pathsep.join(filter(None, [str(HELPERS.parent), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", f"import {names}"], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": path, "NO_ALBUMENTATIONS_UPDATE": "1", "MPLBACKEND": "Agg"},
                          timeout=300)
    assert done.returncode == 0, done.stderr
    # matplotlib's own one-time notice on a fresh install is not the helpers' doing
    stderr = [line for line in done.stderr.splitlines() if "building the font cache" not in line]
    assert done.stdout == "" and stderr == []
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []

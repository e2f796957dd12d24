"""The committed notebooks are exactly what notebooks/build_notebooks.py writes."""
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
sys.path.insert(0, str(NOTEBOOKS))
import build_notebooks  # noqa: E402


@pytest.mark.parametrize("name", sorted(build_notebooks.NOTEBOOKS))
def test_committed_notebook_matches_its_builder(name):
    committed = nbformat.read(NOTEBOOKS / name, as_version=4)
    built = build_notebooks.build(name, build_notebooks.NOTEBOOKS[name])
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in built.cells], \
        f"{name} is out of date: run python notebooks/build_notebooks.py"
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{name} has cells that were never executed"


def test_outputs_survive_comment_only_edits():
    assert build_notebooks.same_code("lr = 0.1  # peak", "lr = 0.1  # the peak\n")
    assert build_notebooks.same_code("# note\nx = f(1)", "x = f(1)")
    assert not build_notebooks.same_code("lr = 0.1", "lr = 0.2")
    assert not build_notebooks.same_code('s = "# not a comment"', 's = ""')
    assert not build_notebooks.same_code("!pip install a", "!pip install b")

"""The course notebooks: jupytext pairs in sync, the setup cell on Colab, data and URL settings.

How to edit a notebook (notebooks/README.md has more): edit the jupytext source
``notebooks/<name>.py`` (percent format) or the ``.ipynb`` in Jupyter, then run

    jupytext --sync notebooks/*.py

which writes the newer file of each pair into the other, keeping the .ipynb's outputs and cell
ids. ``test_pair_in_sync`` fails while the two files of a pair hold different cells. The Colab
setup cell is tested by executing its source from the .py with a stand-in ``google.colab``
module and a recording ``subprocess.run``; the repository URL it clones comes from course.cfg
via ``python notebooks/set_repo_url.py``.
"""

import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.cli import jupytext as jupytext_cli

from helpers import data

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PAIRS = ["s8_normalization", "s9_advanced_convolutions"]
IGNORE = "nbval-ignore-output"
COLAB_DIR = 'COLAB_DIR = Path("/content/cifar10-course")'
TEST_URL = "https://github.com/acme/cifar10-course"

sys.path.insert(0, str(NOTEBOOKS))
import set_repo_url  # noqa: E402


def cells_of(path: Path) -> list[tuple[str, str, list[str]]]:
    """(type, source, tags) of every cell: what must agree between the two files of a pair."""
    nb = jupytext.read(path) if path.suffix == ".py" else nbformat.read(path, as_version=4)
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def cell_source(name: str, marker: str) -> str:
    """The one code cell of notebooks/<name>.py that contains ``marker``."""
    found = [c.source for c in jupytext.read(NOTEBOOKS / f"{name}.py").cells
             if c.cell_type == "code" and marker in c.source]
    assert len(found) == 1, f"{len(found)} cells of {name}.py contain {marker!r}"
    return found[0]


# --------------------------------------------------------------------------- pairs
def test_the_pairs_are_all_the_notebooks():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == PAIRS
    assert not (NOTEBOOKS / "build_notebooks.py").exists()


@pytest.mark.parametrize("name", PAIRS)
def test_pair_in_sync(name):
    py, ipynb = NOTEBOOKS / f"{name}.py", NOTEBOOKS / f"{name}.ipynb"
    assert cells_of(py) == cells_of(ipynb), \
        f"{py.name} and {ipynb.name} differ: run  jupytext --sync notebooks/*.py"
    nb = nbformat.read(ipynb, as_version=4)
    assert nb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert jupytext.read(py).metadata["jupytext"]["formats"] == "ipynb,py:percent"


@pytest.mark.parametrize("name", PAIRS)
def test_committed_notebook_was_executed_without_errors(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{name}.ipynb has cells that were never executed"
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "executed out of order"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{name}.ipynb holds an error output: {errors[0].ename}: {errors[0].evalue}"
    warned = [o.text for c in code for o in c.outputs if o.output_type == "stream" and o.name == "stderr"]
    assert not warned, f"{name}.ipynb holds a warning or other stderr output: {warned[0][:200]}"
    ids = [c.id for c in nb.cells]
    assert len(set(ids)) == len(ids), "cell ids must be unique"


def test_sync_keeps_cell_ids_and_outputs(tmp_path):
    """Edit a markdown cell and add a code cell in the .py: --sync keeps every other cell's id and output."""
    for suffix in (".py", ".ipynb"):
        shutil.copy(NOTEBOOKS / f"s9_advanced_convolutions{suffix}", tmp_path)
    py, ipynb = tmp_path / "s9_advanced_convolutions.py", tmp_path / "s9_advanced_convolutions.ipynb"
    before = nbformat.read(ipynb, as_version=4)
    text = py.read_text()
    assert "# ### Dilated convolution\n" in text
    text = text.replace("# ### Dilated convolution\n", "# ### Dilated convolution (edited)\n")
    anchor = "# %% [markdown]\n# No max-pooling"
    assert anchor in text
    text = text.replace(anchor, '# %%\nprint("a new cell")\n\n' + anchor, 1)
    py.write_text(text)
    later = ipynb.stat().st_mtime + 10
    os.utime(py, (later, later))  # the .py is the newer file, as after an edit

    assert jupytext_cli(["--sync", str(py), "--quiet"]) == 0
    after = nbformat.read(ipynb, as_version=4)
    new = [c for c in after.cells if c.source == 'print("a new cell")']
    assert len(new) == 1 and new[0].id not in {c.id for c in before.cells}
    assert any("### Dilated convolution (edited)\n" in c.source for c in after.cells)
    kept = [c for c in after.cells if c is not new[0]]
    assert [(c.id, c.get("outputs")) for c in kept] == [(c.id, c.get("outputs")) for c in before.cells]
    assert cells_of(py) == cells_of(ipynb)


@pytest.mark.parametrize("name", PAIRS)
def test_run_dependent_cells_are_not_compared(name):
    """Training, data, timings, devices and torchinfo's table text differ between runs and package versions, and
    so does what packages print when first imported (e.g. a warning while compiling a freshly installed one)."""
    run_dependent = ("train_course_net", "model_summary", "format_rf_table", "load_cifar10", "torch.__version__",
                     "hardware_name", "predict_test", "plots.", "mean_std", "import torch", "from helpers import")
    for kind, source, tags in cells_of(NOTEBOOKS / f"{name}.py"):
        code = re.sub(r"#.*", "", source)  # comments aside
        if kind == "code" and any(word in code for word in run_dependent):
            assert IGNORE in tags, f"this cell's output depends on the run but nbval compares it:\n{source[:200]}"


@pytest.mark.parametrize("name", PAIRS)
def test_prose_quotes_no_results(name):
    """Results are printed by the notebook; the markdown points at them and never quotes a percentage."""
    for kind, source, _ in cells_of(NOTEBOOKS / f"{name}.py"):
        if kind == "markdown":
            assert not re.search(r"\d\s?%", source), f"a figure in the prose:\n{source[:300]}"


@pytest.mark.parametrize("name", PAIRS)
def test_compared_cells_state_the_course_numbers(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    compared = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                       and IGNORE not in c.metadata.get("tags", []) for o in c.outputs)
    expected = {"s8_normalization": ["46,064 trainable parameters", "receptive field before global average pooling: 44",
                                     "nn.BatchNorm2d(16), training mode", "nn.GroupNorm(1, 16)", "nn.GroupNorm(2, 16)",
                                     "BN, training mode: same output in a batch of 2 and of 128? False",
                                     "eval mode: gamma * (x - running_mean) / sqrt(running_var + eps) + beta"],
                "s9_advanced_convolutions": ["171,840 trainable parameters",
                                             "receptive field before global average pooling: 77",
                                             "C*9+C*C_out =  4,672", "0 with stride > 1",
                                             "3 x conv3x3, dilation 2                  reaches   49 input pixels",
                                             "all four S9 blocks                       reaches 1024 input pixels"]}[name]
    for text in expected:
        assert text in compared
    if name == "s8_normalization":  # every hand-computed normalization matches its layer (eval mode too)
        checks = [line for line in compared.splitlines() if " == " in line]
        assert len(checks) == 5 and all(" True " in line for line in checks), checks


@pytest.mark.parametrize("name", PAIRS)
def test_the_readme_says_which_kind_of_run_each_notebook_holds(name):
    """A student who opens the Session 9 notebook must not take its smoke run's accuracies for results: the
    README says which notebooks hold a smoke run, and this keeps it true when a notebook is executed again."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    provenance = [o.get("text", "") for c in nb.cells if c.cell_type == "code" and 'source = ("synthetic' in c.source
                  for o in c.outputs]
    assert len(provenance) == 1 and provenance[0].startswith("data:"), provenance
    smoke = "synthetic smoke-test images" in provenance[0]
    session = name[1]
    readme = " ".join((ROOT / "README.md").read_text().split())
    said, unsaid = (f"the Session {session} notebook holds a smoke run",
                    f"the Session {session} notebook holds a run on full CIFAR-10")[::1 if smoke else -1]
    assert said.lower() in readme.lower() and unsaid.lower() not in readme.lower(), f"README.md should say: {said}"


# --------------------------------------------------------------------------- the Colab setup cell
def test_setup_cells_are_the_same_in_both_notebooks():
    sources = {name: cell_source(name, "REPO_URL = ") for name in PAIRS}
    assert len(set(sources.values())) == 1


class FakeShell:
    """Records subprocess.run calls; ``git clone`` creates the folder as git would."""

    def __init__(self, clone_fails=False):
        self.calls, self.clone_fails, self.pull_fails = [], clone_fails, False

    def run(self, command, *args, **kwargs):
        command = list(command)
        self.calls.append(command)
        if command[:2] == ["git", "clone"]:
            if self.clone_fails:
                return subprocess.CompletedProcess(command, 128, "", "Cloning into 'x'...\n"
                                                   "fatal: repository 'https://github.com/acme/x/' not found\n")
            target = Path(command[-1])
            (target / ".git").mkdir(parents=True)
            (target / "helpers").mkdir()
        if "pull" in command and self.pull_fails:
            return subprocess.CompletedProcess(command, 1, "", "fatal: unable to access: Could not resolve host\n")
        return subprocess.CompletedProcess(command, 0, "", "")

    def check_call(self, command, *args, **kwargs):
        raise AssertionError(f"the setup cell must not use check_call (a CalledProcessError traceback): {command}")


@pytest.fixture
def colab(monkeypatch, tmp_path):
    """A stand-in Colab: google.colab importable, subprocess recorded, /content in tmp_path.
    Returns run(source) -> (namespace, shell) and the clone folder."""
    google = types.ModuleType("google")
    google.colab = types.ModuleType("google.colab")
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", google.colab)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    clone_dir = tmp_path / "content" / "cifar10-course"
    shell = FakeShell()
    monkeypatch.setattr(subprocess, "run", shell.run)
    monkeypatch.setattr(subprocess, "check_call", shell.check_call)

    def run(source, url=TEST_URL):
        assert COLAB_DIR in source
        source = source.replace(COLAB_DIR, f"COLAB_DIR = Path({str(clone_dir)!r})")
        if url is not None:
            source = set_repo_url.updated_cell_source(source, url)
        namespace = {}
        exec(compile(source, "setup-cell", "exec"), namespace)
        return namespace

    return run, shell, clone_dir


def test_colab_first_run_clones_then_a_rerun_pulls(colab, capsys):
    run, shell, clone_dir = colab
    source = cell_source("s8_normalization", "REPO_URL = ")
    namespace = run(source)
    assert shell.calls[0] == ["git", "clone", "-q", "--depth", "1", TEST_URL, str(clone_dir)]
    assert shell.calls[1][:4] == [sys.executable, "-m", "pip", "install"]
    assert namespace["ON_COLAB"] and namespace["REPO_DIR"] == clone_dir
    assert sys.path[0] == str(clone_dir) and Path.cwd() == clone_dir

    shell.calls.clear()
    run(source)  # the cell run again: the clone exists, so it is updated
    assert shell.calls[0] == ["git", "-C", str(clone_dir), "pull", "--ff-only", "-q"]
    assert not any(call[:2] == ["git", "clone"] for call in shell.calls)
    assert sys.path.count(str(clone_dir)) == 1

    shell.pull_fails = True  # offline on a re-run: the existing clone is used as it is
    namespace = run(source)
    assert namespace["REPO_DIR"] == clone_dir and "Could not update" in capsys.readouterr().out


def test_colab_uses_an_uploaded_folder_as_it_is(colab):
    run, shell, clone_dir = colab
    (clone_dir / "helpers").mkdir(parents=True)
    namespace = run(cell_source("s9_advanced_convolutions", "REPO_URL = "), url=None)  # even with the placeholder
    assert not any(call[0] == "git" for call in shell.calls)
    assert namespace["REPO_DIR"] == clone_dir


def test_colab_with_the_placeholder_stops_with_one_sentence(colab):
    run, shell, clone_dir = colab
    source = cell_source("s8_normalization", "REPO_URL = ")
    with pytest.raises(RuntimeError) as info:
        run(source, url=set_repo_url.PLACEHOLDER)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert "python notebooks/set_repo_url.py" in message and "upload the repository folder" in message
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert shell.calls == []  # nothing tried to clone the placeholder


def test_colab_failed_clone_stops_with_one_sentence(colab):
    run, shell, clone_dir = colab
    shell.clone_fails = True
    with pytest.raises(RuntimeError) as info:
        run(cell_source("s8_normalization", "REPO_URL = "))
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"Could not clone {TEST_URL}") and "not found" in message
    assert "upload the repository folder" in message
    assert info.value.__context__ is None
    assert not clone_dir.exists()


def test_local_setup_finds_the_repository(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", None)  # import google.colab fails, as off Colab
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(ROOT)])
    monkeypatch.chdir(NOTEBOOKS)
    shell = FakeShell()
    monkeypatch.setattr(subprocess, "run", shell.run)
    namespace = {}
    exec(cell_source("s9_advanced_convolutions", "REPO_URL = "), namespace)
    assert not namespace["ON_COLAB"] and namespace["REPO_DIR"] == ROOT and str(ROOT) in sys.path
    assert shell.calls == []


# --------------------------------------------------------------------------- data location
@pytest.mark.parametrize("name", PAIRS)
def test_data_root_is_where_the_cli_looks(name, monkeypatch, tmp_path):
    settings = cell_source(name, "SMOKE = os.environ")
    namespace = {"os": os, "REPO_DIR": ROOT, "data": data}
    monkeypatch.delenv("SMOKE_TEST", raising=False)
    monkeypatch.delenv("CIFAR10_ROOT", raising=False)
    exec(settings, namespace)
    assert namespace["DATA_ROOT"] == str(ROOT / "data") and namespace["EPOCHS"] == 20
    monkeypatch.setenv("CIFAR10_ROOT", str(tmp_path))
    exec(settings, namespace)
    assert namespace["DATA_ROOT"] == str(tmp_path)


@pytest.mark.parametrize("name", PAIRS)
def test_missing_data_error_names_the_data_root_setting(name, monkeypatch, tmp_path):
    def no_data(root=None, train=True, download=True):
        raise data.CifarDataError(data._missing_message(Path(root), "URLError: no network"))

    monkeypatch.setattr(data, "load_cifar10", no_data)
    namespace = {"data": data, "DATA_ROOT": str(tmp_path / "nowhere")}
    with pytest.raises(RuntimeError) as info:
        exec(cell_source(name, "data.load_cifar10(DATA_ROOT"), namespace)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert "DATA_ROOT" in message and "settings cell" in message and str(tmp_path / "nowhere") in message
    assert "--data-root" not in message
    assert info.value.__suppress_context__  # raised "from None": no CifarDataError traceback above it


# --------------------------------------------------------------------------- the repository URL
def test_committed_files_hold_the_url_of_course_cfg():
    url = set_repo_url.read_url()
    assert set_repo_url.sync(url, check=True) == [], "run  python notebooks/set_repo_url.py"
    readme = (ROOT / "README.md").read_text()
    account, repository = set_repo_url.parse_github_url(url)
    for name in PAIRS:
        assert (f"https://colab.research.google.com/github/{account}/{repository}/blob/main/notebooks/{name}.ipynb"
                in readme)
        assert f'REPO_URL = "{url}"' in cell_source(name, "REPO_URL = ")
    assert f"git clone {url} && cd {repository}" in readme


@pytest.fixture
def repo_copy(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "README.md", tmp_path)
    shutil.copy(ROOT / "course.cfg", tmp_path)
    for name in PAIRS:
        for suffix in (".py", ".ipynb"):
            shutil.copy(NOTEBOOKS / f"{name}{suffix}", tmp_path / "notebooks")
    monkeypatch.setattr(set_repo_url, "ROOT", tmp_path)
    monkeypatch.setattr(set_repo_url, "CONFIG", tmp_path / "course.cfg")
    return tmp_path


def test_set_repo_url_writes_the_url_everywhere(repo_copy, capsys):
    before = {name: nbformat.read(repo_copy / "notebooks" / f"{name}.ipynb", as_version=4) for name in PAIRS}
    assert set_repo_url.main(["https://github.com/acme/cifar-course.git"]) == 0
    url = "https://github.com/acme/cifar-course"
    assert set_repo_url.read_url() == url
    assert "repo_url = " + url in (repo_copy / "course.cfg").read_text()
    readme = (repo_copy / "README.md").read_text()
    badges = re.findall(r"https://colab\.research\.google\.com/github/\S+?\.ipynb", readme)
    assert len(badges) == 2 and all(b.startswith(f"https://colab.research.google.com/github/acme/cifar-course/blob/main/")
                                    for b in badges)
    assert f"git clone {url} && cd cifar-course\n" in readme and "OWNER" not in readme
    for name in PAIRS:
        py, ipynb = repo_copy / "notebooks" / f"{name}.py", repo_copy / "notebooks" / f"{name}.ipynb"
        assert f'REPO_URL = "{url}"' in py.read_text()
        assert cells_of(py) == cells_of(ipynb)  # the pair stays in sync
        after = nbformat.read(ipynb, as_version=4)
        assert [(c.id, c.get("outputs")) for c in after.cells] == [(c.id, c.get("outputs")) for c in before[name].cells]
    assert set_repo_url.main(["--check"]) == 0
    # hand-editing course.cfg, then running the command without a URL
    (repo_copy / "course.cfg").write_text((repo_copy / "course.cfg").read_text().replace(url, "https://github.com/b/c"))
    assert set_repo_url.main(["--check"]) == 1
    assert set_repo_url.main([]) == 0
    assert 'REPO_URL = "https://github.com/b/c"' in (repo_copy / "notebooks" / f"{PAIRS[0]}.py").read_text()


@pytest.mark.parametrize("url", ["https://gitlab.com/a/b", "github.com/a/b", "https://github.com/a", "OWNER"])
def test_set_repo_url_refuses_what_colab_cannot_open(url, repo_copy, capsys):
    config = (repo_copy / "course.cfg").read_text()
    with pytest.raises(SystemExit) as info:
        set_repo_url.main([url])
    assert info.value.code == 2 and "GitHub repository URL" in capsys.readouterr().err
    assert (repo_copy / "course.cfg").read_text() == config

"""The full-CIFAR-10 GPU plan, in phases that fit the device's 10-minute calls and carry over between sessions.

A session's 15 device minutes (start-up included) hold one 10-minute call. It runs two plans, one after
the other on the same machine: the training, then (``--keep``: going on from the first) the speed phase,
which wants the GPU to itself. In one command, because a machine left idle for 30 seconds goes back bare:

    source .device/setup.sh && { python benchmarks/full_cifar.py --out "$OUT" --runs s9 --budget 350 \\
        --phases tests tune finals; python benchmarks/full_cifar.py --keep --budget 170 --out "$OUT" --phases speed; }
    python benchmarks/full_cifar.py --smoke --epochs 1 --budget 120 --out /tmp/o --phases tune   # anywhere

Phases, run in this order whatever order they are named in:

* ``tests``: ``python -m pytest`` in two processes, tests/test_gpu.py and the rest of the suite. With
  ``speed`` in the same call, the CUDA tests run first (the speed phase uses CUDA graphs only when they all
  passed, and wants the machine alone); without it, both run beside the training from the start. The rest
  of the suite runs in a copy of the checkout (runs/suite-checkout/), which the tuning's rewrite of
  helpers/recipes.py does not reach;
* ``speed``: benchmarks/gpu_speed.py alone on the GPU (both loaders, with and without CUDA graphs, one
  timed epoch each, each case written as it ends), stopped in time for ``python -m helpers.run s9 --recipe
  tuned`` to be timed after it from process start to figures written (the time that run needs is estimated
  from the S9 epochs the benchmark has timed so far: ``cli_seconds_needed``);
* ``tune``: every candidate of benchmarks/select_recipes.py on the validation split and the seed
  documents' readings (seed 1, test set), side by side; then select_recipes.py applies its fixed
  rules to these runs and to the committed ones (doc/results) and rewrites helpers/recipes.py;
* ``finals``: seeds 1-3 of the seed and tuned recipes of every run (S8 BN / LN / GN, S9), device loader;
* ``loaders``: S9 seed and tuned recipes, seeds 1-3, with the albumentations loader (to compare);
* ``notebooks``: both notebooks executed on full CIFAR-10 (.device/execute.py), once S9's recipe is
  chosen, and only if ``NOTEBOOK_SECONDS`` are left (a notebook stopped at the deadline keeps nothing).

The training phases are pipelined: S9 is tuned first, and its tuned finals start as soon as its
candidates have ended and the choice is made, while the S8 candidates still train; the seed
recipes' finals, which no choice changes, train from the start beside the candidates.

A run whose result is already committed in doc/results (same recipe, seed, loader, data and
epochs) is not run again, so each session picks up where the last one stopped. Every run is a
``python -m helpers.run`` process with one CPU thread (the GPU does the work; 16 threads per
process starve 16 cores). Logs and run.json files go to runs/gpu/ and, as each run ends, into
OUT/results.tar.gz, with the executed notebooks and, after ``tune``, the rewritten recipes.py.
Each device call starts from this checkout, so after a call unpack the archive here (it
replaces helpers/recipes.py with the chosen one), run ``python benchmarks/recipes.py collect
runs/gpu`` and commit: the next call then trains the chosen recipes and skips what is done.
A plan on the same machine can skip that step: ``--keep`` keeps runs/gpu, counts its runs as
done, resumes the runs a deadline stopped and restores the recipes.py the earlier plan chose.
The stopped runs' checkpoints come back in OUT/checkpoints.tar: unpacked here too, and runs/gpu
carried to the next session's call, ``--keep`` resumes them there.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Callable
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import gpu_speed  # noqa: E402
from benchmarks import select_recipes as sel  # noqa: E402
from helpers import recipes, train  # noqa: E402

RUNS = ROOT / "runs" / "gpu"
SNAPSHOT = ROOT / "runs" / "suite-checkout"  # where the non-CUDA half of the test suite runs (test_suites)
RESULTS = ROOT / "doc" / "results"
NORMS = ("bn", "ln", "gn")
PHASES = ("tests", "speed", "tune", "finals", "loaders", "notebooks")
RUN_KEYS = ("s8-bn", "s8-ln", "s8-gn", "s9")
FULL = "CIFAR-10: 50000 train / 10000 test images"
VALIDATION = sel.VALIDATION_DATA
# Seconds the two notebooks need on a shared H200 (S8: three 20-epoch runs one after another, about 3.3 s an
# epoch alone; S9: two, about 4.5 s), with margin for sharing the GPU with the finals.
NOTEBOOK_SECONDS = 360
# Seconds kept for the timed 20-epoch S9 run after the speed benchmark while no S9 epoch has been timed yet:
# about 4.5 s an epoch before the speed work, plus start-up, data loading and figures. Once the benchmark has
# timed an S9 device-loader epoch, the reserve is estimated from it instead (cli_seconds_needed): the time
# besides the epochs (process start, data, the first epoch's cuDNN autotuning or graph capture, figures),
# and a margin on the whole.
CLI_RESERVE_SECONDS = 130
# The checkpoints of runs stopped at a deadline come back in one file (the device returns files of up to 16 MiB)
# and travel to the next session's call beside .device/ (about 40 MB) and the checkout (about 6 MB), under the
# 64 MiB a call carries. An S9 checkpoint (weights, momentum, RNG states) is about 1.5 MB, an S8 one 0.4 MB.
CHECKPOINT_BYTES = 12 * 2**20
CLI_START_SECONDS = 30
CLI_MARGIN = 1.25


class Job:
    """One process of the plan, its log in runs/gpu/logs/."""

    def __init__(self, name: str, argv: list[str], env: dict | None = None, cwd: Path = ROOT):
        self.name, self.argv, self.env, self.cwd = name, argv, env or {}, cwd
        self.proc: subprocess.Popen | None = None
        self.log = None
        self.started = self.ended = None

    def start(self) -> None:
        log = RUNS / "logs" / f"{self.name.replace('/', '_')}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log, "w")
        # a session of its own, so that stop() reaches what it starts too (pytest's training subprocesses)
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "OMP_NUM_THREADS": "1", **self.env}, start_new_session=True)
        self.started = time.time()

    def finished(self) -> bool:
        """Has the process ended? (Records when, and closes the log, the first time it is seen.)"""
        if self.ended is None and self.proc is not None and self.proc.poll() is not None:
            self.ended = time.time()
            self.log.close()
        return self.ended is not None

    def stop(self) -> None:
        """Kill the process and every process it started (a deadline has come), and record that it ended."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:  # the whole group has already gone
            pass
        self.proc.wait()
        self.finished()

    def outcome(self) -> str:
        """How an ended job ended, for the plan's log."""
        return f"{self.name}: exit {self.proc.returncode} after {self.ended - self.started:.0f} s"


def run_jobs(jobs: list[Job], parallel: int, deadline: float, label: str,
             then: list[tuple[list[Job], Callable[[], list[Job]]]] | None = None,
             after_each: Callable[[Job], None] | None = None) -> None:
    """Run ``jobs`` in order, ``parallel`` at a time, until done or ``deadline`` (then stop the rest).

    ``then`` pipelines the plan: for each (group, follow_up), once every job of ``group`` has ended,
    ``follow_up()`` is called and the jobs it returns go before every job of ``jobs`` still waiting
    (in the order the follow-ups came due): the S9 finals start as soon as the S9 tuning is chosen,
    while the S8 tuning still runs. A follow-up that comes due at the deadline is still called (its
    choice is made), and its jobs are reported as not started."""
    front, waiting, running = [], list(jobs), []
    pending = list(then or [])

    def reap() -> None:
        for job in [j for j in running if j.finished()]:
            running.remove(job)
            print(f"[{label}] {job.outcome()}", flush=True)
            if after_each is not None:
                after_each(job)  # e.g. pack the results, so a call cut short still returns what ended

    def call_due() -> None:
        for group, follow_up in list(pending):
            if all(job.ended is not None for job in group):
                pending.remove((group, follow_up))
                front.extend(follow_up())

    try:
        while front or waiting or running or pending:
            call_due()
            if time.time() >= deadline:
                break
            while (front or waiting) and len(running) < parallel:
                job = (front or waiting).pop(0)
                job.start()
                running.append(job)
            time.sleep(0.5)
            reap()
    finally:  # the deadline, or an error in a follow-up: no process outlives the plan
        stop_all(running, label, (reap, call_due))
        for job in front + waiting:
            print(f"[{label}] {job.name}: not started (no time left)", flush=True)
        for group, _ in pending:
            print(f"[{label}] a follow-up of {', '.join(j.name for j in group)} never came due", flush=True)


def stop_all(running: list[Job], label: str, last_steps: tuple[Callable[[], None], ...] = ()) -> None:
    """The end of ``run_jobs`` (its deadline, or an error): take ``last_steps`` (reap what has ended, call a
    follow-up that came due), each on its own, so that an error in one is reported and still leaves no
    process running; then stop the jobs still running."""
    for step in last_steps:
        try:
            step()
        except Exception as err:  # reported here; the error that ended the plan, if any, still propagates
            print(f"[{label}] {step.__name__} failed at the end of the plan: {err!r}", flush=True)
    for job in running:
        if not job.finished():
            job.stop()
            print(f"[{label}] {job.name}: stopped at the deadline", flush=True)


def is_done(records: list[dict], session: str, norm: str, recipe: recipes.Recipe, seed: int, loader: str,
            data: str, epochs: int) -> bool:
    """Is there a record of this very run (recipe, seed, loader, data, epochs)?"""
    return any(r["config"]["session"] == session and (session == "s9" or r["config"]["norm"] == norm)
               and r["config"]["seed"] == seed and r["config"]["loader"] == loader
               and r["config"]["data"] == data and r["epochs"] == epochs
               and sel.made_with(r["config"]["recipe"], recipe) for r in records)


def cli(name: str, session: str, norm: str | None, recipe: str, seed: int, epochs: int, overrides: dict,
        validation: bool = False, loader: str = "device", smoke: bool = False, cuda_graph: bool = False,
        out: Path | None = None, resume: bool = False) -> Job:
    """A ``python -m helpers.run`` job writing into ``out`` (default runs/gpu/NAME); ``resume`` goes on from
    the checkpoint an earlier call left there (a run stopped at its deadline), else a run left there is
    replaced."""
    argv = [sys.executable, "-m", "helpers.run", session, "--recipe", recipe, "--seed", str(seed),
            "--epochs", str(epochs), "--loader", loader, "--out", str(out or RUNS / name), "--no-progress"]
    argv += ["--norm", norm] if session == "s8" else []
    argv += ["--set", *sel.candidate_args(overrides)] if overrides else []
    argv += ["--validation"] if validation else []
    argv += ["--smoke"] if smoke else []
    argv += ["--workers", "3"] if loader == "albumentations" else []  # several of them share 16 cores
    argv += ["--cuda-graph"] if cuda_graph and loader == "device" else []
    argv += ["--resume"] if resume else ["--overwrite"]  # the plan owns its folders (make_room clears them)
    return Job(name, argv)


def _plan(specs: list[tuple], records: list[dict], epochs: int, smoke: bool, cuda_graph: bool,
          runs: tuple[str, ...] | None = None, resume: bool = False) -> list[Job]:
    """Jobs for (name, session, norm, recipe name, seed, overrides, validation, loader) specs not yet done,
    of the ``runs`` named ("s8-bn", ..., "s9"; default all)."""
    jobs, planned = [], []
    for name, session, norm, recipe_name, seed, overrides, validation, loader in specs:
        if runs is not None and sel.run_key({"session": session, "norm": norm}) not in runs:
            continue
        recipe = recipes.recipe_with_settings(session, recipe_name, norm or "bn", overrides)
        data = VALIDATION if validation else FULL
        if is_done(records, session, norm or "bn", recipe, seed, loader, data, epochs):
            print(f"[plan] {name}: already in doc/results", flush=True)
            continue
        if (session, norm, recipe, seed, validation, loader) in planned:
            continue  # a candidate that is the recipe as it is now
        planned.append((session, norm, recipe, seed, validation, loader))
        make_room(RUNS / name, (session, norm or "bn", recipe, seed, loader, data, epochs))
        jobs.append(cli(name, session, norm, recipe_name, seed, epochs, overrides, validation, loader, smoke,
                        cuda_graph, resume=resume))
    return jobs


def make_room(out: Path, run: tuple) -> None:
    """Move what an earlier call left in ``out`` to runs/gpu/earlier/ when it is not ``run`` (is_done's
    session, norm, recipe, seed, loader, data, epochs): a finished run of other settings, or a checkpoint
    saved with another recipe. A candidate's folder is named by its change to the recipe, so after a choice
    the same name can mean another run: resuming it would be refused (other settings), and running over it
    would lose it. Moved, it is still collected."""
    if (out / "run.json").is_file():
        if is_done([json.loads((out / "run.json").read_text())], *run):
            return
    elif (out / "checkpoint.pt").is_file():
        try:
            saved = (train.load_checkpoint(out / "checkpoint.pt").get("config") or {}).get("recipe")
            resumes = saved is None or sel.made_with(saved, run[2])
        except train.CheckpointError:  # damaged or foreign: moved aside, and the run starts afresh
            resumes = False
        if resumes:
            return  # this very run, stopped at an earlier deadline: it resumes
    else:
        return
    dest, k = RUNS / "earlier" / out.relative_to(RUNS), 2
    while dest.exists():
        dest, k = dest.with_name(f"{out.name}-{k}"), k + 1
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(out), str(dest))
    print(f"[plan] {out.relative_to(RUNS)}: an earlier call's run of another recipe moved to "
          f"{dest.relative_to(RUNS)}", flush=True)


def tune_jobs(records: list[dict], epochs: int, smoke: bool = False, cuda_graph: bool = False,
              runs: tuple[str, ...] | None = None, resume: bool = False) -> list[Job]:
    """The candidates on the validation split and the seed documents' readings, the long S9 runs first."""
    specs = []
    for key, candidates in sel.CANDIDATES.items():
        session, norm = sel.session_and_norm(key)
        specs += [(f"tune/{key}-{sel.candidate_name(c)}", session, norm, "tuned", 1, c, True, "device")
                  for c in candidates]
    specs += [(f"read/s9-{sel.candidate_name(r)}-s1", "s9", None, "seed", 1, r, False, "device")
              for r in sel.S9_READINGS]
    specs += [(f"read/s8-{n}-{sel.candidate_name(r)}-s1", "s8", n, "seed", 1, r, False, "device")
              for r in sel.S8_READINGS for n in NORMS]
    specs.sort(key=lambda s: (s[1] != "s9", s[0].startswith("read/s8")))  # S9 first, the S8 readings last
    return _plan(specs, records, epochs, smoke, cuda_graph, runs, resume)


def final_jobs(records: list[dict], epochs: int, smoke: bool = False, cuda_graph: bool = False,
               loader: str = "device", runs: tuple[str, ...] | None = None, resume: bool = False,
               recipe_names: tuple[str, ...] = ("tuned", "seed")) -> list[Job]:
    """Seeds 1-3 of the recipes (``recipe_names``) as helpers/recipes.py holds them now (S9 only for the
    albumentations loader)."""
    nets = [("s9", None)] + ([] if loader == "albumentations" else [("s8", n) for n in NORMS])
    specs = [(f"final/{session}{'-' + norm if norm else ''}-{recipe}-{loader}-s{seed}", session, norm, recipe, seed,
              {}, False, loader)
             for seed in (1, 2, 3) for session, norm in nets for recipe in recipe_names]
    return _plan(specs, records, epochs, smoke, cuda_graph, runs, resume)


def seed_recipe_settled(keys: tuple[str, ...]) -> bool:
    """Is the seed recipe of each run of ``keys`` beyond this call's choice (no reading of the seed
    documents left to run for it: benchmarks/select_recipes.py's S9_READINGS / S8_READINGS)?"""
    return not any(sel.S9_READINGS if key == "s9" else sel.S8_READINGS for key in keys)


def test_suites() -> tuple[Job, Job]:
    """``python -m pytest`` in two processes: tests/test_gpu.py, whose report (runs/gpu/pytest.xml) decides
    whether CUDA graphs may be used, and the rest of the suite (unit tests and both notebooks, pytest-rest.xml),
    which needs a few CPU cores and can run beside the training runs (one core each). The rest runs in a copy
    of the checkout taken now (``SNAPSHOT``): the tuning rewrites helpers/recipes.py while it runs."""
    pytest = [sys.executable, "-m", "pytest", "-q", "-rf", "--tb=short", "-p", "no:cacheprovider"]
    shutil.rmtree(SNAPSHOT, ignore_errors=True)
    shutil.copytree(ROOT, SNAPSHOT, ignore=shutil.ignore_patterns(".git", ".device", ".venv", "runs", "data",
                                                                  "__pycache__", ".ipynb_checkpoints"))
    return (Job("pytest-gpu", pytest + ["tests/test_gpu.py", f"--junitxml={RUNS / 'pytest.xml'}"],
                env={"OMP_NUM_THREADS": "2"}),  # 2 threads each: a dozen training processes share the 16 cores
            Job("pytest-rest", pytest + ["--ignore=tests/test_gpu.py", f"--junitxml={RUNS / 'pytest-rest.xml'}"],
                env={"OMP_NUM_THREADS": "2"}, cwd=SNAPSHOT))


def finish(job: Job, deadline: float, label: str) -> None:
    """Wait for a job started on its own until it ends or ``deadline`` (then stop it), and say how it ended."""
    while not job.finished() and time.time() < deadline:
        time.sleep(0.5)
    if job.finished():
        print(f"[{label}] {job.outcome()}", flush=True)
    else:
        job.stop()
        print(f"[{label}] {job.name}: stopped at the deadline", flush=True)


def gpu_tests_passed(junit_xml: Path) -> bool:
    """Did every test of tests/test_gpu.py run and pass (pytest's --junitxml report)?"""
    if not junit_xml.is_file():
        return False
    cases = [c for c in ElementTree.parse(junit_xml).iter("testcase") if c.get("classname", "").endswith("test_gpu")]
    return bool(cases) and not any(c.find(tag) is not None for c in cases for tag in ("failure", "error", "skipped"))


def notebook_jobs(deadline: float, smoke: bool = False) -> list[Job]:
    """Both notebooks (.device/execute.py), if they can still finish before ``deadline``: one stopped there
    keeps nothing and has only taken the GPU from the finals (smoke mode: always, on synthetic data)."""
    left = deadline - time.time()
    if not smoke and left < NOTEBOOK_SECONDS:
        print(f"[plan] notebooks: not started ({left:.0f} s left, they need about {NOTEBOOK_SECONDS} s)", flush=True)
        return []
    return [Job(f"notebook/{nb}", [sys.executable, ".device/execute.py", f"notebooks/{nb}.ipynb"],
                env={"SMOKE_TEST": "1"} if smoke else {})
            for nb in ("s9_advanced_convolutions", "s8_normalization")]


def say_gpu_tests() -> bool:
    """Read this call's tests/test_gpu.py report, say how it went, and return whether all passed."""
    passed = gpu_tests_passed(RUNS / "pytest.xml")
    print(f"[plan] the CUDA tests {'passed' if passed else 'did not all pass'}", flush=True)
    return passed


def use_graphs(choice: str, speed_json: Path | None, tests_passed: bool | None) -> bool:
    """--cuda-graph on / off, or auto: on when the CUDA tests all passed and the speed results show the
    training epoch faster with CUDA graphs than without for every session timed both ways (at least one:
    a short call may have timed S9's pair alone, which comes first)."""
    if choice != "auto":
        return choice == "on"
    if tests_passed is not True or speed_json is None or not speed_json.is_file():
        return False
    rows = json.loads(speed_json.read_text())["rows"]
    plain = {r["session"]: r["train_s"] for r in rows if r["loader"] == "device" and not r.get("cuda_graph")}
    graphed = {r["session"]: r["train_s"] for r in rows if r["loader"] == "device" and r.get("cuda_graph")}
    both = set(plain) & set(graphed)
    return bool(both) and all(graphed[k] < plain[k] for k in both)


def cli_seconds_needed(speed_json: Path, epochs: int) -> float:
    """Seconds to leave for the timed ``python -m helpers.run s9 --recipe tuned`` run: from the S9
    device-loader epochs in ``speed_json`` so far (the slower of those with and without CUDA graphs: which
    of them the run uses is decided after the benchmark), else ``CLI_RESERVE_SECONDS``."""
    rows = json.loads(speed_json.read_text())["rows"] if speed_json.is_file() else []
    epoch_s = [r["epoch_s"] for r in rows if r["session"] == "s9" and r["loader"] == "device"]
    if not epoch_s:
        return CLI_RESERVE_SECONDS
    return CLI_MARGIN * (CLI_START_SECONDS + epochs * max(epoch_s))


def run_speed_benchmark(argv: list[str], deadline: float, speed_json: Path, epochs: int, reserve: bool = True,
                        least: float = 30.0, on_case: Callable[[], None] | None = None) -> None:
    """Run benchmarks/gpu_speed.py (``argv``) until it ends, or until only the time that the timed CLI run
    needs is left before ``deadline`` (``cli_seconds_needed``, judged again as each case lands in
    ``speed_json``; nothing with ``reserve`` off). It runs at least ``least`` seconds. Its output goes to
    runs/gpu/speed.log. ``on_case()`` is called each time ``speed_json`` changes (the plan packs the results
    then, so a call cut short by the device's time limit still returns the cases timed so far)."""
    def stamp() -> int | None:
        return speed_json.stat().st_mtime_ns if speed_json.is_file() else None

    with open(RUNS / "speed.log", "w") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        start, seen = time.time(), stamp()
        needed = cli_seconds_needed(speed_json, epochs) if reserve else 0.0
        while proc.poll() is None:
            if (now := stamp()) != seen:  # a case has landed: judge the reserve again, and pack
                seen = now
                needed = cli_seconds_needed(speed_json, epochs) if reserve else 0.0
                if on_case is not None:
                    on_case()
            if time.time() - start >= least and time.time() >= deadline - needed:
                proc.kill()
                proc.wait()
                print(f"[plan] the speed benchmark stopped, to leave {needed:.0f} s for the timed S9 run", flush=True)
                return
            time.sleep(0.5)


def record_cli_time(speed_json: Path, seconds: float, graphs: bool, epochs: int = 20, smoke: bool = False) -> None:
    """Add the timed ``python -m helpers.run s9 --recipe tuned`` run to the speed results (a file of its own
    if the benchmark wrote none)."""
    if speed_json.is_file():
        speed = json.loads(speed_json.read_text())
    else:
        speed = gpu_speed.speed_record(train.get_device("auto"), smoke, 0, [], [])
    speed.update(cli_s9_seconds=round(seconds, 1), cli_cuda_graph=graphs, cli_epochs=epochs,
                 command="python benchmarks/full_cifar.py --phases speed ... (gpu_speed.py alone, then the "
                         "timed CLI run)")
    speed_json.write_text(json.dumps(speed, indent=1))


def select_argv(epochs: int, smoke: bool = False) -> list[str]:
    """The select_recipes.py command: this call's runs and the committed ones (a dry run in smoke mode,
    which changes no recipe)."""
    folders = [str(RUNS)] + ([] if smoke else [str(RESULTS)])
    return [sys.executable, "benchmarks/select_recipes.py", *folders, "--epochs", str(epochs),
            "--evidence", str(RUNS / "selection.json")] + (["--dry-run"] if smoke else [])


def pack(out: Path, with_recipes: bool = False, notebooks: tuple[Path, ...] = ()) -> None:
    """OUT/results.tar.gz: run.json files, the history.json of runs stopped at a deadline (their curves so
    far: only run.json counts as a result), logs, speed results, the selection's evidence, ``notebooks``
    (those executed without an error) and, ``with_recipes`` (after a choice), helpers/recipes.py. The
    checkpoints of the stopped runs go apart, into OUT/checkpoints.tar (``pack_checkpoints``)."""
    out.mkdir(parents=True, exist_ok=True)
    pack_checkpoints(out)
    tmp = out / "results.tar.gz.tmp"
    kept = ("run.json", "history.json", "speed.json", "selection.json", "pytest.xml", "pytest-rest.xml")
    with tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(RUNS.rglob("*")):
            if path.is_file() and (path.name in kept or path.suffix == ".log"):
                tar.add(path, arcname=str(path.relative_to(ROOT)))
        if with_recipes:
            tar.add(ROOT / "helpers" / "recipes.py", arcname="helpers/recipes.py")
        for nb in notebooks:
            tar.add(nb, arcname=str(nb.relative_to(ROOT)))
    tmp.replace(out / "results.tar.gz")


def pack_checkpoints(out: Path, limit: int = CHECKPOINT_BYTES) -> None:
    """OUT/checkpoints.tar: the checkpoint.pt of each run below runs/gpu that a deadline stopped (no run.json
    yet), the S9 runs first, as many as fit in ``limit`` bytes (one file the device returns). Unpacked into
    runs/gpu and carried to the next session's call, with ``--keep`` they resume instead of starting over;
    nothing is written when no run was stopped."""
    earlier = RUNS / "earlier"  # make_room's: runs of other recipes, which never resume
    stopped = sorted((p for p in RUNS.rglob("checkpoint.pt")
                      if not (p.parent / "run.json").is_file() and earlier not in p.parents),
                     key=lambda p: (not p.parent.name.startswith("s9"), str(p)))
    out.mkdir(parents=True, exist_ok=True)
    tmp, size, left_out = out / "checkpoints.tar.tmp", 0, []
    with tarfile.open(tmp, "w") as tar:  # not compressed: float weights hardly shrink
        for path in stopped:
            info = tar.gettarinfo(path, arcname=str(path.relative_to(ROOT)))
            # its headers as tar writes them (an extended one too, for the float mtime), the file in whole
            # 512-byte blocks, and the archive's end blocks
            entry = len(info.tobuf(tar.format, tar.encoding, tar.errors)) + -(-info.size // 512) * 512
            if size + entry + tarfile.RECORDSIZE > limit:
                left_out.append(path.parent.name)
                continue
            size += entry
            with open(path, "rb") as f:
                tar.addfile(info, f)
    if len(left_out) < len(stopped):
        tmp.replace(out / "checkpoints.tar")
    else:  # none stopped (or none fits): no archive, not even an earlier pack's of runs that have since ended
        tmp.unlink()
        (out / "checkpoints.tar").unlink(missing_ok=True)
    if left_out:
        print(f"[plan] checkpoints.tar: no room for {', '.join(left_out)}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    """The command line (its own function, so a test can check the commands the README shows)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="where results.tar.gz goes ($OUT on the GPU machine)")
    p.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES), help="default: all")
    p.add_argument("--runs", nargs="+", choices=RUN_KEYS, default=None,
                   help="train only these runs in tune / finals / loaders (default: all), to spend a short "
                        "device call where it matters most")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--budget", type=float, default=480,
                   help="seconds for all phases together (default 480: with setup.sh and packing, one plan alone "
                        "stays inside a device call's 600 s; two plans in one call share it, e.g. 350 + 170)")
    p.add_argument("--parallel", type=int, default=12, help="runs side by side (default 12)")
    p.add_argument("--cuda-graph", choices=("auto", "on", "off"), default="auto",
                   help="train the device-loader tuning runs with --cuda-graph (the finals stay eager); auto (the "
                        "default): when this call's CUDA tests passed and its speed phase timed the graphs "
                        "faster for both sessions")
    p.add_argument("--keep", action="store_true",
                   help="go on from the plan before (on the same machine, or with its runs/gpu carried there): "
                        "keep runs/gpu, count its runs as done, resume the runs it stopped and use the recipes "
                        "it chose")
    p.add_argument("--smoke", action="store_true", help="synthetic data: a dry run of the plan")
    return p


def _exit_on_signal(signum: int, frame) -> None:
    """SIGTERM or SIGHUP (a time limit, a closed terminal): leave through the finally blocks, which stop the
    plan's jobs; they run in process sessions of their own, which such a signal to this one does not reach."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    previous = {}  # the handlers to put back (signal handlers can be set in the main thread only)
    if threading.current_thread() is threading.main_thread():
        previous = {signum: signal.signal(signum, _exit_on_signal) for signum in (signal.SIGTERM, signal.SIGHUP)}
    suites: list[Job] = []  # the test suites run outside run_jobs: stopped here, however the plan ends
    try:
        plan(args, suites)
    finally:
        stop_all(suites, "tests")
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def plan(args: argparse.Namespace, suites: list[Job]) -> None:
    """The phases ``args`` name, within its budget (``main``); the test suites it starts go into ``suites``."""
    t0, out, e, smoke = time.time(), Path(args.out), args.epochs, args.smoke
    deadline = t0 + args.budget
    phases = [ph for ph in PHASES if ph in args.phases]
    if RUNS.exists() and not args.keep:  # a new plan: keep what the last one left, out of its way
        aside = RUNS.with_name(f"{RUNS.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        RUNS.rename(aside)
        print(f"[plan] moved the earlier {RUNS.name}/ aside to {aside.name}/ (collect it if it holds runs "
              "not yet in doc/results; --keep goes on from it instead)", flush=True)
    if args.keep and not RUNS.is_dir():
        print("[plan] --keep, but runs/gpu is not here: this machine started bare, so the earlier call's runs "
              "count only once collected into doc/results (their results.tar.gz came back with that call)", flush=True)
    RUNS.mkdir(parents=True, exist_ok=True)
    if not args.keep and (RESULTS / "selection.json").is_file():  # the choices so far, which this call extends
        shutil.copy(RESULTS / "selection.json", RUNS / "selection.json")
    notebooks: list[Path] = []  # executed here without an error: only these go into results.tar.gz
    # what earlier sessions committed and, with --keep, what the earlier call on this machine ran
    records = [] if smoke else sel.load_runs(RESULTS, *([RUNS] if args.keep else []))

    tuned = False  # has helpers/recipes.py been rewritten by this call (or a kept earlier one)?
    if args.keep and (RUNS / "recipes.py").is_file():  # the choice of the earlier call on this machine
        shutil.copy(RUNS / "recipes.py", ROOT / "helpers" / "recipes.py")
        importlib.reload(recipes)
        tuned = True

    def save() -> None:
        """Pack what this call has so far into OUT/results.tar.gz (the device's time limit may cut it short)."""
        pack(out, with_recipes=tuned, notebooks=tuple(notebooks))

    tests_passed = None  # not run in this call (nor, with --keep, in the earlier one)
    if args.keep and (RUNS / "pytest.xml").is_file():
        tests_passed = gpu_tests_passed(RUNS / "pytest.xml")
    gpu_suite = rest_suite = None
    if "tests" in phases:  # both halves of the suite in processes of their own
        for report in ("pytest.xml", "pytest-rest.xml"):
            (RUNS / report).unlink(missing_ok=True)  # never read an earlier call's report
        gpu_suite, rest_suite = test_suites()
        suites += [gpu_suite, rest_suite]
        rest_suite.start()
        gpu_suite.start()
        # Without a speed phase nothing in this call waits for them (graphs stay off): the GPU trains beside them
        if "speed" in phases:  # the CUDA tests decide whether the timed graphs may be used, and the speed
            finish(gpu_suite, min(deadline, time.time() + 180), "tests")  # phase wants the machine alone
            tests_passed = say_gpu_tests()
            save()
            finish(rest_suite, min(deadline, time.time() + 240), "tests")
    graphs = use_graphs(args.cuda_graph, RUNS / "speed.json" if args.keep else None, tests_passed)

    if "speed" in phases:  # alone on the device
        # one timed epoch per case (the call is short); each case lands in speed.json as it ends
        speed = [sys.executable, "benchmarks/gpu_speed.py", "--epochs", "1", "--json", str(RUNS / "speed.json")]
        speed += ["--smoke", "--cases", "s8/device"] if smoke else []
        # the timed CLI run comes after it: the benchmark stops in time for it, as estimated from its own rows
        run_speed_benchmark(speed, deadline, RUNS / "speed.json", e, reserve=not smoke,
                            on_case=save)
        save()
        start = time.time()
        graphs = use_graphs(args.cuda_graph, RUNS / "speed.json", tests_passed)
        print(f"[plan] CUDA graphs for the device-loader runs: {'on' if graphs else 'off'}", flush=True)
        timed = cli("s9-tuned-cli", "s9", None, "tuned", 1, e, {}, smoke=smoke, cuda_graph=graphs,
                    out=RUNS.parent / "gpu-speed")  # outside runs/gpu: not a result to collect
        try:
            done = subprocess.run(timed.argv, cwd=ROOT, check=False, stdout=open(RUNS / "speed_cli.log", "w"),
                                  stderr=subprocess.STDOUT, timeout=max(1.0, deadline - time.time()))
            print(f"[plan] the timed S9 run: exit {done.returncode} after {time.time() - start:.1f} s "
                  f"(CUDA graphs {'on' if graphs else 'off'})", flush=True)
            if done.returncode == 0:
                record_cli_time(RUNS / "speed.json", time.time() - start, graphs, e, smoke)
            if graphs and done.returncode != 0:  # a graphed run that fails trains nothing else with graphs
                graphs = False
                print("[plan] the timed run with CUDA graphs failed: graphs off", flush=True)
        except subprocess.TimeoutExpired:
            print("[plan] the timed S9 run ran out of time", flush=True)
        save()
        print(f"[plan] the speed phase ended at {time.time() - t0:.0f} s", flush=True)

    def choose() -> None:
        """select_recipes.py on every run so far; the jobs planned after this use the chosen recipes."""
        nonlocal tuned
        done = subprocess.run(select_argv(e, smoke), cwd=ROOT, check=False, stdout=subprocess.DEVNULL)
        if done.returncode != 0:
            print(f"[plan] select_recipes.py failed (exit {done.returncode}): recipes unchanged", flush=True)
        tuned = tuned or not smoke
        importlib.reload(recipes)
        shutil.copy(ROOT / "helpers" / "recipes.py", RUNS / "recipes.py")  # for a --keep call that follows
        save()
        print(f"[plan] recipes chosen at {time.time() - t0:.0f} s", flush=True)

    # S9 first, then the three S8 runs; each group's finals follow as soon as its own tuning is chosen
    jobs, then, all_tuning = [], [], []
    for group in (("s9",), ("s8-bn", "s8-ln", "s8-gn")):
        keys = tuple(k for k in group if args.runs is None or k in args.runs)
        if not keys:
            continue
        tuning = tune_jobs(records, e, smoke, graphs, keys, resume=args.keep) if "tune" in phases else []
        all_tuning += tuning
        # the seed recipe's finals need no choice (unless a seed-document reading is still to run): they start
        # now, beside the tuning, rather than after it (batch 64, S9's seed finals are the longest runs)
        early = ("seed",) if "finals" in phases and seed_recipe_settled(keys) else ()
        later = tuple(r for r in ("tuned", "seed") if r not in early)

        def follow_up(keys: tuple[str, ...] = keys, chosen: bool = "tune" in phases,
                      later: tuple[str, ...] = later) -> list[Job]:
            if chosen:
                choose()
            done = [] if smoke else sel.load_runs(RESULTS, RUNS)  # with the runs this call has finished
            # the finals stay eager until a graphed full-length run has matched an eager one
            more = (final_jobs(done, e, smoke, runs=keys, resume=args.keep, recipe_names=later)
                    if "finals" in phases else [])
            return more + (final_jobs(done, e, smoke, loader="albumentations", runs=keys, resume=args.keep)
                           if "loaders" in phases else [])
        jobs += tuning + (final_jobs(records, e, smoke, runs=keys, resume=args.keep, recipe_names=early)
                          if early else [])
        then.append((tuning, follow_up))
    if "notebooks" in phases:  # with the recipes chosen, before the other finals (they run longest)
        then.insert(0, (all_tuning, lambda: notebook_jobs(deadline, smoke)))
    def ended(job: Job) -> None:
        if job.name.startswith("notebook/") and job.proc.returncode == 0:
            notebooks.append(ROOT / "notebooks" / f"{job.name.split('/')[1]}.ipynb")
        save()

    run_jobs(jobs, args.parallel, deadline, "plan", then, after_each=ended)
    for suite in (gpu_suite, rest_suite):
        if suite is not None and suite.ended is None:  # not already waited for before the speed phase
            finish(suite, deadline, "tests")
    if gpu_suite is not None and "speed" not in phases:
        say_gpu_tests()
    save()
    print(f"[plan] {', '.join(phases)} done at {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()

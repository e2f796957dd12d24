"""The whole full-CIFAR-10 GPU session in one command: tune, choose, time, train the finals, execute the notebooks.

    source .device/setup.sh && python benchmarks/full_cifar.py --out "$OUT"       # on the lent GPU
    python benchmarks/full_cifar.py --smoke --epochs 1 --budget 600 --out /tmp/o  # a dry run anywhere

Phases, each with its own share of the time budget (jobs still running at a phase's end are stopped):
1. tuning: every candidate of benchmarks/select_recipes.py on the validation split, and the seed
   documents' readings (seed 1, test set), side by side on the one GPU;
2. choice: benchmarks/select_recipes.py writes the chosen values into helpers/recipes.py;
3. speed, alone on the GPU: benchmarks/gpu_speed.py, then `python -m helpers.run s9 --recipe tuned
   --loader device` timed from process start to figures written (it is also the seed-1 final);
4. finals, side by side: seeds 1-3 of every chosen recipe, the albumentations loader beside the
   device loader (S9), both notebooks executed, and the test suite.
Every run writes run.json into runs/gpu/...; after each phase the run.json files, logs, the
rewritten recipes.py and the executed notebooks are packed into OUT/results.tar.gz.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import select_recipes as sel  # noqa: E402

RUNS = ROOT / "runs" / "gpu"
NORMS = ("bn", "ln", "gn")


class Job:
    def __init__(self, name: str, argv: list[str], env: dict | None = None):
        self.name, self.argv, self.env = name, argv, env
        self.proc: subprocess.Popen | None = None
        self.started = self.ended = None

    def start(self) -> None:
        log = RUNS / "logs" / f"{self.name.replace('/', '_')}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log, "w")
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(self.env or {})})
        self.started = time.time()


def run_jobs(jobs: list[Job], parallel: int, deadline: float, label: str) -> None:
    """Run ``jobs`` in order, ``parallel`` at a time, until done or ``deadline`` (then stop the rest)."""
    waiting, running = list(jobs), []
    while (waiting or running) and time.time() < deadline:
        while waiting and len(running) < parallel:
            job = waiting.pop(0)
            job.start()
            running.append(job)
        for job in list(running):
            if job.proc.poll() is not None:
                job.ended = time.time()
                job.log.close()
                running.remove(job)
                print(f"[{label}] {job.name}: exit {job.proc.returncode} after {job.ended - job.started:.0f} s",
                      flush=True)
        time.sleep(0.5)
    for job in running:
        job.proc.kill()
        job.log.close()
        print(f"[{label}] {job.name}: stopped at the phase's deadline", flush=True)
    for job in waiting:
        print(f"[{label}] {job.name}: not started (no time left)", flush=True)


def cli(name: str, session: str, norm: str | None, recipe: str, seed: int, epochs: int, overrides: dict,
        validation: bool = False, loader: str = "device", smoke: bool = False) -> Job:
    argv = [sys.executable, "-m", "helpers.run", session, "--recipe", recipe, "--seed", str(seed),
            "--epochs", str(epochs), "--loader", loader, "--out", str(RUNS / name), "--no-progress"]
    argv += ["--norm", norm] if session == "s8" else []
    argv += ["--set", *sel.candidate_args(overrides)] if overrides else []
    argv += ["--validation"] if validation else []
    argv += ["--smoke"] if smoke else []
    return Job(name, argv)


def pack(out: Path) -> None:
    """OUT/results.tar.gz: run.json files, logs, the rewritten recipes.py, executed notebooks, speed results."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "results.tar.gz.tmp"
    with tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(RUNS.rglob("*")):
            if path.is_file() and (path.name in ("run.json", "speed.json", "selection.json", "cli_s9_time.txt")
                                   or path.suffix == ".log"):
                tar.add(path, arcname=str(path.relative_to(ROOT)))
        tar.add(ROOT / "helpers" / "recipes.py", arcname="helpers/recipes.py")
        for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
            tar.add(nb, arcname=str(nb.relative_to(ROOT)))
    tmp.replace(out / "results.tar.gz")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="where results.tar.gz goes ($OUT on the GPU machine)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--budget", type=float, default=500, help="seconds for all phases together")
    p.add_argument("--parallel", type=int, default=14, help="runs side by side")
    p.add_argument("--smoke", action="store_true", help="synthetic data: a dry run of the plan")
    p.add_argument("--skip-notebooks", action="store_true")
    args = p.parse_args(argv)
    t0, out, e, smoke = time.time(), Path(args.out), args.epochs, args.smoke
    if RUNS.exists():
        shutil.rmtree(RUNS)
    RUNS.mkdir(parents=True)

    # 1. tuning on the validation split, and the seed documents' readings
    jobs = []
    for key, candidates in sel.CANDIDATES.items():
        session, norm = ("s9", None) if key == "s9" else ("s8", key[3:])
        jobs += [cli(f"tune/{key}-{sel.candidate_name(c)}", session, norm, "tuned", 1, e, c, validation=True,
                     smoke=smoke) for c in candidates]
    jobs += [cli(f"read/s9-{sel.candidate_name(r)}-s1", "s9", None, "seed", 1, e, r, smoke=smoke)
             for r in sel.S9_READINGS]
    jobs += [cli(f"read/s8-{n}-{sel.candidate_name(r)}-s1", "s8", n, "seed", 1, e, r, smoke=smoke)
             for r in sel.S8_READINGS for n in NORMS]
    jobs.sort(key=lambda j: not j.name.startswith(("tune/s9", "read/s9")))  # the long S9 runs first
    run_jobs(jobs, args.parallel, t0 + 0.45 * args.budget, "tune")

    # 2. choice by the fixed rules
    subprocess.run([sys.executable, "benchmarks/select_recipes.py", str(RUNS), "--epochs", str(e),
                    "--evidence", str(RUNS / "selection.json")], cwd=ROOT, check=False)
    pack(out)
    print(f"[plan] choice made at {time.time() - t0:.0f} s", flush=True)

    # 3. speed, alone on the device
    speed = [sys.executable, "benchmarks/gpu_speed.py", "--json", str(RUNS / "speed.json"),
             "--cases", "s9/device", "s8/device", "s9/albumentations"] + (["--smoke"] if smoke else [])
    try:
        subprocess.run(speed, cwd=ROOT, check=False, timeout=max(30, 0.2 * args.budget))
    except subprocess.TimeoutExpired:
        print("[plan] the speed benchmark ran out of its time", flush=True)
    start = time.time()
    first = cli("final/s9-tuned-device-s1", "s9", None, "tuned", 1, e, {}, smoke=smoke)
    subprocess.run(first.argv, cwd=ROOT, check=False, stdout=open(RUNS / "final_s9_cli.log", "w"),
                   stderr=subprocess.STDOUT)
    (RUNS / "cli_s9_time.txt").write_text(f"{time.time() - start:.1f} s from process start to figures written\n")
    pack(out)
    print(f"[plan] speed done at {time.time() - t0:.0f} s", flush=True)

    # 4. finals, notebooks, tests
    jobs = [Job("pytest", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"])]  # reads the
    # notebooks at collection, before the executed ones are written back
    if not args.skip_notebooks:
        for nb in ("s9_advanced_convolutions", "s8_normalization"):
            jobs.append(Job(f"notebook/{nb}", [sys.executable, ".device/execute.py", f"notebooks/{nb}.ipynb"],
                            env={"SMOKE_TEST": "1"} if smoke else {}))
    for seed in (2, 3):
        jobs.append(cli(f"final/s9-tuned-device-s{seed}", "s9", None, "tuned", seed, e, {}, smoke=smoke))
    for seed in (2, 3):  # seed 1 of the chosen reading ran in phase 1
        jobs.append(cli(f"final/s9-seed-device-s{seed}", "s9", None, "seed", seed, e, {}, smoke=smoke))
    for recipe in ("tuned", "seed"):
        jobs.append(cli(f"final/s9-{recipe}-albumentations-s1", "s9", None, recipe, 1, e, {},
                        loader="albumentations", smoke=smoke))
    for seed in (1, 2, 3):
        for n in NORMS:
            jobs.append(cli(f"final/s8-{n}-tuned-s{seed}", "s8", n, "tuned", seed, e, {}, smoke=smoke))
            if seed > 1:
                jobs.append(cli(f"final/s8-{n}-seed-s{seed}", "s8", n, "seed", seed, e, {}, smoke=smoke))
    for recipe in ("tuned", "seed"):
        for seed in (2, 3):
            jobs.append(cli(f"final/s9-{recipe}-albumentations-s{seed}", "s9", None, recipe, seed, e, {},
                            loader="albumentations", smoke=smoke))
    run_jobs(jobs, args.parallel, t0 + args.budget, "final")
    pack(out)
    print(f"[plan] done at {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()

"""How fast one epoch trains and evaluates, per session and loader; prints a markdown table.

    python benchmarks/gpu_speed.py --json doc/results/gpu_speed.json     # on a GPU, $CIFAR10_ROOT = full CIFAR-10
    python benchmarks/gpu_speed.py --smoke                              # anywhere: tiny synthetic data (a test runs it)
    python benchmarks/gpu_speed.py --cases s8/device s8/device/graph    # the same case without and with CUDA graphs
    python benchmarks/gpu_speed.py --cases s9/device/compile            # torch.compile (its compile time shows
                                                                        # in the warm-up epoch; not in the default set)

Each case is prepared by helpers.run.prepare_run (the wiring every run uses) with the tuned
recipe, then timed epoch by epoch: the first epoch is the warm-up (cuDNN autotuning, worker
start-up), the next ``--epochs`` are timed with CUDA events around training and evaluation
(the recipe's test-time augmentation included), or with the wall clock on a CPU. Run it alone on the GPU:
other jobs on the same device change the numbers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from helpers import recipes, run, train  # noqa: E402

# in order of need, as a short call may stop the run after any case: S9's fast path with and without graphs first
# (the 20-epoch target and the plan's graphs decision for S9 rest on them), then S8's, then the taught loader
CASES = ("s9/device", "s9/device/graph", "s8/device", "s8/device/graph", "s9/albumentations", "s8/albumentations")


class _Timer:
    """CUDA events on a GPU (they time the device's work, not Python's), the wall clock elsewhere."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __enter__(self):
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            self.end.synchronize()
            self.seconds = self.start.elapsed_time(self.end) / 1000
        else:
            self.seconds = time.perf_counter() - self.t0


def time_case(session: str, loader: str, epochs: int = 2, data_root: str | None = None, smoke: bool = False,
              device: str = "auto", workers: int | None = None, recipe: str | recipes.Recipe = "tuned",
              cuda_graph: bool = False, compile: bool = False) -> dict:
    """Warm-up epoch, then ``epochs`` timed epochs of one session and loader; seconds and images/s.
    ``cuda_graph`` replays the training steps as CUDA graphs (captured in the warm-up epoch);
    ``compile`` runs the model through torch.compile (compiled in the warm-up epoch)."""
    t0 = time.perf_counter()
    p = run.prepare_run(session, "bn", recipe, epochs=epochs + 1, data_root=data_root, seed=1, device=device,
                        loader=loader, smoke=smoke, workers=workers, cuda_graph=cuda_graph, compile=compile,
                        verbose=False)
    train.prepare_model(p.model, p.device)  # as fit prepares it (weight layout, cuDNN autotuning)
    ema = train.make_ema(p.model, p.recipe.ema_decay) if p.recipe.ema_decay else None  # as fit makes them
    loss_fn = train.TrainingLoss(p.model, p.recipe.label_smoothing, p.amp, p.cuda_graph)
    setup = time.perf_counter() - t0
    trains, evals = [], []
    warmup = 0.0
    for epoch in range(1, epochs + 2):
        train._set_epoch(p.train_loader, epoch)
        t_epoch = time.perf_counter()
        with _Timer(p.device) as t_train:
            train.train_one_epoch(p.model, p.train_loader, p.optimizer, p.device, epoch,
                                  p.scheduler if train.steps_every_batch(p.scheduler) else None,
                                  p.recipe.label_smoothing, ema, amp=p.amp, progress=False, loss_fn=loss_fn)
        with _Timer(p.device) as t_eval:
            train.evaluate(ema if ema is not None else p.model, p.test_loader, p.device, tta=p.recipe.tta, amp=p.amp,
                           tta_shift=p.recipe.tta_shift)
        if epoch == 1:
            warmup = time.perf_counter() - t_epoch
        else:
            trains.append(t_train.seconds)
            evals.append(t_eval.seconds)
    train_s, eval_s = statistics.median(trains), statistics.median(evals)
    n_train = len(p.train_loader) * p.recipe.batch_size
    return {"session": session, "loader": loader, "cuda_graph": p.cuda_graph, "compile": compile,
            "batch_size": p.recipe.batch_size, "tta": p.recipe.tta, "tta_shift": p.recipe.tta_shift,
            "amp": p.amp,
            "train_images": n_train, "test_images": len(p.test_split), "setup_s": round(setup, 2),
            "warmup_epoch_s": round(warmup, 2), "train_s": round(train_s, 3), "eval_s": round(eval_s, 3),
            "epoch_s": round(train_s + eval_s, 3), "train_images_per_s": round(n_train / train_s),
            "workers": getattr(p.train_loader, "num_workers", None)}


def format_table(rows: list[dict]) -> str:
    """Markdown table of the timed cases (also the README's, through benchmarks/recipes.py)."""
    lines = ["| session | loader | batch | train s/epoch | eval s (the recipe's TTA) | epoch s | train images/s "
             "| warm-up epoch s |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        case = (f"{r['loader']}{' + CUDA graphs' if r.get('cuda_graph') else ''}"
                f"{' + torch.compile' if r.get('compile') else ''}"
                f"{' (' + str(r['workers']) + ' workers)' if r.get('workers') else ''}")
        shifts = f" (shifts {r['tta_shift']})" if r.get("tta_shift") else ""  # rows timed before shift TTA: none
        lines.append(f"| {r['session']} | {case} | {r['batch_size']} | {r['train_s']:.2f} | {r['eval_s']:.2f}{shifts} "
                     f"| {r['epoch_s']:.2f} | {r['train_images_per_s']:,} | {r['warmup_epoch_s']:.1f} |")
    return "\n".join(lines)


def speed_record(device: torch.device, smoke: bool, epochs: int, rows: list[dict], failed: list[dict]) -> dict:
    """What --json holds: the timed rows, the failed cases, and the hardware, torch version and date."""
    return {"hardware": run.hardware_name(device), "torch": torch.__version__, "date": datetime.date.today().isoformat(),
            "smoke": smoke, "epochs_timed": epochs, "rows": rows, "failed": failed}


def main(argv: list[str] | None = None) -> list[dict]:
    """Time every case, print the table, optionally write the rows with the hardware to --json (after each
    case, so a timeout keeps what was timed). A case that fails is reported and the others still run; the
    exit status then says so."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up (default 2)")
    p.add_argument("--cases", nargs="+", default=None,
                   help="session/loader[/graph or /compile] (default: all six without compile on a GPU, the "
                        "four without graphs elsewhere)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--smoke", action="store_true", help="tiny synthetic data (for a test, or a quick look)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: chosen for the machine)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    device = train.get_device(args.device)
    cases = args.cases or [c for c in CASES if device.type == "cuda" or not c.endswith("/graph")]
    parsed = [(case, *case.split("/")) for case in cases]
    for case, session, loader, *extra in parsed:
        if session not in ("s8", "s9") or loader not in ("device", "albumentations") \
                or extra not in ([], ["graph"], ["compile"]) or (extra == ["graph"] and loader != "device"):
            p.error(f"unknown case {case!r}; write session/loader, session/device/graph or session/loader/compile, "
                    f"e.g. s8/device/graph")
    rows, failed = [], []
    for case, session, loader, *extra in parsed:
        try:
            rows.append(time_case(session, loader, args.epochs, args.data_root, args.smoke, args.device, args.workers,
                                  cuda_graph=extra == ["graph"], compile=extra == ["compile"]))
            print(json.dumps(rows[-1]), flush=True)
        except Exception as error:  # noqa: BLE001  (a failed capture or a CUDA error: the other cases still count)
            failed.append({"case": case, "error": f"{type(error).__name__}: {error}".splitlines()[0]})
            print(f"{case}: failed: {failed[-1]['error']}", flush=True)
        if args.json:  # whole or not at all: the plan may stop this process at any moment
            tmp = Path(f"{args.json}.tmp")
            tmp.write_text(json.dumps(speed_record(device, args.smoke, args.epochs, rows, failed), indent=1))
            os.replace(tmp, args.json)
    header = (f"{run.hardware_name(device)}, torch {torch.__version__}, "
              f"{'synthetic smoke data' if args.smoke else 'CIFAR-10'}, tuned recipes, "
              f"median of {args.epochs} epoch(s) after a warm-up epoch, {datetime.date.today().isoformat()}")
    print(f"\n{header}\n\n{format_table(rows)}")
    if failed:
        raise SystemExit(f"{len(failed)} of {len(cases)} cases failed: " + "; ".join(f["case"] for f in failed))
    return rows


if __name__ == "__main__":
    main()

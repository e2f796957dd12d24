"""Seed recipe versus tuned recipe, same data, epochs and seed; prints a markdown table.

    python benchmarks/recipes.py --data-root ../shared/cifar10-sample --epochs 20
    python benchmarks/recipes.py --runs s8-bn s9 --epochs 20 --device cuda

Each run goes through the command-line runner into runs/course/<run>-<recipe>-e<epochs>/ and is
resumed (not repeated) when the script is run again. Not a test: it takes hours on a CPU.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from helpers import run, train  # noqa: E402

RUNS = {"s8-bn": ["s8", "--norm", "bn"], "s8-ln": ["s8", "--norm", "ln"], "s8-gn": ["s8", "--norm", "gn"],
        "s9": ["s9"]}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    rows = []
    for name in args.runs:
        result = {"run": name}
        for recipe in ("seed", "tuned"):
            out = ROOT / "runs" / "course" / f"{name}-{recipe}-e{args.epochs}"  # shared with doc/make_figures.py
            cli = [*RUNS[name], "--recipe", recipe, "--epochs", str(args.epochs), "--seed", str(args.seed),
                   "--out", str(out), "--device", args.device, "--resume", "--no-progress"]
            run.main(cli + (["--data-root", args.data_root] if args.data_root else []))
            history = train.load_checkpoint(out / "checkpoint.pt")["history"]
            best = train.best_epoch(history)
            result[recipe] = (history[-1]["test_acc"], best["test_acc"], best["epoch"])
        rows.append(result)

    device = train.get_device(args.device)
    hardware = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"\n{args.epochs} epochs, seed {args.seed}, data {args.data_root or 'CIFAR10_ROOT / ./data'}, {hardware}, torch {torch.__version__}\n")
    print("| run | seed recipe: final (best @ epoch) | tuned recipe: final (best @ epoch) | gain (final) |")
    print("|---|---|---|---|")
    for r in rows:
        s, t = r["seed"], r["tuned"]
        print(f"| {r['run']} | {s[0]:.2f}% ({s[1]:.2f}% @ {s[2]}) | {t[0]:.2f}% ({t[1]:.2f}% @ {t[2]}) | "
              f"{t[0] - s[0]:+.2f} pts |")
    return rows


if __name__ == "__main__":
    main()

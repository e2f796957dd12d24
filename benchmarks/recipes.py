"""Seed recipe versus tuned recipe, same data, epochs and seeds; prints a markdown table.

    python benchmarks/recipes.py --data-root ../shared/cifar10-sample --epochs 20
    python benchmarks/recipes.py --runs s8-bn s8-ln s8-gn --seeds 1 2 3 --data-root ../shared/cifar10-sample
    python benchmarks/recipes.py --runs s9 --epochs 20 --device cuda
    python benchmarks/recipes.py --plot-dir doc ...     # also draw recipes_<run>.png (seed vs tuned curves)

Each run goes through the command-line runner into runs/course/<run>-<recipe>-e<epochs>[-s<seed>]/
and is resumed (not repeated) when the script is run again, so runs can also be made beforehand,
in parallel, with `python -m helpers.run ... --out <that folder>`. Not a test: it takes hours on
a CPU. The gain is the tuned recipe's final test accuracy minus the seed recipe's, averaged over
the seeds.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from helpers import plots, run, train  # noqa: E402

RUNS = {"s8-bn": ["s8", "--norm", "bn"], "s8-ln": ["s8", "--norm", "ln"], "s8-gn": ["s8", "--norm", "gn"],
        "s9": ["s9"]}
RECIPES = ("seed", "tuned")


def run_dir(name: str, recipe: str, epochs: int, seed: int) -> Path:
    """Where one run lives; seed 1 shares its folder with doc/make_figures.py."""
    return ROOT / "runs" / "course" / f"{name}-{recipe}-e{epochs}{'' if seed == 1 else f'-s{seed}'}"


def train_run(name: str, recipe: str, epochs: int, seed: int, data_root: str | None, device: str) -> list[dict]:
    """Train (or resume) one run through the command-line runner and return its history."""
    out = run_dir(name, recipe, epochs, seed)
    cli = [*RUNS[name], "--recipe", recipe, "--epochs", str(epochs), "--seed", str(seed), "--out", str(out),
           "--device", device, "--resume", "--no-progress"]
    run.main(cli + (["--data-root", data_root] if data_root else []))
    return train.load_checkpoint(out / "checkpoint.pt")["history"]


def _spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.2f}%" if len(values) == 1 else f"{mean:.2f}% ± {statistics.stdev(values):.2f}"


def format_table(results: dict[str, dict[str, list[list[dict]]]]) -> str:
    """Markdown table of final (and, for one seed, best) test accuracies per run and recipe."""
    lines = ["| run | seed recipe | tuned recipe | gain |", "|---|---|---|---|"]
    for name, by_recipe in results.items():
        cells, finals = [], {}
        for recipe in RECIPES:
            histories = by_recipe[recipe]
            finals[recipe] = [h[-1]["test_acc"] for h in histories]
            cell = _spread(finals[recipe])
            if len(histories) == 1:
                best = train.best_epoch(histories[0])
                cell += f" (best {best['test_acc']:.2f}% @ {best['epoch']})"
            cells.append(cell)
        gain = statistics.fmean(finals["tuned"]) - statistics.fmean(finals["seed"])
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {gain:+.2f} pts |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Train (or resume) every run, print the table; return {run: {recipe: [history per seed]}}."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seeds", type=int, nargs="+", default=[1], help="one run per seed and recipe (default 1)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--plot-dir", default=None, help="write recipes_<run>.png there: curves of both recipes, first seed")
    args = p.parse_args(argv)
    results = {name: {recipe: [train_run(name, recipe, args.epochs, seed, args.data_root, args.device)
                               for seed in args.seeds] for recipe in RECIPES} for name in args.runs}

    device = train.get_device(args.device)
    hardware = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()})"
    seeds = ", ".join(map(str, args.seeds))
    print(f"\nfinal test accuracy after {args.epochs} epochs, {'mean ± sd over ' if len(args.seeds) > 1 else ''}"
          f"seed{'s' if len(args.seeds) > 1 else ''} {seeds}; data {args.data_root or 'CIFAR10_ROOT / ./data'}; "
          f"{hardware}; torch {torch.__version__}\n")
    print(format_table(results))
    if args.plot_dir:
        for name, by_recipe in results.items():
            path = Path(args.plot_dir) / f"recipes_{name}.png"
            fig = plots.plot_history({f"{recipe} recipe": by_recipe[recipe][0] for recipe in RECIPES},
                                     title=f"{name}: seed vs tuned recipe, seed {args.seeds[0]}", save=str(path))
            plt.close(fig)
            print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()

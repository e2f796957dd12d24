"""One tuning run on a validation split: a recipe with some fields changed, scored on images it never trains on.

    python benchmarks/tune.py s8 --norm ln --set lr=0.02 --data-root ../shared/cifar10-sample
    python benchmarks/tune.py s9 --set dropout=0 augment=s9-light --loader device --log tuning.jsonl

The run goes through helpers.run.train_course_net (the wiring every run uses) with
``validation=True``: the last 10 % of the training images (5,000 of CIFAR-10's 50,000) are held
out and scored, so the test batch stays untouched. Prints one JSON line (and appends it to
--log): the settings, final and best validation accuracy, final training accuracy.
benchmarks/full_cifar.py runs the candidates of benchmarks/select_recipes.py this way on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers import models, recipes, run, train  # noqa: E402

parse_settings = run.parse_settings


def main(argv: list[str] | None = None) -> dict:
    """Train once on the training images but the last 10 %, score on those; return (and print) the result."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("session", choices=("s8", "s9"))
    p.add_argument("--norm", choices=models.NORMS, default=None, help="s8 only (default bn)")
    p.add_argument("--recipe", choices=recipes.RECIPES, default="tuned")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="recipe fields to change, e.g. lr=0.05 dropout=none augment=flip tta=false")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=run.random_seed, default=1)
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", choices=train.DEVICES, default="auto")
    p.add_argument("--loader", choices=run.LOADERS, default="auto")
    p.add_argument("--log", default=None, help="append the JSON line to this file")
    args = p.parse_args(argv)
    if args.session == "s9" and args.norm is not None:
        p.error("--norm is for s8 only: the S9 network uses BatchNorm")
    norm = args.norm or "bn"
    try:
        settings = parse_settings(args.set)
        recipe = recipes.recipe_with_settings(args.session, args.recipe, norm, settings)
    except (ValueError, TypeError) as e:
        p.error(str(e))
    result = run.train_course_net(args.session, norm, recipe, epochs=args.epochs, data_root=args.data_root,
                                  seed=args.seed, device=args.device, loader=args.loader, validation=True,
                                  progress=False, verbose=False)
    history, best = result.history, train.best_epoch(result.history)
    record = {"session": args.session, "norm": norm if args.session == "s8" else None, "recipe": args.recipe,
              "set": args.set, "epochs": args.epochs, "seed": args.seed, "data": result.config["data"],
              "val_acc": round(history[-1]["test_acc"], 2), "best_val_acc": round(best["test_acc"], 2),
              "best_epoch": best["epoch"], "train_acc": round(history[-1]["train_acc"], 2),
              "seconds": round(result.seconds)}
    line = json.dumps(record)
    print(line)
    if args.log:
        with open(args.log, "a") as f:
            f.write(line + "\n")
    return record


if __name__ == "__main__":
    main()

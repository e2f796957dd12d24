"""Seed recipe versus tuned recipe: collect the runs' histories and write the README's result tables.

    python benchmarks/recipes.py collect runs/gpu runs/sample     # copy each run.json to doc/results/
    python benchmarks/recipes.py report                           # README tables + doc/recipes_<run>.png

Runs are made by helpers.run (the wiring every run uses): on a GPU by benchmarks/full_cifar.py,
on a CPU for example with
``python -m helpers.run s8 --recipe tuned --seed 2 --data-root ../shared/cifar10-sample --out runs/sample/...``.
``collect`` copies their run.json (history, settings, data, hardware, torch version) to
doc/results/<data>-<run>-<recipe>-<loader>-seed<k>.json. ``report`` reads only doc/results/ and
rewrites the README between the ``<!-- results:... -->`` markers: final-epoch test accuracy,
mean ± sd over seeds, and only runs whose recipe is the one helpers.recipes holds now.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers import recipes  # noqa: E402

RESULTS = ROOT / "doc" / "results"
RUNS = ("s8-bn", "s8-ln", "s8-gn", "s9")


def run_name(config: dict) -> str:
    return f"s8-{config['norm']}" if config["session"] == "s8" else "s9"


def data_kind(config: dict) -> str:
    """"full" (50,000 train), "sample" (the 4,068-image CPU sample), "validation" or "synthetic"."""
    text = config["data"]
    if "validation" in text:
        return "validation"
    if text.startswith("synthetic"):
        return "synthetic"
    return "full" if text.startswith("CIFAR-10: 50000 train") else "sample"


def collect(folders: list[Path], dest: Path = RESULTS) -> list[Path]:
    """Copy every run.json below ``folders`` to ``dest`` under a name that says what it is."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("run.json")):
            record = json.loads(path.read_text())
            c = record["config"]
            extra = "" if data_kind(c) != "validation" else "-" + path.parent.name
            name = (f"{data_kind(c)}-{run_name(c)}-{c['recipe']['name']}-{c['loader']}{extra}-seed{c['seed']}"
                    f"-e{record['epochs']}.json")
            (dest / name).write_text(json.dumps(record, indent=1))
            written.append(dest / name)
    return written


def load(dest: Path = RESULTS) -> list[dict]:
    records = [json.loads(p.read_text()) for p in sorted(dest.glob("*.json"))]
    return [r for r in records if "config" in r and "history" in r]  # not gpu_speed.json or the selection


def current(record: dict) -> bool:
    """Was the run made with the recipe that helpers.recipes holds now?"""
    c = record["config"]
    expected = recipes.get_recipe(c["session"], c["recipe"]["name"], c["norm"] or "bn")
    return recipes.Recipe(**c["recipe"]) == expected  # a field added since takes its default


def _cell(values: list[float]) -> str:
    if not values:
        return "not run"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.2f} % (1 seed)"
    return f"{mean:.2f} % ± {statistics.stdev(values):.2f} ({len(values)} seeds)"


def results_table(records: list[dict], kind: str, loader: str | None = "device") -> str:
    """Final-epoch test accuracy per run and recipe (mean ± sd over seeds), current recipes only."""
    lines = ["| run | seed recipe | tuned recipe | tuned: first epoch at >= 85 % (S9) |", "|---|---|---|---|"]
    for run in RUNS:
        cells, first85 = [], ""
        for name in recipes.RECIPES:
            found = [r for r in records if run_name(r["config"]) == run and r["config"]["recipe"]["name"] == name
                     and data_kind(r["config"]) == kind and current(r)
                     and (loader is None or r["config"]["loader"] == loader)]
            cells.append(_cell([r["history"][-1]["test_acc"] for r in found]))
            if name == "tuned" and run == "s9" and found:
                epochs = [next((h["epoch"] for h in r["history"] if h["test_acc"] >= 85), None) for r in found]
                first85 = ", ".join("never" if e is None else str(e) for e in epochs)
        lines.append(f"| {run} | {cells[0]} | {cells[1]} | {first85} |")
    return "\n".join(lines)


def provenance(records: list[dict], kind: str) -> str:
    found = [r for r in records if data_kind(r["config"]) == kind and current(r)]
    hardware = sorted({r["hardware"] for r in found})
    torch_versions = sorted({r["torch"] for r in found})
    dates = sorted({r["date"] for r in found})
    return (f"{len(found)} runs; hardware: {', '.join(hardware)}; torch {', '.join(torch_versions)}; "
            f"dates {', '.join(dates)}; files doc/results/{kind}-*.json")


def tuning_table(records: list[dict]) -> str:
    """Every validation run: the recipe fields that differ from the current tuned recipe, final val accuracy."""
    lines = ["| run | settings (vs. the tuned recipe now) | final validation accuracy |", "|---|---|---|"]
    for r in records:
        c = r["config"]
        if data_kind(c) != "validation":
            continue
        now = recipes.get_recipe(c["session"], "tuned", c["norm"] or "bn").as_dict()
        made = recipes.Recipe(**c["recipe"]).as_dict()
        diff = ", ".join(f"{k}={v}" for k, v in made.items() if now.get(k) != v) or "as the tuned recipe"
        lines.append(f"| {run_name(c)} | {diff} | {r['history'][-1]['test_acc']:.2f} % |")
    return "\n".join(lines)


def speed_table(path: Path = RESULTS / "gpu_speed.json") -> str:
    if not path.is_file():
        return "not measured"
    speed = json.loads(path.read_text())
    lines = [f"{speed['hardware']}, torch {speed['torch']}, {speed['date']}; full CIFAR-10 (JPEG copy), tuned "
             f"recipes, one run alone on the GPU, median of {speed['epochs_timed']} epochs after a warm-up epoch, "
             f"CUDA-event timing:", "",
             "| session | loader | batch | train s/epoch | eval s (flip TTA) | epoch s | train images/s |",
             "|---|---|---|---|---|---|---|"]
    for r in speed["rows"]:
        lines.append(f"| {r['session']} | {r['loader']}{' (' + str(r['workers']) + ' workers)' if r['workers'] else ''}"
                     f" | {r['batch_size']} | {r['train_s']:.2f} | {r['eval_s']:.2f} | {r['epoch_s']:.2f} | "
                     f"{r['train_images_per_s']:,} |")
    if speed.get("cli_s9_seconds"):
        lines += ["", f"`python -m helpers.run s9 --recipe tuned --loader device`, 20 epochs, alone: "
                      f"{speed['cli_s9_seconds']:.1f} s from process start to figures written."]
    return "\n".join(lines)


def recipe_table() -> str:
    """Every field of the seed and tuned recipes as helpers.recipes holds them now."""
    cols = [("s8", "seed", "bn"), ("s8", "tuned", "bn"), ("s8", "tuned", "ln"), ("s8", "tuned", "gn"),
            ("s9", "seed", "bn"), ("s9", "tuned", "bn")]
    table = [recipes.get_recipe(s, n, norm).as_dict() for s, n, norm in cols]
    head = ["S8 seed", "S8 tuned BN", "S8 tuned LN", "S8 tuned GN", "S9 seed", "S9 tuned"]
    lines = ["| field | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for field in recipes.field_names():
        lines.append(f"| {field} | " + " | ".join(str(t[field]) for t in table) + " |")
    return "\n".join(lines)


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- results:{name} -->\n).*?(<!-- /results:{name} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"README.md has no <!-- results:{name} --> ... <!-- /results:{name} --> markers")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def report(readme: Path = ROOT / "README.md", dest: Path = RESULTS) -> str:
    """Rewrite the README's generated blocks from doc/results/; return the new text."""
    records = load(dest)
    text = readme.read_text()
    text = replace_block(text, "recipes", recipe_table())
    text = replace_block(text, "full", provenance(records, "full") + "\n\n" + results_table(records, "full"))
    text = replace_block(text, "sample", provenance(records, "sample") + "\n\n" +
                         results_table(records, "sample", loader=None))
    text = replace_block(text, "tuning", tuning_table(records))
    text = replace_block(text, "speed", speed_table(dest / "gpu_speed.json"))
    readme.write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="copy run.json files to doc/results/")
    c.add_argument("folders", nargs="+")
    sub.add_parser("report", help="rewrite the README's result tables from doc/results/")
    args = p.parse_args(argv)
    if args.command == "collect":
        for path in collect([Path(f) for f in args.folders]):
            print(f"wrote {path.relative_to(ROOT)}")
    else:
        report()
        print("README.md result tables rewritten from doc/results/")


if __name__ == "__main__":
    main()

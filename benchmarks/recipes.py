"""Seed recipe versus tuned recipe: collect the runs' histories and write the README's result tables.

    python benchmarks/recipes.py sample --data-root ../shared/cifar10-sample   # train the CPU comparison
    python benchmarks/recipes.py collect runs/gpu runs/sample     # copy each run.json to doc/results/
    python benchmarks/recipes.py report                           # README tables, doc/tuning.md evidence, figures

Runs are made by helpers.run (the wiring every run uses): on a GPU by benchmarks/full_cifar.py,
on a CPU by ``sample``: the seed and the tuned recipe, seeds 1-3, two runs at a time with one
thread each (the 2-core machine the sample results come from), into runs/sample/.
``collect`` copies their run.json (history, settings, data, hardware, torch version) to
doc/results/<data>-<run>-<recipe>-<loader>-seed<k>.json. ``report`` reads only doc/results/ and
rewrites the README between the ``<!-- results:... -->`` markers (final-epoch test accuracy,
mean ± sd over seeds, and only runs whose recipe is the one helpers.recipes holds now), the
selection, every validation run and the seed-document evidence in doc/tuning.md, the figures
doc/recipes_<run>.png (test accuracy per epoch, seed vs tuned recipe, full CIFAR-10) and
doc/seed_vs_log_s9.png (every S9 seed-recipe run over the seed document's published log).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from benchmarks import gpu_speed, select_recipes  # noqa: E402
from benchmarks.select_recipes import run_key  # noqa: E402
from helpers import recipes  # noqa: E402

RESULTS = ROOT / "doc" / "results"
DOC = ROOT / "doc"
RUNS = ("s8-bn", "s8-ln", "s8-gn", "s9")
EPOCHS = 20  # the results sections compare 20-epoch runs (the issues' budget)


def data_kind(config: dict) -> str:
    """"full" (50,000 train), "sample" (the 4,068-image CPU sample), "validation" or "synthetic" (a smoke
    run's images, validation split or not: their scores never count)."""
    text = config["data"]
    if text.startswith("synthetic"):
        return "synthetic"
    if "validation" in text:
        return "validation"
    return "full" if text.startswith("CIFAR-10: 50000 train") else "sample"


def collect(folders: list[Path], dest: Path = RESULTS) -> list[Path]:
    """Copy every run.json below ``folders`` to ``dest`` under a name that says what it is: a tuning
    candidate, a seed-document reading (``read/`` folders) or a candidate tried on the CPU sample
    (``--set`` in its folder's name) keeps its folder's name in it, and a record made with another
    recipe than the one of the same name never replaces it (it gets the recipe's digest in its name).
    The speed results and the selection's evidence (merged with the choices already there) come along."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("selection.json")):  # what benchmarks/select_recipes.py chose
            old = json.loads((dest / "selection.json").read_text()) if (dest / "selection.json").is_file() else None
            merged = select_recipes.merge_evidence(old, json.loads(path.read_text()))
            (dest / "selection.json").write_text(json.dumps(merged, indent=1))
            written.append(dest / "selection.json")
        for path in sorted(Path(folder).rglob("speed.json")):  # benchmarks/gpu_speed.py on the full data
            if not json.loads(path.read_text()).get("smoke"):
                (dest / "gpu_speed.json").write_text(path.read_text())
                written.append(dest / "gpu_speed.json")
        for path in sorted(Path(folder).rglob("run.json")):
            record = json.loads(path.read_text())
            c = record["config"]
            named = data_kind(c) == "validation" or path.parent.parent.name == "read" or "=" in path.parent.name
            extra = "-" + path.parent.name if named else ""
            target = dest / (f"{data_kind(c)}-{run_key(c)}-{c['recipe']['name']}-{c['loader']}{extra}"
                             f"-seed{c['seed']}-e{record['epochs']}.json")
            if target.exists() and not select_recipes.same_recipe(json.loads(target.read_text())["config"]["recipe"],
                                                                  c["recipe"]):
                digest = hashlib.sha1(json.dumps(c["recipe"], sort_keys=True).encode()).hexdigest()[:8]
                target = target.with_name(f"{target.stem}-{digest}.json")
            target.write_text(json.dumps(record, indent=1))
            written.append(target)
    return written


def load(dest: Path = RESULTS) -> list[dict]:
    """The run records in ``dest`` (doc/results/), by file name."""
    records = [json.loads(p.read_text()) for p in sorted(dest.glob("*.json"))]
    return [r for r in records if "config" in r and "history" in r]  # not gpu_speed.json or the selection


def current(record: dict) -> bool:
    """Was the run made with the recipe that helpers.recipes holds now?"""
    c = record["config"]
    expected = recipes.get_recipe(c["session"], c["recipe"]["name"], c["norm"] or "bn")
    return select_recipes.made_with(c["recipe"], expected)


def counted(records: list[dict], kind: str, loader: str | None = None) -> list[dict]:
    """The records a results section counts: data ``kind``, a recipe ``helpers.recipes`` holds now,
    ``EPOCHS`` epochs, and ``loader`` when given (the loader comparison's albumentations runs of full
    CIFAR-10 must not be averaged into the device loader's table, gains and figures)."""
    return [r for r in records if data_kind(r["config"]) == kind and current(r) and r["epochs"] == EPOCHS
            and (loader is None or r["config"]["loader"] == loader)]


def runs_of(records: list[dict], run: str, recipe: str, kind: str, loader: str | None = None) -> list[dict]:
    """The counted records (``counted``) of ``run`` ("s9", "s8-bn", ...) made with ``recipe``."""
    return [r for r in counted(records, kind, loader)
            if run_key(r["config"]) == run and r["config"]["recipe"]["name"] == recipe]


def _cell(values: list[float], where: str = "") -> str:
    if not values:
        return "not run"
    mean = statistics.fmean(values)
    seeds = "1 seed" if len(values) == 1 else f"{len(values)} seeds"
    spread = "" if len(values) == 1 else f" ± {statistics.stdev(values):.2f}"
    return f"{mean:.2f} %{spread} ({seeds}{'; ' + where if where else ''})"


def short_hardware(name: str) -> str:
    """"CPU (x86_64, 1 thread)" -> "CPU", "NVIDIA H200" -> "H200": a table cell's label."""
    return "CPU" if name.startswith("CPU") else name.removeprefix("NVIDIA ")


def results_table(records: list[dict], kind: str, loader: str | None = "device") -> str:
    """Final-epoch test accuracy per run and recipe (mean ± sd over seeds), current recipes only; each cell
    names its hardware when the table's runs come from more than one kind of machine."""
    lines = ["| run | seed recipe | tuned recipe | tuned: first epoch at >= 85 % (S9) |", "|---|---|---|---|"]
    mixed = len({short_hardware(r["hardware"]) for r in counted(records, kind, loader)}) > 1
    for run in RUNS:
        cells, first85 = [], ""
        for name in recipes.RECIPES:
            found = runs_of(records, run, name, kind, loader)
            where = ", ".join(sorted({short_hardware(r["hardware"]) for r in found})) if mixed else ""
            cells.append(_cell([r["history"][-1]["test_acc"] for r in found], where))
            if name == "tuned" and run == "s9" and found:
                epochs = [next((h["epoch"] for h in r["history"] if h["test_acc"] >= 85), None) for r in found]
                first85 = ", ".join("never" if e is None else str(e) for e in epochs)
        lines.append(f"| {run} | {cells[0]} | {cells[1]} | {first85} |")
    return "\n".join(lines)


def changed_since(config: dict) -> str:
    """The fields of a run's recorded recipe that differ from the recipe of the same name now."""
    now = recipes.get_recipe(config["session"], config["recipe"]["name"], config["norm"] or "bn").as_dict()
    made = recipes.Recipe(**config["recipe"]).as_dict()
    return ", ".join(f"{k}={v}" for k, v in made.items() if now.get(k) != v)


def earlier_table(records: list[dict], kind: str) -> str:
    """Runs of recipes that ``helpers.recipes`` no longer holds, one row per recipe, loader and hardware:
    what changed since, final test accuracy over seeds. Kept as evidence (the choice was made on the
    validation split)."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        c = r["config"]
        if data_kind(c) == kind and not current(r):
            key = [run_key(c), recipes.Recipe(**c["recipe"]).as_dict(), c["loader"], short_hardware(r["hardware"])]
            groups.setdefault(json.dumps(key, sort_keys=True), []).append(r)
    if not groups:
        return ""
    lines = ["| run | recipe | loader | hardware | its settings (vs. that recipe now) | final test accuracy | seeds |",
             "|---|---|---|---|---|---|---|"]
    for key in sorted(groups):
        found = groups[key]
        c = found[0]["config"]
        seeds = ", ".join(str(r["config"]["seed"]) for r in sorted(found, key=lambda r: r["config"]["seed"]))
        lines.append(f"| {run_key(c)} | {c['recipe']['name']} | {c['loader']} | {short_hardware(found[0]['hardware'])} "
                     f"| {changed_since(c)} | {_cell([r['history'][-1]['test_acc'] for r in found])} | {seeds} |")
    return "Runs of earlier recipes (not counted above):\n\n" + "\n".join(lines)


def provenance(records: list[dict], kind: str, loader: str | None = None) -> str:
    """One line: how many runs a results section counts, and their hardware, torch versions and dates."""
    found = counted(records, kind, loader)
    # (records written before helpers.run.hardware_name said "1 thread" read "1 threads")
    hardware = sorted({r["hardware"].replace(", 1 threads)", ", 1 thread)") for r in found})
    torch_versions = sorted({r["torch"] for r in found})
    dates = sorted({r["date"] for r in found})
    return (f"{len(found)} runs; hardware: {', '.join(hardware)}; torch {', '.join(torch_versions)}; "
            f"dates {', '.join(dates)}; files doc/results/{kind}-*.json")


def tuning_table(records: list[dict]) -> str:
    """Every validation run: the recipe fields that differ from the current tuned recipe, final val accuracy."""
    lines = ["| run | settings (vs. the tuned recipe now) | final validation accuracy | hardware |",
             "|---|---|---|---|"]
    for r in records:
        c = r["config"]
        if data_kind(c) != "validation":
            continue
        settings = changed_since(c) or "as the tuned recipe"
        lines.append(f"| {run_key(c)} | {settings} | {r['history'][-1]['test_acc']:.2f} % | "
                     f"{short_hardware(r['hardware'])} |")
    return "\n".join(lines)


def sampling_error(accuracy: float, images: int) -> float:
    """One standard error, in points, of an accuracy (%) measured on ``images`` images: the binomial
    sqrt(p (1 - p) / n), what the draw of evaluation images alone moves one run's score by."""
    p = accuracy / 100
    return 100 * (p * (1 - p) / images) ** 0.5


def evaluation_images(config: dict) -> int:
    """How many images a run was scored on, from its history's data line ("... / 5000 validation ...")."""
    match = re.search(r"/ (\d+) (?:validation|test)", config["data"])
    if not match:
        raise ValueError(f"no image count in the data line {config['data']!r}")
    return int(match.group(1))


def tuning_summary(records: list[dict]) -> str:
    """Per run: how many validation runs it had, the tuned recipe's own final validation accuracy, the
    best settings other than the recipe's (each mean over the seeds run), and how much one run's score
    moves from the draw of validation images alone; doc/tuning.md lists every run."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        c = r["config"]
        if data_kind(c) == "validation" and c["recipe"]["name"] == "tuned":
            groups.setdefault((run_key(c), changed_since(c)), []).append(r)

    def score(runs: list[dict]) -> float:
        return statistics.mean(r["history"][-1]["test_acc"] for r in runs)

    def cell(runs: list[dict]) -> str:
        seeds = f"{len(runs)} seeds, " if len(runs) > 1 else ""
        machines = ", ".join(sorted({short_hardware(r["hardware"]) for r in runs}))
        return f"{score(runs):.2f} % ({seeds}{machines})"

    lines = ["| run | validation runs | the tuned recipe | the best other settings tried "
             "| one run's sampling error (binomial, 1 SE) |", "|---|---|---|---|---|"]
    for run in RUNS:
        mine = {settings: runs for (key, settings), runs in groups.items() if key == run}
        if not mine:
            continue
        others = sorted((s for s in mine if s), key=lambda s: score(mine[s]), reverse=True)
        best = f"{others[0]}: {cell(mine[others[0]])}" if others else "none yet"
        own = cell(mine[""]) if "" in mine else "no validation run yet"
        basis = mine.get("") or mine[others[0]]  # the recipe's own runs, else the best other's
        noise = sampling_error(score(basis), evaluation_images(basis[0]["config"]))
        lines.append(f"| {run} | {sum(map(len, mine.values()))} | {own} | {best} | {noise:.2f} points |")
    return "\n".join(lines)


def speed_table(path: Path = RESULTS / "gpu_speed.json") -> str:
    if not path.is_file():
        return "not measured"
    speed = json.loads(path.read_text())
    lines = [f"{speed['hardware']}, torch {speed['torch']}, {speed['date']}; full CIFAR-10 (JPEG copy), the tuned "
             f"recipes as they were then (batch column), one run alone on the GPU, median of "
             f"{speed['epochs_timed']} epochs after a warm-up epoch, CUDA-event timing:", "",
             gpu_speed.format_table(speed["rows"]) if speed["rows"] else "(no case was timed)"]
    if speed.get("failed"):
        lines += ["", "Failed: " + "; ".join(f"`{f['case']}` ({f['error']})" for f in speed["failed"]) + "."]
    if speed.get("cli_s9_seconds"):
        graphs = " with CUDA graphs" if speed.get("cli_cuda_graph") else ""
        batch = next((f" (batch {r['batch_size']})" for r in speed["rows"] if r["session"] == "s9"), "")
        lines += ["", f"`python -m helpers.run s9 --recipe tuned --loader device`{batch}{graphs}, "
                      f"{speed.get('cli_epochs', 20)} epochs, alone: "
                      f"{speed['cli_s9_seconds']:.1f} s from process start to figures written."]
    lines += ["", "Speed targets: " + "; ".join(speed_targets(speed)) + "."]
    return "\n".join(lines)


SPEED_TARGETS = {("s9", "device"): 1.5, ("s8", "device"): 0.7, ("s9", "albumentations"): 5.0}


def speed_targets(speed: dict) -> list[str]:
    """Each target of the GPU fast path, with the fastest case measured at the batch size the tuned recipe
    trains at now, and whether it meets it (a faster case at another batch size is named beside it); with
    no case at today's batch size, the fastest one says that it needs timing again."""
    out = []
    for (session, loader), limit in SPEED_TARGETS.items():
        rows = [r for r in speed["rows"] if r["session"] == session and r["loader"] == loader]
        if not rows:
            out.append(f"{session} {loader} epoch <= {limit} s: not measured")
            continue
        now = recipes.get_recipe(session, "tuned").batch_size
        fastest = min(rows, key=lambda r: r["epoch_s"])
        best = min((r for r in rows if r["batch_size"] == now), key=lambda r: r["epoch_s"], default=fastest)
        how = " with CUDA graphs" if best.get("cuda_graph") else ""
        verdict = _verdict(best["epoch_s"], limit, session, best["batch_size"])
        if fastest["epoch_s"] < best["epoch_s"]:
            verdict += f" ({fastest['epoch_s']:.2f} s at batch {fastest['batch_size']}, which the recipe does not use)"
        out.append(f"{session} {loader} epoch <= {limit} s: {best['epoch_s']:.2f} s{how}, {verdict}")
    if speed.get("cli_s9_seconds"):
        batch = next((r["batch_size"] for r in speed["rows"] if r["session"] == "s9"), None)
        verdict = _verdict(speed["cli_s9_seconds"], 60, "s9", batch)
        out.append(f"{speed.get('cli_epochs', 20)}-epoch S9 run <= 60 s: {speed['cli_s9_seconds']:.1f} s, {verdict}")
    return out


def _verdict(seconds: float, limit: float, session: str, batch: int | None) -> str:
    """Met or not; or, timed at another batch size than the session's tuned recipe has now, that it was."""
    now = recipes.get_recipe(session, "tuned").batch_size
    if batch != now:
        return f"measured at batch {batch}; the tuned recipe now trains at {now}: to time again"
    return "met" if seconds <= limit else "not met"


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


def gains(records: list[dict], kind: str, loader: str | None = None) -> str:
    """One line: tuned minus seed recipe, mean final test accuracy, for each run that has both."""
    parts = []
    for run in RUNS:
        means = {}
        for name in recipes.RECIPES:
            found = [r["history"][-1]["test_acc"] for r in runs_of(records, run, name, kind, loader)]
            if found:
                means[name] = (statistics.fmean(found), len(found))
        if len(means) == 2:
            (seed, n_seed), (tuned, n_tuned) = means["seed"], means["tuned"]
            parts.append(f"{run} {tuned - seed:+.2f} points ({n_tuned} vs {n_seed} seeds)")
    return "Tuned minus seed recipe, mean final test accuracy: " + ("; ".join(parts) or "no run has both") + "."


# The floors of the full-scale recipes issue: mean final test accuracy of the tuned recipe over seeds 1-3,
# full CIFAR-10, 20 epochs.
FLOORS = {"s8-bn": 84.0, "s8-ln": 81.0, "s8-gn": 81.0, "s9": 87.0}


def floors(records: list[dict], loader: str | None = None) -> str:
    """One line: each tuned recipe's mean final test accuracy on full CIFAR-10 (seeds 1-3) against its floor."""
    parts = []
    for run, floor in FLOORS.items():
        found = [r["history"][-1]["test_acc"] for r in runs_of(records, run, "tuned", "full", loader)
                 if r["config"]["seed"] in (1, 2, 3)]
        if not found:
            parts.append(f"{run} not run yet (floor {floor:g} %)")
            continue
        mean = statistics.fmean(found)
        verdict = (f"{len(found)} of 3 seeds so far" if len(found) < 3 else "met" if mean >= floor else "not met")
        parts.append(f"{run} {mean:.2f} % against {floor:g} %, {verdict}")
    return "Against the floors (tuned recipe, mean final test accuracy, seeds 1-3): " + "; ".join(parts) + "."


def _reading(recipe: dict) -> str:
    made = recipes.Recipe(**recipe)
    return f"lr {made.lr}, threshold {made.threshold_mode}"


def seed_evidence(records: list[dict]) -> str:
    """doc/tuning.md: which reading of the S9 seed document its published log supports, and how close our runs come."""
    seed = recipes.get_recipe("s9", "seed")
    train, test = select_recipes.S9_PUBLISHED_TRAIN_ACC, select_recipes.S9_PUBLISHED_TEST_ACC
    jump = max(range(5, len(train)), key=lambda i: train[i] - train[i - 1])  # index of the epoch after the jump
    lines = [f"**Where the lr drops.** In epochs 1-20 of the published log, train accuracy jumps most between "
             f"epochs {jump} and {jump + 1} ({train[jump - 1]:.2f} -> {train[jump]:.2f} %): the lr falling "
             f"ten-fold. Fed the log's own test losses, the document's scheduler (ReduceLROnPlateau, x0.1, "
             f"patience 4, threshold 0.1) runs at a lower lr from these epochs on, under each reading of "
             f"the threshold:", "",
             "| threshold reading | lr lower from epoch |", "|---|---|"]
    for mode in recipes.THRESHOLD_MODES:
        drops = select_recipes.plateau_drop_epochs(select_recipes.S9_PUBLISHED_TEST_LOSS,
                                                   dataclasses.replace(seed, threshold_mode=mode))
        kept = " (the seed recipe now)" if mode == seed.threshold_mode else ""
        lines.append(f"| {mode}{kept} | {', '.join(map(str, drops)) or 'never'} |")
    lines += ["", "**Our S9 seed-recipe runs against the published log** (full CIFAR-10, mean absolute "
                  "difference of test accuracy over epochs 1-20; `doc/seed_vs_log_s9.png`):", "",
              "| run | reading | current recipe | test gap | epoch 10 train / test | epoch 20 train / test |",
              "|---|---|---|---|---|---|",
              f"| published log | | | | {train[9]:.2f} / {test[9]:.2f} | "
              f"{train[19]:.2f} / {test[19]:.2f} |"]
    for r in _seed_runs(records, "s9"):
        h = r["history"]
        gap = statistics.fmean(abs(e["test_acc"] - p) for e, p in zip(h[:20], test))
        lines.append(f"| seed {r['config']['seed']} | {_reading(r['config']['recipe'])} | "
                     f"{'yes' if current(r) else 'no'} | {gap:.2f} | "
                     f"{h[9]['train_acc']:.2f} / {h[9]['test_acc']:.2f} | "
                     f"{h[19]['train_acc']:.2f} / {h[19]['test_acc']:.2f} |")
    return "\n".join(lines + ["", s8_seed_evidence(records)])


S8_SEED_CLAIM = 70.0  # the S8 seed document: every norm passes 70 % test accuracy within 20 epochs


def s8_seed_evidence(records: list[dict]) -> str:
    """doc/tuning.md: whether our S8 seed-recipe runs bear out the document's one claim (it publishes
    no log): the first epoch at which each run's test accuracy reaches 70 %, or "never"."""
    runs = [r for r in _seed_runs(records, "s8") if current(r)]
    lines = [f"**The S8 seed document** publishes no log; it says each norm passes {S8_SEED_CLAIM:g} % within 20 "
             f"epochs. Our S8 seed-recipe runs (full CIFAR-10, the recipe as it is now):", "",
             f"| norm | seed | first epoch at >= {S8_SEED_CLAIM:g} % | final test accuracy | hardware |",
             "|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (RUNS.index(run_key(r["config"])), r["config"]["seed"])):
        first = next((e["epoch"] for e in r["history"][:20] if e["test_acc"] >= S8_SEED_CLAIM), None)
        lines.append(f"| {r['config']['norm']} | {r['config']['seed']} | {first or 'never'} | "
                     f"{r['history'][19]['test_acc']:.2f} % | {short_hardware(r['hardware'])} |")
    return "\n".join(lines if runs else lines[:1] + ["", "No run yet."])


def _seed_runs(records: list[dict], session: str) -> list[dict]:
    """The seed-recipe runs of ``session`` on full CIFAR-10 with at least 20 epochs (any recipe version)."""
    return [r for r in records if r["config"]["session"] == session and r["config"]["recipe"]["name"] == "seed"
            and data_kind(r["config"]) == "full" and len(r["history"]) >= 20]


def seed_figure(records: list[dict], path: Path) -> Path:
    """Train and test accuracy per epoch: the published S9 log and every full-data S9 seed-recipe run."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    epochs = range(1, 21)
    for ax, key, published in zip(axes, ("train_acc", "test_acc"),
                                  (select_recipes.S9_PUBLISHED_TRAIN_ACC, select_recipes.S9_PUBLISHED_TEST_ACC)):
        ax.plot(epochs, published, "k-o", ms=3, label="seed document's log")
        for r in _seed_runs(records, "s9"):
            ax.plot(epochs, [h[key] for h in r["history"][:20]], "--" if not current(r) else "-",
                    label=f"ours: {_reading(r['config']['recipe'])}, seed {r['config']['seed']}"
                          f"{'' if current(r) else ' (earlier recipe)'}")
        ax.set(title=key.replace("_acc", " accuracy"), xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle("S9 seed recipe vs the seed document (full CIFAR-10, JPEG copy)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def recipe_figures(records: list[dict], dest: Path = DOC, loader: str = "device") -> list[Path]:
    """doc/recipes_<run>.png: test accuracy per epoch, seed vs tuned recipe (the runs the full CIFAR-10
    table counts), the mean over seeds with the range between the lowest and highest seed shaded."""
    paths = []
    for run in RUNS:
        fig, ax = plt.subplots(figsize=(6, 4))
        drawn = False  # any runs of this run's recipes
        for name, colour in zip(recipes.RECIPES, ("tab:blue", "tab:orange")):
            found = runs_of(records, run, name, "full", loader)
            if not found:
                continue
            drawn = True
            n = min(len(r["history"]) for r in found)
            curves = [[h["test_acc"] for h in r["history"][:n]] for r in found]
            epochs = range(1, n + 1)
            mean = [statistics.fmean(c) for c in zip(*curves)]
            ax.plot(epochs, mean, color=colour, label=f"{name} recipe ({len(found)} seed{'s' * (len(found) > 1)})")
            ax.fill_between(epochs, [min(c) for c in zip(*curves)], [max(c) for c in zip(*curves)],
                            color=colour, alpha=0.2)
        if run == "s9":
            ax.plot(range(1, 21), select_recipes.S9_PUBLISHED_TEST_ACC, "k:", label="seed document's published log")
        title = f"{run}: test accuracy, full CIFAR-10 (JPEG copy)" if drawn else \
            f"{run}: test accuracy (no runs of its recipes as they stand yet)"
        ax.set(title=title, xlabel="epoch", ylabel="accuracy (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right")
        fig.tight_layout()
        paths.append(dest / f"recipes_{run}.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths


def _settings(overrides: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in overrides.items()) or "no change"


def _choice_lines(choice: dict) -> list[str]:
    """What one entry of select_recipes.choose_tuned says, and its candidates' table."""
    if choice.get("needs_sample") == "seed":
        status = "waits for CPU-sample runs of the seed recipe (the sample floor compares against them)"
    elif choice.get("needs_sample") is not None:
        status = (f"waits for CPU-sample runs of `{_settings(choice['needs_sample'])}` (the best on validation "
                  f"still to be checked against the sample floor)")
    elif choice.get("no_candidate_passes"):
        status = "keeps its recipe: no candidate passes the sample floor"
    elif choice.get("incomplete"):
        status = "waits: not every candidate has a validation run yet"
    elif not choice["overrides"]:  # the recipe itself came out on top (candidates equal to it tie with it)
        status = "kept its recipe: no candidate beat it on validation"
    else:
        status = f"chose `{_settings(choice['overrides'])}`"
    lines = [status + ".", "", "| candidate | final validation accuracy | tuned - seed on the CPU sample (points) |",
             "|---|---|---|"]
    for row in sorted(choice["scores"], key=lambda r: -r["val_acc"]):
        margin = f"{row['sample_margin']:+.2f}" if "sample_margin" in row else ""
        lines.append(f"| {_settings(row['overrides'])} | {row['val_acc']:.2f} % | {margin} |")
    return lines


def selection_summary(path: Path = RESULTS / "selection.json") -> str:
    """What benchmarks/select_recipes.py decided, per run: the last choice or what it waits for, and
    every candidate's final validation accuracy (and CPU-sample margin where the rule asks for one);
    the earlier rounds of a run come first, and under a choice what its new neighbours wait for."""
    if not path.is_file():
        return "no selection made yet"
    chosen = json.loads(path.read_text())["tuned"]
    lines = ["Candidates are changes to the tuned recipe as it was when the choice was made (`base` in the "
             "file); validation accuracy is the final epoch's, averaged over the seeds run.", ""]
    for key, choice in chosen.items():
        for number, round_ in enumerate(choice.get("earlier", []), 1):  # the rounds before, oldest first
            status, *table = _choice_lines(round_)
            lines += [f"**{key}**, round {number}: {status}", *table, ""]
        status, *table = _choice_lines(choice)
        now = f", round {len(choice['earlier']) + 1}" if choice.get("earlier") else ""
        lines += [f"**{key}**{now}: {status}", *table, ""]
        if choice.get("pending"):
            status, *table = _choice_lines(choice["pending"])
            lines += [f"Since then, around the chosen recipe, **{key}** {status}", *table, ""]
    return "\n".join(lines).rstrip()


def results_block(records: list[dict], kind: str, loader: str | None) -> str:
    """A README results section: where the runs come from, the table, the gains, the earlier recipes."""
    return "\n\n".join(filter(None, [provenance(records, kind, loader), results_table(records, kind, loader),
                                      gains(records, kind, loader), floors(records, loader) if kind == "full" else "",
                                      earlier_table(records, kind)]))


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- results:{name} -->\n).*?(<!-- /results:{name} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"README.md has no <!-- results:{name} --> ... <!-- /results:{name} --> markers")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def report(readme: Path = ROOT / "README.md", dest: Path = RESULTS, tuning: Path | None = DOC / "tuning.md",
           figures: Path | None = DOC) -> str:
    """Rewrite the README's generated blocks, doc/tuning.md's evidence and the figures from doc/results/;
    return the README's new text."""
    records = load(dest)
    if tuning is not None:
        text = replace_block(tuning.read_text(), "seed-evidence", seed_evidence(records))
        text = replace_block(text, "selection", selection_summary(dest / "selection.json"))
        tuning.write_text(replace_block(text, "tuning", tuning_table(records)))
    if figures is not None:
        recipe_figures(records, figures)
        seed_figure(records, figures / "seed_vs_log_s9.png")
    text = readme.read_text()
    text = replace_block(text, "recipes", recipe_table())
    text = replace_block(text, "full", results_block(records, "full", "device"))
    text = replace_block(text, "sample", results_block(records, "sample", None))
    text = replace_block(text, "tuning-summary", tuning_summary(records))
    text = replace_block(text, "speed", speed_table(dest / "gpu_speed.json"))
    readme.write_text(text)
    return text


def run_sample(data_root: str | None, runs: list[str], seeds: list[int], epochs: int = 20,
               out: Path = ROOT / "runs" / "sample", parallel: int = 2, smoke: bool = False,
               names: tuple[str, ...] = recipes.RECIPES, settings: tuple[str, ...] = ()) -> list[Path]:
    """Train the recipes ``names`` (seed and tuned) of ``runs`` for each seed, ``parallel`` processes at a
    time with one thread each (``python -m helpers.run``); ``settings`` ("key=value", as ``--set``) change
    the tuned recipe, to try a tuning candidate on the sample. Returns the run folders (with run.json)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_ALBUMENTATIONS_UPDATE": "1"}
    todo = []
    for run in runs:
        session, norm = select_recipes.session_and_norm(run)
        for seed in seeds:
            for name in names:
                changed = tuple(settings) if name == "tuned" else ()
                folder = Path(out) / f"{run}-{name}{''.join('-' + c for c in changed)}-seed{seed}"
                argv = [sys.executable, "-m", "helpers.run", session, "--recipe", name, "--seed", str(seed),
                        "--epochs", str(epochs), "--out", str(folder), "--no-progress", "--device", "cpu",
                        "--overwrite"]  # a comparison run again replaces its runs
                argv += ["--norm", norm] if norm else []
                argv += ["--set", *changed] if changed else []
                argv += ["--smoke"] if smoke else ["--data-root", str(data_root)]
                todo.append((folder, argv))
    for start in range(0, len(todo), parallel):
        procs = []
        for folder, argv in todo[start:start + parallel]:
            folder.mkdir(parents=True, exist_ok=True)
            procs.append((folder, subprocess.Popen(argv, cwd=ROOT, env=env, stdout=open(folder / "log.txt", "w"),
                                                   stderr=subprocess.STDOUT)))
        for folder, proc in procs:
            if proc.wait() != 0:
                raise RuntimeError(f"the run in {folder} failed; see {folder / 'log.txt'}")
            print(f"done: {folder}", flush=True)
    return [folder for folder, _ in todo]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample", help="train seed vs tuned on a CPU sample, then collect the runs")
    s.add_argument("--data-root", required=True, help="e.g. ../shared/cifar10-sample")
    s.add_argument("--runs", nargs="+", choices=RUNS, default=["s8-bn"], help="default: s8-bn")
    s.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    s.add_argument("--epochs", type=int, default=20)
    s.add_argument("--parallel", type=int, default=2, help="runs at a time, one thread each (default 2)")
    s.add_argument("--recipes", nargs="+", choices=recipes.RECIPES, default=list(recipes.RECIPES),
                   help="default: seed and tuned")
    s.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="change the tuned recipe (a tuning candidate, e.g. augment=crop-flip)")
    c = sub.add_parser("collect", help="copy run.json files to doc/results/")
    c.add_argument("folders", nargs="+")
    sub.add_parser("report", help="rewrite the README's result tables from doc/results/")
    args = p.parse_args(argv)
    if args.command == "sample":
        run_sample(args.data_root, args.runs, args.seeds, args.epochs, parallel=args.parallel,
                   names=tuple(args.recipes), settings=tuple(args.set))
        for path in collect([ROOT / "runs" / "sample"]):
            print(f"wrote {path.relative_to(ROOT)}")
    elif args.command == "collect":
        for path in collect([Path(f) for f in args.folders]):
            print(f"wrote {path.relative_to(ROOT)}")
    else:
        report()
        print("README.md result tables rewritten from doc/results/")


if __name__ == "__main__":
    main()

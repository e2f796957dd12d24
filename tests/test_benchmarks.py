"""The benchmark scripts' own logic (their training runs take minutes to hours and are not tests)."""
import json
import shlex
import shutil
import signal
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch

from benchmarks import full_cifar, gpu_speed, select_recipes, tune
from benchmarks import recipes as recipes_benchmark
from helpers import recipes

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _plan_folder(tmp_path, monkeypatch):
    """No test plans into, or moves runs out of, the checkout's own runs/gpu."""
    monkeypatch.setattr(full_cifar, "RUNS", tmp_path / "runs-gpu")


def _record(session, norm, recipe, seed, accs, kind="CIFAR-10: 50000 train / 10000 test images", loader="device",
            epochs=recipes_benchmark.EPOCHS, overrides=None):
    """A run's record; its history holds only the epochs a test looks at (``accs``), its length is ``epochs``;
    ``overrides`` (a candidate's changes) are applied to the recipe."""
    r = recipes.recipe_with_settings(session, recipe, norm or "bn", overrides or {})
    history = [{"epoch": i + 1, "test_acc": a, "train_acc": a} for i, a in enumerate(accs)]
    return {"config": {"session": session, "norm": norm, "recipe": r.as_dict(), "seed": seed, "loader": loader,
                       "data": kind}, "history": history, "epochs": epochs, "final_test_acc": accs[-1],
            "hardware": "GPU X", "torch": "2.x", "date": "2026-11-27"}


def test_the_full_results_count_only_the_device_loaders_20_epoch_runs(tmp_path):
    device = [_record("s9", None, name, 1, [acc]) for name, acc in (("seed", 80.0), ("tuned", 86.0))]
    others = [_record("s9", None, "tuned", 2, [70.0], loader="albumentations"),  # the loader comparison's runs
              _record("s9", None, "tuned", 3, [60.0], epochs=10)]                 # a shorter run
    block = recipes_benchmark.results_block(device + others, "full", "device")
    assert block.startswith("2 runs;") and "| s9 | 80.00 % (1 seed) | 86.00 % (1 seed) |" in block
    assert "s9 +6.00 points (1 vs 1 seeds)" in block
    runs = lambda loader: recipes_benchmark.runs_of(device + others, "s9", "tuned", "full", loader)  # noqa: E731
    assert [r["final_test_acc"] for r in runs("device")] == [86.0]
    assert [r["final_test_acc"] for r in runs("albumentations")] == [70.0]


def test_the_floors_line_judges_three_seeds_of_the_tuned_recipe_and_says_what_is_missing():
    records = [_record("s8", "bn", "tuned", seed, [84.5]) for seed in (1, 2, 3)]            # mean 84.5: met
    records += [_record("s8", "ln", "tuned", seed, [acc]) for seed, acc in ((1, 82.0), (2, 79.0), (3, 80.0))]
    records += [_record("s8", "gn", "tuned", 1, [90.0]), _record("s8", "gn", "seed", 2, [95.0])]  # one seed only
    records += [_record("s9", None, "tuned", 4, [99.0])]                                         # not a final seed
    line = recipes_benchmark.floors(records, "device")
    assert "s8-bn 84.50 % against 84 %, met" in line and "s8-ln 80.33 % against 81 %, not met" in line
    assert "s8-gn 90.00 % against 81 %, 1 of 3 seeds so far" in line and "s9 not run yet (floor 87 %)" in line
    assert "Against the floors" in recipes_benchmark.results_block(records, "full", "device")
    assert "Against the floors" not in recipes_benchmark.results_block(records, "sample", None)


def test_results_table_leads_with_final_accuracy_over_seeds_and_skips_other_recipes():
    records = [_record("s9", None, "tuned", 1, [80.0, 86.0, 85.0]), _record("s9", None, "tuned", 2, [84.0, 87.0]),
               _record("s9", None, "seed", 1, [70.0, 81.0])]
    stale = _record("s9", None, "tuned", 3, [10.0, 99.0])
    stale["config"]["recipe"]["lr"] = 123.0  # made with another recipe: not counted
    table = recipes_benchmark.results_table(records + [stale], "full").splitlines()
    assert table[-1] == "| s9 | 81.00 % (1 seed) | 86.00 % ± 1.41 (2 seeds) | 2, 2 |"
    assert table[2].startswith("| s8-bn | not run | not run |")
    cpu = _record("s8", "ln", "tuned", 1, [60.0, 79.0])
    cpu["hardware"] = "CPU (x86_64, 1 thread)"
    mixed = recipes_benchmark.results_table(records + [cpu], "full").splitlines()
    assert mixed[3] == "| s8-ln | not run | 79.00 % (1 seed; CPU) |  |"  # runs from two kinds of machine: each says
    assert mixed[-1] == "| s9 | 81.00 % (1 seed; GPU X) | 86.00 % ± 1.41 (2 seeds; GPU X) | 2, 2 |"


def test_tuning_table_names_each_runs_settings_and_hardware():
    gpu = _record("s9", None, "tuned", 1, [80.0, 86.5], kind="CIFAR-10: 45000 train / 5000 validation (last 10 % of train) images")
    cpu = _record("s8", "ln", "tuned", 1, [60.0, 79.5], kind=gpu["config"]["data"])
    cpu["config"]["recipe"]["lr"], cpu["hardware"] = 0.02, "CPU (x86_64, 1 thread)"
    table = recipes_benchmark.tuning_table([gpu, cpu]).splitlines()
    assert table[2:] == ["| s9 | as the tuned recipe | 86.50 % | GPU X |", "| s8-ln | lr=0.02 | 79.50 % | CPU |"]


def test_tuning_summary_gives_each_runs_recipe_and_best_other_settings():
    kind = "CIFAR-10: 45000 train / 5000 validation (last 10 % of train) images"
    own = [_record("s8", "ln", "tuned", k, [60.0, acc], kind=kind) for k, acc in ((1, 80.0), (2, 81.0))]
    others = [_record("s8", "ln", "tuned", 1, [60.0, acc], kind=kind) for acc in (79.5, 80.8)]
    others[0]["config"]["recipe"]["lr"] = 0.02
    others[1]["config"]["recipe"]["lr"], others[1]["hardware"] = 0.5, "CPU (x86_64, 1 thread)"
    reading = _record("s9", None, "seed", 1, [70.0, 71.0], kind=kind)  # not a tuned-recipe run: left out
    full = _record("s8", "ln", "tuned", 3, [60.0, 90.0])  # a test-set run: left out
    table = recipes_benchmark.tuning_summary([*own, *others, reading, full]).splitlines()
    # the last column: sqrt(0.805 * 0.195 / 5000) = 0.0056, and sqrt(0.795 * 0.205 / 5000) = 0.0057
    assert table[2:] == ["| s8-ln | 4 | 80.50 % (2 seeds, GPU X) | lr=0.5: 80.80 % (CPU) | 0.56 points |"]
    alone = recipes_benchmark.tuning_summary([others[0]]).splitlines()[2:]
    assert alone == ["| s8-ln | 1 | no validation run yet | lr=0.02: 79.50 % (GPU X) | 0.57 points |"]


def test_sampling_error_is_the_binomial_standard_error_of_the_images_scored():
    assert recipes_benchmark.sampling_error(50.0, 10_000) == pytest.approx(0.5)  # sqrt(0.25 / 10000) = 0.005
    assert recipes_benchmark.sampling_error(100.0, 5_000) == 0.0
    assert recipes_benchmark.evaluation_images({"data": "CIFAR-10: 45000 train / 5000 validation (last 10 % of "
                                                        "train) images"}) == 5000
    assert recipes_benchmark.evaluation_images({"data": "CIFAR-10: 50000 train / 10000 test images"}) == 10000
    with pytest.raises(ValueError, match="no image count"):
        recipes_benchmark.evaluation_images({"data": "synthetic"})


def test_provenance_names_each_machine_once():
    old, new = (_record("s8", "bn", "tuned", k, [80.0]) for k in (1, 2))
    old["hardware"], new["hardware"] = "CPU (x86_64, 1 threads)", "CPU (x86_64, 1 thread)"  # before / after a fix
    line = recipes_benchmark.provenance([old, new], "full")
    assert line.startswith("2 runs; hardware: CPU (x86_64, 1 thread); torch 2.x;")


def test_s8_seed_evidence_gives_the_first_epoch_at_70_percent_or_never():
    passes = _record("s8", "ln", "seed", 2, [60.0] * 5 + [70.0] + [71.0] * 14)
    never = _record("s8", "bn", "seed", 1, [69.9] * 20)
    short = _record("s8", "gn", "seed", 1, [75.0] * 3)  # fewer than 20 epochs: not evidence
    rows = recipes_benchmark.s8_seed_evidence([passes, never, short]).splitlines()[-2:]
    assert rows == ["| bn | 1 | never | 69.90 % | GPU X |", "| ln | 2 | 6 | 71.00 % | GPU X |"]
    assert recipes_benchmark.s8_seed_evidence([]).endswith("No run yet.")


def test_collect_never_replaces_a_record_of_another_recipe(tmp_path):
    """Two readings of the S9 seed document, seed 1, once collected under one name, so the second
    silently replaced the first (and a committed run of an earlier recipe)."""
    for folder, lr in (("s9-lr0.01-s1", 0.01), ("s9-lr0.1-s1", 0.1)):
        record = _record("s9", None, "seed", 1, [70.0] * 20)
        record["config"]["recipe"]["lr"] = lr
        (tmp_path / "runs" / "read" / folder).mkdir(parents=True)
        (tmp_path / "runs" / "read" / folder / "run.json").write_text(json.dumps(record))
    dest = tmp_path / "results"
    names = sorted(p.name for p in recipes_benchmark.collect([tmp_path / "runs"], dest))
    assert names == ["full-s9-seed-device-s9-lr0.01-s1-seed1-e20.json",
                     "full-s9-seed-device-s9-lr0.1-s1-seed1-e20.json"]
    earlier = _record("s9", None, "seed", 2, [60.0] * 20)
    earlier["config"]["recipe"]["threshold_mode"] = "abs"
    (dest / "full-s9-seed-device-seed2-e20.json").write_text(json.dumps(earlier))
    (tmp_path / "final" / "s9-seed-s2").mkdir(parents=True)
    (tmp_path / "final" / "s9-seed-s2" / "run.json").write_text(json.dumps(_record("s9", None, "seed", 2, [80.0] * 20)))
    new = recipes_benchmark.collect([tmp_path / "final"], dest)
    assert len(new) == 1 and new[0].name.startswith("full-s9-seed-device-seed2-e20-")
    assert json.loads((dest / "full-s9-seed-device-seed2-e20.json").read_text()) == earlier  # kept
    choice = {"overrides": {"lr": 0.4}, "val_acc": 86.0, "scores": []}
    (dest / "selection.json").write_text(json.dumps({"tuned": {"s9": choice}, "s9_seed": None, "s8_seed": None}))
    waits = {"overrides": {}, "incomplete": True, "scores": []}
    (tmp_path / "final" / "selection.json").write_text(json.dumps({"tuned": {"s9": waits}, "s9_seed": None,
                                                                    "s8_seed": None}))
    recipes_benchmark.collect([tmp_path / "final"], dest)
    assert json.loads((dest / "selection.json").read_text())["tuned"]["s9"] == {**choice, "pending": waits}


def test_runs_of_an_earlier_recipe_are_listed_apart_with_what_changed():
    now = _record("s9", None, "tuned", 1, [86.0])
    old = [_record("s9", None, "tuned", k, [a]) for k, a in ((1, 84.0), (2, 85.0))]
    for r in old:
        r["config"]["recipe"]["lr"] = recipes.get_recipe("s9", "tuned").lr * 3
    assert "86.00 % (1 seed)" in recipes_benchmark.results_table([now] + old, "full")
    earlier = recipes_benchmark.earlier_table([now] + old, "full").splitlines()
    lr = recipes.get_recipe("s9", "tuned").lr * 3
    assert len(earlier) == 5 and earlier[-1].startswith(f"| s9 | tuned | device | GPU X | lr={lr} |")
    assert "84.50 % ± 0.71 (2 seeds) | 1, 2 |" in earlier[-1]
    old[1]["hardware"] = "CPU (x86_64, 1 thread)"  # the same recipe on two kinds of machine: a row each
    earlier = recipes_benchmark.earlier_table([now] + old, "full").splitlines()
    assert len(earlier) == 6 and "| s9 | tuned | device | CPU | " in earlier[-2] and "85.00 % (1 seed) | 2 |" in earlier[-2]
    assert recipes_benchmark.earlier_table([now], "full") == ""


def test_speed_targets_hold_only_for_the_batch_the_tuned_recipe_trains_at():
    s9, s8 = recipes.get_recipe("s9", "tuned").batch_size, recipes.get_recipe("s8", "tuned").batch_size
    row = {"loader": "device", "cuda_graph": False}
    speed = {"rows": [{**row, "session": "s9", "batch_size": s9, "epoch_s": 1.2},
                      {**row, "session": "s8", "batch_size": s8 * 2, "epoch_s": 0.5},
                      {**row, "session": "s8", "batch_size": s8, "epoch_s": 0.9}],
             "cli_s9_seconds": 61.0, "cli_epochs": 20}
    lines = recipes_benchmark.speed_targets(speed)
    assert lines[0] == "s9 device epoch <= 1.5 s: 1.20 s, met"
    assert lines[1] == (f"s8 device epoch <= 0.7 s: 0.90 s, not met (0.50 s at batch {s8 * 2}, which the recipe "
                        f"does not use)")  # judged at today's batch size; the faster case only named
    speed["rows"] = speed["rows"][:2]  # no case at today's batch size: the fastest, to be timed again
    assert recipes_benchmark.speed_targets(speed)[1] == (
        f"s8 device epoch <= 0.7 s: 0.50 s, measured at batch {s8 * 2}; the tuned recipe now trains at {s8}: "
        f"to time again")
    assert lines[2] == "s9 albumentations epoch <= 5.0 s: not measured"
    assert lines[3] == "20-epoch S9 run <= 60 s: 61.0 s, not met"


def test_report_rewrites_only_the_marked_blocks(tmp_path):
    dest = tmp_path / "results"
    run_dir = tmp_path / "runs" / "a"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps(_record("s8", "bn", "tuned", 1, [60.0, 70.5])))
    (run_dir.parent / "b").mkdir()
    (run_dir.parent / "b" / "run.json").write_text(json.dumps(_record("s8", "bn", "seed", 1, [50.0, 60.0])))
    (run_dir.parent / "c").mkdir()
    s9_seed = _record("s9", None, "seed", 2, [a - 1.0 for a in select_recipes.S9_PUBLISHED_TEST_ACC])
    (run_dir.parent / "c" / "run.json").write_text(json.dumps(s9_seed))
    assert sorted(p.name for p in recipes_benchmark.collect([tmp_path / "runs"], dest)) == \
        ["full-s8-bn-seed-device-seed1-e20.json", "full-s8-bn-tuned-device-seed1-e20.json",
         "full-s9-seed-device-seed2-e20.json"]
    readme, tuning, figures = tmp_path / "README.md", tmp_path / "tuning.md", tmp_path / "figures"
    blocks = "".join(f"<!-- results:{b} -->\nold\n<!-- /results:{b} -->\n"
                     for b in ("recipes", "full", "sample", "tuning-summary", "speed"))
    readme.write_text("intro\n" + blocks + "outro\n")
    tuning.write_text("".join(f"<!-- results:{b} -->\nold\n<!-- /results:{b} -->\n"
                              for b in ("selection", "seed-evidence", "tuning")))
    (dest / "selection.json").write_text(json.dumps({"tuned": {
        "s8-bn": {"overrides": {}, "incomplete": True, "needs_sample": {"augment": "crop-flip"},
                  "scores": [{"overrides": {}, "val_acc": 80.0},
                             {"overrides": {"augment": "crop-flip"}, "val_acc": 81.0},
                             {"overrides": {"lr": 0.4}, "val_acc": 82.0, "sample_margin": -3.5}]},
        "s9": {"overrides": {"lr": 0.4}, "val_acc": 86.0, "scores": [{"overrides": {"lr": 0.4}, "val_acc": 86.0}],
               "pending": {"overrides": {}, "incomplete": True, "scores": []}}}}))
    figures.mkdir()
    text = recipes_benchmark.report(readme, dest, tuning, figures)
    assert text.startswith("intro\n") and text.endswith("outro\n") and "\nold\n" not in text
    assert "| s8-bn | 60.00 % (1 seed) | 70.50 % (1 seed) |" in text and "| momentum |" in text
    assert "s8-bn +10.50 points (1 vs 1 seeds)" in text
    evidence = tuning.read_text()
    assert "**s8-bn**: waits for CPU-sample runs of `augment=crop-flip`" in evidence
    assert "| lr=0.4 | 82.00 % | -3.50 |\n| augment=crop-flip | 81.00 % |  |" in evidence
    assert "**s9**: chose `lr=0.4`." in evidence
    assert "Since then, around the chosen recipe, **s9** waits: not every candidate has a validation run" in evidence
    assert "between epochs 15 and 16" in evidence and "| rel (the seed recipe now) | 16 |" in evidence
    assert "| abs | 12, 19 |" in evidence  # the published log's own losses
    assert f"| seed 2 | lr {recipes.get_recipe('s9', 'seed').lr}, threshold rel | yes | 1.00 |" in evidence
    assert {p.name for p in figures.iterdir()} == {"recipes_s8-bn.png", "recipes_s8-ln.png", "recipes_s8-gn.png",
                                                   "recipes_s9.png", "seed_vs_log_s9.png"}
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="markers"):
        recipes_benchmark.report(readme, dest, None, None)


def test_selection_rules(tmp_path, monkeypatch):
    lr = recipes.get_recipe("s9", "tuned").lr  # candidates are changes to the tuned recipe as it is now
    monkeypatch.setattr(select_recipes, "CANDIDATES", {"s9": [{}, {"lr": lr * 2}, {"lr": lr / 2}]})
    val = select_recipes.VALIDATION_DATA
    runs = [_record("s9", None, "tuned", 1, [acc] * 20, kind=val, overrides=overrides)
            for overrides, acc in (({}, 80.0), ({"lr": lr * 2}, 82.0), ({"lr": lr / 2}, 79.0))]
    assert select_recipes.choose_tuned(runs[:2])["s9"] == {  # one candidate missing: no choice yet
        "overrides": {}, "incomplete": True, "scores": [{"overrides": {}, "val_acc": 80.0},
                                                        {"overrides": {"lr": lr * 2}, "val_acc": 82.0}],
        "base": recipes.get_recipe("s9", "tuned").as_dict()}
    assert select_recipes.choose_tuned(runs)["s9"]["overrides"] == {"lr": lr * 2}  # the best final validation score
    monkeypatch.setattr(select_recipes, "S9_READINGS", [])
    monkeypatch.setattr(select_recipes, "S8_READINGS", [])
    assert select_recipes.choose_s9_seed(runs) is None and select_recipes.choose_s8_seed(runs) is None  # none listed
    monkeypatch.setattr(select_recipes, "S9_READINGS", [{"lr": 0.01}, {"lr": 0.1}])
    for reading, shift in (({"lr": 0.01}, 0.5), ({"lr": 0.1}, -6.0)):
        runs.append(_record("s9", None, "seed", 1, [a + shift for a in select_recipes.S9_PUBLISHED_TEST_ACC],
                            overrides=reading))
    assert select_recipes.choose_s9_seed(runs[:4])["incomplete"]  # one reading only: no choice yet
    chosen = select_recipes.choose_s9_seed(runs)
    assert chosen["reading"] == {"lr": 0.01} and chosen["test_gap"] == pytest.approx(0.5)
    path = tmp_path / "recipes.py"
    path.write_text(open(recipes.__file__).read())
    text = select_recipes.rewrite_recipes(path, {"s9": {"overrides": {"lr": 0.4}}}, None, chosen)
    assert '"s9": dict(lr=0.4,' in text and "# END TUNED" in text


def test_the_committed_choices_and_generated_blocks_are_what_the_committed_histories_give(tmp_path, capsys):
    """recipes.py's chosen values, doc/results/selection.json and the generated blocks of README.md and
    doc/tuning.md regenerate byte-identical from doc/results/ (a hand edit or a forgotten `report` fails)."""
    results = ROOT / "doc" / "results"
    committed = {"recipes.py": ROOT / "helpers" / "recipes.py", "selection.json": results / "selection.json",
                 "README.md": ROOT / "README.md", "tuning.md": ROOT / "doc" / "tuning.md"}
    for name, path in committed.items():
        shutil.copy(path, tmp_path / name)
    select_recipes.main([str(results), "--recipes-file", str(tmp_path / "recipes.py"),
                         "--evidence", str(tmp_path / "selection.json")])
    recipes_benchmark.report(tmp_path / "README.md", results, tmp_path / "tuning.md", figures=None)
    capsys.readouterr()
    for name, path in committed.items():
        assert (tmp_path / name).read_text() == path.read_text(), f"{path} is not what doc/results/ gives"


def test_the_rule_scores_the_final_epoch_averaged_over_seeds_of_full_length_runs_only(monkeypatch):
    lr = recipes.get_recipe("s9", "tuned").lr
    monkeypatch.setattr(select_recipes, "CANDIDATES", {"s9": [{}, {"lr": lr * 2}, {"lr": lr / 2}]})
    val = select_recipes.VALIDATION_DATA

    def run(overrides, seed, accs, epochs=20):
        return _record("s9", None, "tuned", seed, accs, kind=val, epochs=epochs, overrides=overrides)
    runs = [run({}, 1, [80.0]),
            run({}, 2, [90.0], epochs=10),              # a shorter run: not part of the field
            run({"lr": lr * 2}, 1, [95.0, 81.0]),        # the best epoch, but not the final one
            run({"lr": lr / 2}, 1, [80.5]), run({"lr": lr / 2}, 2, [84.0])]  # two seeds: their mean counts
    chosen = select_recipes.choose_tuned(runs)["s9"]
    assert chosen["overrides"] == {"lr": lr / 2} and not chosen.get("incomplete")
    assert {s["val_acc"] for s in chosen["scores"]} == {80.0, 81.0, 82.25}


def test_s8_bn_is_tuned_only_to_a_recipe_that_also_wins_on_the_cpu_sample(monkeypatch):
    lr = recipes.get_recipe("s8", "tuned", "bn").lr
    monkeypatch.setattr(select_recipes, "CANDIDATES", {"s8-bn": [{}, {"lr": lr * 2}]})
    val, sample = full_cifar.VALIDATION, "CIFAR-10: 4068 train / 1017 test images"

    def run(recipe_name, overrides, kind, acc):
        return _record("s8", "bn", recipe_name, 1, [acc] * 20, kind=kind, loader="albumentations", overrides=overrides)
    runs = [run("tuned", {}, val, 80.0), run("tuned", {"lr": lr * 2}, val, 82.0),
            run("seed", {}, sample, 50.0), run("tuned", {}, sample, 60.0)]
    waiting = select_recipes.choose_tuned(runs)["s8-bn"]  # the best on validation has no sample run yet
    assert waiting["incomplete"] and waiting["needs_sample"] == {"lr": lr * 2} and waiting["overrides"] == {}
    fails = select_recipes.choose_tuned(runs + [run("tuned", {"lr": lr * 2}, sample, 52.0)])["s8-bn"]
    assert fails["overrides"] == {} and fails["sample_margin"] == 10.0  # +2 points on the sample: not enough
    wins = select_recipes.choose_tuned(runs + [run("tuned", {"lr": lr * 2}, sample, 57.0)])["s8-bn"]
    assert wins["overrides"] == {"lr": lr * 2} and wins["sample_margin"] == 7.0
    assert wins["base"] == recipes.get_recipe("s8", "tuned", "bn").as_dict()
    no_seed = select_recipes.choose_tuned(runs[:2] + runs[3:])["s8-bn"]  # the seed recipe never ran on the sample
    assert no_seed["incomplete"] and no_seed["needs_sample"] == "seed"
    both_fail = runs[:3] + [run("tuned", {}, sample, 51.0), run("tuned", {"lr": lr * 2}, sample, 52.0)]
    none = select_recipes.choose_tuned(both_fail)["s8-bn"]
    assert none["incomplete"] and none["no_candidate_passes"] and "needs_sample" not in none


def test_only_validation_runs_on_full_cifar_count_in_the_tuning(monkeypatch):
    """A smoke run's data line also says "validation" ("synthetic: 461 train / 51 validation ..."), and so
    does a run on the CPU sample's split: neither may enter the tuning tables or the choice."""
    lr = recipes.get_recipe("s8", "tuned", "ln").lr
    monkeypatch.setattr(select_recipes, "CANDIDATES", {"s8-ln": [{}, {"lr": lr * 3}]})

    def run(overrides, kind, acc):
        return _record("s8", "ln", "tuned", 1, [acc] * 20, kind=kind, overrides=overrides)
    smoke = "synthetic: 461 train / 51 validation (last 10 % of train) images"
    sample = "CIFAR-10: 3661 train / 407 validation (last 10 % of train) images"
    assert recipes_benchmark.data_kind({"data": smoke}) == "synthetic"
    assert recipes_benchmark.data_kind({"data": full_cifar.VALIDATION}) == "validation"
    real = [run({}, full_cifar.VALIDATION, 80.0), run({"lr": lr * 3}, full_cifar.VALIDATION, 79.0)]
    others = [run({"lr": lr * 3}, smoke, 99.0), run({"lr": lr * 3}, sample, 98.0)]
    chosen = select_recipes.choose_tuned(real + others)["s8-ln"]
    assert chosen["overrides"] == {} and [s["val_acc"] for s in chosen["scores"]] == [80.0, 79.0]
    assert select_recipes.choose_tuned(real[:1] + others)["s8-ln"]["incomplete"]  # lr x3 never ran on full data
    assert "20.00 %" not in recipes_benchmark.tuning_table(real + [run({}, smoke, 20.0)])


def test_a_later_selection_that_only_waits_keeps_the_earlier_choice():
    choice = {"overrides": {"lr": 0.4}, "val_acc": 86.0, "scores": [], "base": {"lr": 0.2}}
    waits = {"overrides": {}, "incomplete": True, "scores": [{"overrides": {}, "val_acc": 86.0}], "base": {"lr": 0.4}}
    old = {"tuned": {"s9": choice, "s8-ln": waits}, "s9_seed": {"reading": {"lr": 0.01}}, "s8_seed": None}
    new = {"tuned": {"s9": waits, "s8-ln": choice}, "s9_seed": None, "s8_seed": None}
    merged = select_recipes.merge_evidence(old, new)
    assert merged["tuned"]["s9"] == {**choice, "pending": waits}  # the decision stays, what waits is added
    assert merged["tuned"]["s8-ln"] == choice and merged["s9_seed"] == {"reading": {"lr": 0.01}}
    again = select_recipes.merge_evidence(merged, new)
    assert again["tuned"]["s9"] == {**choice, "pending": waits}  # merging twice changes nothing
    assert select_recipes.merge_evidence(None, new) == new


def test_a_base_recorded_before_a_recipe_field_existed_is_the_same_base():
    old_base = {"lr": 0.2, "tta": True}  # recorded before tta_shift existed
    first = {"overrides": {}, "val_acc": 86.0, "base": old_base, "scores": [{"overrides": {}, "val_acc": 86.0}]}
    again = {**first, "base": {**old_base, "tta_shift": 0}}
    assert select_recipes.merge_evidence({"tuned": {"s9": first}}, {"tuned": {"s9": again}})["tuned"]["s9"] == again
    moved = {**first, "base": {**old_base, "tta_shift": 1}}  # a real change of base starts a new round
    assert select_recipes.merge_evidence({"tuned": {"s9": first}}, {"tuned": {"s9": moved}})["tuned"]["s9"] == \
        {**moved, "earlier": [first]}


def test_a_choice_from_a_new_base_keeps_the_earlier_rounds_on_record(tmp_path):
    first = {"overrides": {"lr": 0.4}, "val_acc": 86.0, "base": {"lr": 0.2},
             "scores": [{"overrides": {}, "val_acc": 85.0}, {"overrides": {"lr": 0.4}, "val_acc": 86.0}]}
    waits = {"overrides": {}, "incomplete": True, "scores": [{"overrides": {}, "val_acc": 86.0}], "base": {"lr": 0.4}}
    second = {"overrides": {"wd": 0.001}, "val_acc": 87.0, "base": {"lr": 0.4},
              "scores": [{"overrides": {}, "val_acc": 86.0}, {"overrides": {"wd": 0.001}, "val_acc": 87.0}]}
    state = select_recipes.merge_evidence({"tuned": {"s9": first}}, {"tuned": {"s9": waits}})
    state = select_recipes.merge_evidence(state, {"tuned": {"s9": second}})
    assert state["tuned"]["s9"] == {**second, "earlier": [first]}  # round 1 moved aside, without its "pending"
    assert select_recipes.merge_evidence(state, {"tuned": {"s9": second}}) == state  # the same choice again
    later = select_recipes.merge_evidence(state, {"tuned": {"s9": {**waits, "base": {"lr": 0.4, "wd": 0.001}}}})
    assert later["tuned"]["s9"]["earlier"] == [first] and later["tuned"]["s9"]["pending"]["incomplete"]
    path = tmp_path / "selection.json"
    path.write_text(json.dumps(state))
    text = recipes_benchmark.selection_summary(path)
    assert text.index("**s9**, round 1: chose `lr=0.4`") < text.index("**s9**, round 2: chose `wd=0.001`")
    # a round whose neighbours all lost says that the recipe stays, not "chose `no change`"
    kept = {"overrides": {}, "val_acc": 87.0, "base": {"lr": 0.4, "wd": 0.001},
            "scores": [{"overrides": {}, "val_acc": 87.0}, {"overrides": {"lr": 0.2}, "val_acc": 86.5}]}
    path.write_text(json.dumps(select_recipes.merge_evidence(state, {"tuned": {"s9": kept}})))
    text = recipes_benchmark.selection_summary(path)
    assert "**s9**, round 3: kept its recipe: no candidate beat it on validation." in text


def test_one_selection_records_what_a_changed_recipe_waits_for(tmp_path, monkeypatch):
    """A choice that changes a recipe makes its neighbours new candidates: the same run of the script
    records them as pending (it used to take a second run), and rewrites the recipe only once."""
    base = recipes.get_recipe("s8", "tuned", "ln")
    wd = base.weight_decay * 2
    monkeypatch.setattr(select_recipes, "CANDIDATES", {"s8-ln": [{}, {"lr": base.lr * 3}, {"weight_decay": wd}]})

    def run(overrides, acc):
        return _record("s8", "ln", "tuned", 1, [acc] * 20, kind=full_cifar.VALIDATION, overrides=overrides)
    folder = tmp_path / "runs"
    folder.mkdir()
    for k, (overrides, acc) in enumerate([({}, 80.0), ({"lr": base.lr * 3}, 81.0), ({"weight_decay": wd}, 79.0)]):
        (folder / f"r{k}.json").write_text(json.dumps(run(overrides, acc)))
    recipes_file, evidence = tmp_path / "recipes.py", tmp_path / "selection.json"
    recipes_file.write_text((ROOT / "helpers" / "recipes.py").read_text())
    argv = [str(folder), "--recipes-file", str(recipes_file), "--evidence", str(evidence)]
    result = select_recipes.main(argv)
    assert result["tuned"]["s8-ln"]["overrides"] == {"lr": base.lr * 3}
    later = result["passes"][1]["s8-ln"]  # around lr x3: the weight decay candidate has not run there yet
    assert later["incomplete"] and later["base"]["lr"] == base.lr * 3
    assert later["base"]["weight_decay"] == base.weight_decay
    saved = json.loads(evidence.read_text())["tuned"]["s8-ln"]
    assert saved["overrides"] == {"lr": base.lr * 3} and saved["pending"]["incomplete"]
    ln_line = recipes_file.read_text().split("# BEGIN TUNED")[1].split('"s8-ln"')[1].split("\n")[0]
    assert f"lr={base.lr * 3!r}" in ln_line
    assert recipes.get_recipe("s8", "tuned", "ln") == base  # the imported table is left as it was
    again = select_recipes.main(argv)  # the same runs again: the same evidence
    assert json.loads(evidence.read_text())["tuned"]["s8-ln"] == saved and again["passes"] == result["passes"]


def test_settings_parse_to_recipe_values():
    assert tune.parse_settings(["lr=0.02", "tta=false", "ema_decay=none", "augment=s9-light", "dropout=0"]) == \
        {"lr": 0.02, "tta": False, "ema_decay": None, "augment": "s9-light", "dropout": 0}
    with pytest.raises(ValueError, match="field=value"):
        tune.parse_settings(["lr"])


def test_a_tuning_run_goes_through_the_wiring_and_logs_one_line(cifar_root, tmp_path):
    log = tmp_path / "tuning.jsonl"
    result = tune.main(["s8", "--epochs", "2", "--set", "batch_size=32", "--data-root", str(cifar_root),
                        "--device", "cpu", "--log", str(log)])
    assert "922 train / 102 validation" in result["data"]  # the fixture's 1,024 training images, last 10 % held out
    assert result["val_acc"] > 40  # it learns; chance is 10 %
    assert json.loads(log.read_text()) == result


def test_gpu_speed_runs_on_the_cpu_with_smoke_data(tmp_path):
    rows = gpu_speed.main(["--smoke", "--epochs", "1", "--cases", "s8/device", "--device", "cpu",
                           "--json", str(tmp_path / "speed.json")])
    assert rows[0]["session"] == "s8" and rows[0]["train_s"] > 0 and rows[0]["train_images_per_s"] > 0
    assert "| s8 | device |" in gpu_speed.format_table(rows)
    assert json.loads((tmp_path / "speed.json").read_text())["rows"] == rows
    assert rows[0]["cuda_graph"] is False


def test_gpu_speed_times_the_model_as_fit_trains_it(monkeypatch):
    from helpers import recipes, train
    calls, made = [], {}
    for name in ("prepare_model", "make_ema"):
        real = getattr(train, name)

        def spy(*a, _real=real, _name=name, **k):
            calls.append(_name)
            made[_name] = _real(*a, **k)
            return made[_name]
        monkeypatch.setattr(train, name, spy)
    ema_recipe = recipes.Recipe(**{**recipes.get_recipe("s8", "tuned", norm="bn").as_dict(), "ema_decay": 0.99})
    row = gpu_speed.time_case("s8", "device", epochs=1, smoke=True, device="cpu", recipe=ema_recipe)
    # fit stores the weights channels-last and turns on cuDNN autotuning, and trains an EMA recipe with its average
    assert calls == ["prepare_model", "make_ema"]
    conv = next(m for m in made["prepare_model"].modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    batches = row["train_images"] // row["batch_size"]
    assert made["make_ema"].updates == 2 * batches  # updated after every step of the warm-up and the timed epoch


def test_gpu_speed_rejects_unknown_cases_and_graphs_on_the_cpu():
    for case in ("s8/gpu", "s8/albumentations/graph"):  # graphs need the device loader
        with pytest.raises(SystemExit):
            gpu_speed.main(["--smoke", "--cases", case, "--device", "cpu"])
    with pytest.raises(SystemExit, match="1 of 1 cases failed: s8/device/graph"):
        gpu_speed.main(["--smoke", "--epochs", "1", "--cases", "s8/device/graph", "--device", "cpu"])


def test_gpu_speed_keeps_the_other_cases_when_one_fails(tmp_path, capsys):
    """A failing case (here CUDA graphs on the CPU) must not lose the cases timed before and after it: the
    plan's speed phase reads the JSON, and a timeout can stop the benchmark at any case."""
    out = tmp_path / "speed.json"
    with pytest.raises(SystemExit, match="1 of 3 cases failed"):
        gpu_speed.main(["--smoke", "--epochs", "1", "--cases", "s8/device", "s8/device/graph", "s8/device",
                        "--device", "cpu", "--json", str(out)])
    speed = json.loads(out.read_text())
    assert len(speed["rows"]) == 2 and [f["case"] for f in speed["failed"]] == ["s8/device/graph"]
    assert "CUDA graphs (--cuda-graph) need a CUDA device" in speed["failed"][0]["error"]
    assert "s8/device/graph: failed: ValueError" in capsys.readouterr().out


def test_gpu_speed_writes_each_case_as_it_ends(tmp_path, monkeypatch):
    """The plan stops the benchmark at its deadline: what was timed before must already be on disk."""
    real, calls = gpu_speed.time_case, []

    def stopped_at_the_second(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt  # what a kill looks like from inside: nothing after it runs
        return real(*args, **kwargs)

    monkeypatch.setattr(gpu_speed, "time_case", stopped_at_the_second)
    out = tmp_path / "speed.json"
    with pytest.raises(KeyboardInterrupt):
        gpu_speed.main(["--smoke", "--epochs", "1", "--cases", "s8/device", "s9/device", "--device", "cpu",
                        "--json", str(out)])
    assert [r["session"] for r in json.loads(out.read_text())["rows"]] == ["s8"]


def test_the_time_kept_for_the_timed_cli_run_comes_from_the_s9_epochs_timed_so_far(tmp_path):
    speed = tmp_path / "speed.json"
    assert full_cifar.cli_seconds_needed(speed, 20) == full_cifar.CLI_RESERVE_SECONDS  # nothing timed yet
    rows = [{"session": "s8", "loader": "device", "epoch_s": 9.0},
            {"session": "s9", "loader": "albumentations", "epoch_s": 8.0}]
    speed.write_text(json.dumps({"rows": rows}))
    assert full_cifar.cli_seconds_needed(speed, 20) == full_cifar.CLI_RESERVE_SECONDS  # no S9 device epoch
    rows += [{"session": "s9", "loader": "device", "epoch_s": 2.0},
             {"session": "s9", "loader": "device", "cuda_graph": True, "epoch_s": 1.0}]
    speed.write_text(json.dumps({"rows": rows}))
    expected = full_cifar.CLI_MARGIN * (full_cifar.CLI_START_SECONDS + 20 * 2.0)  # the slower of the two
    assert full_cifar.cli_seconds_needed(speed, 20) == pytest.approx(expected)
    assert full_cifar.cli_seconds_needed(speed, 10) < expected


def test_the_speed_benchmark_stops_once_its_rows_say_the_cli_run_needs_the_rest(tmp_path, capsys):
    """A stand-in benchmark writes a slow S9 epoch after a second, then would run on for a minute. While no
    S9 epoch is timed the plan keeps CLI_RESERVE_SECONDS (less than the 200 s left); the slow epoch asks for
    more than is left, so the benchmark is stopped then, and not before."""
    speed = tmp_path / "speed.json"
    row = {"session": "s9", "loader": "device", "epoch_s": 10.0}
    code = (f"import json, time, pathlib; time.sleep(1); pathlib.Path(r'{speed}').write_text("
            f"json.dumps({{'rows': [{row!r}]}})); print('wrote', flush=True); time.sleep(60)")
    full_cifar.RUNS.mkdir(parents=True)
    start = time.time()
    full_cifar.run_speed_benchmark([sys.executable, "-c", code], start + 200, speed, 20, least=0.0)
    assert 1.0 <= time.time() - start < 20
    assert speed.is_file() and "wrote" in (full_cifar.RUNS / "speed.log").read_text()
    assert "stopped, to leave 288 s for the timed S9 run" in capsys.readouterr().out  # 1.25 x (30 + 20 x 10)
    start = time.time()  # a smoke plan keeps nothing back: the benchmark ends on its own
    full_cifar.run_speed_benchmark([sys.executable, "-c", "print('done')"], start + 5, tmp_path / "none.json", 20,
                                   reserve=False)
    assert "done" in (full_cifar.RUNS / "speed.log").read_text() and "stopped" not in capsys.readouterr().out


def test_the_speed_benchmark_packs_each_case_as_it_lands(tmp_path):
    """The speed phase is a session's last call, and the device's time limit may cut it short: each case
    the benchmark writes must reach the results at once, not after the benchmark ends."""
    speed = tmp_path / "speed.json"
    code = (f"import json, time, pathlib; p = pathlib.Path(r'{speed}')\n"
            "for k in range(3):\n"  # 2 s apart: four times the poll, so a busy CPU cannot merge two cases
            "    time.sleep(2); p.write_text(json.dumps({'rows': [{'case': j} for j in range(k + 1)]}))\n"
            "time.sleep(2)")
    full_cifar.RUNS.mkdir(parents=True)
    packed = []
    full_cifar.run_speed_benchmark([sys.executable, "-c", code], time.time() + 60, speed, 20, reserve=False,
                                   least=0.0, on_case=lambda: packed.append(len(json.loads(speed.read_text())["rows"])))
    assert packed == [1, 2, 3]  # once per case, each time with the cases so far


def _names(archive: Path) -> set[str]:
    """The paths in a tar archive of the plan, from runs/gpu/."""
    with tarfile.open(archive) as tar:
        return {Path(n).relative_to(full_cifar.RUNS.relative_to(full_cifar.ROOT)).as_posix() for n in tar.getnames()}


def test_the_results_keep_a_stopped_runs_history_and_its_checkpoint_comes_back_apart(tmp_path, monkeypatch):
    """A run stopped at the deadline: its curve so far comes back in the results (history.json), and its
    checkpoint in checkpoints.tar, so that the next session can resume it (it used to stay on the machine, and
    was lost when the machine went back); a finished run's checkpoint stays behind."""
    monkeypatch.setattr(full_cifar, "ROOT", tmp_path)  # the archives name paths from the checkout's root
    stopped, s9_stopped, ended = (full_cifar.RUNS / "final" / name for name in ("s8-bn-stopped", "s9-stopped", "ended"))
    other_recipe = full_cifar.RUNS / "earlier" / "final" / "s9-moved"  # make_room's: it can never resume
    for folder in (stopped, s9_stopped, ended, other_recipe):
        folder.mkdir(parents=True)
        (folder / "history.json").write_text("[]")
        (folder / "checkpoint.pt").write_bytes(b"x" * 4000)
    (ended / "run.json").write_text("{}")
    out = tmp_path / "out"
    full_cifar.pack(out)
    assert _names(out / "results.tar.gz") == {"final/s8-bn-stopped/history.json", "final/s9-stopped/history.json",
                                               "final/ended/history.json", "final/ended/run.json",
                                               "earlier/final/s9-moved/history.json"}
    assert _names(out / "checkpoints.tar") == {"final/s8-bn-stopped/checkpoint.pt", "final/s9-stopped/checkpoint.pt"}
    with tarfile.open(out / "checkpoints.tar") as tar:
        assert tar.extractfile(tar.getmember(tar.getnames()[0])).read() == b"x" * 4000
    # no room for both in the file's limit: S9's (the longest to train again) goes first, the other is named
    one = (out / "checkpoints.tar").stat().st_size - 4000 - 512  # the archive less one file and its header
    full_cifar.pack_checkpoints(out, limit=one)
    assert _names(out / "checkpoints.tar") == {"final/s9-stopped/checkpoint.pt"}
    assert (out / "checkpoints.tar").stat().st_size <= one
    # once every run has ended, no archive is left, not even the one an earlier pack of this call wrote
    for folder in (stopped, s9_stopped):
        (folder / "run.json").write_text("{}")
    full_cifar.pack(out)
    assert not (out / "checkpoints.tar").exists() and not (out / "checkpoints.tar.tmp").exists()


def test_the_timed_cli_run_is_kept_without_a_speed_table(tmp_path):
    speed = tmp_path / "speed.json"
    full_cifar.record_cli_time(speed, 58.3, False, 20)  # the benchmark ran out of time before writing anything
    record = json.loads(speed.read_text())
    assert record["cli_s9_seconds"] == 58.3 and record["smoke"] is False and record["rows"] == []
    assert "58.3 s from process start" in recipes_benchmark.speed_table(speed)
    smoke = tmp_path / "smoke.json"
    full_cifar.record_cli_time(smoke, 3.0, False, 1, smoke=True)
    assert json.loads(smoke.read_text())["smoke"] is True  # collect() leaves a smoke file out of doc/results


def test_full_cifar_plan_runs_only_what_is_not_committed():
    done = _record("s9", None, "tuned", 1, [80.0] * 20)  # as full_cifar.FULL, device loader, 20 epochs
    other_recipe = _record("s9", None, "seed", 2, [70.0] * 20)
    other_recipe["config"]["recipe"]["lr"] = 0.5  # made with a recipe that is not the seed recipe now
    names = [j.name for j in full_cifar.final_jobs([done, other_recipe], 20)]
    assert "final/s9-tuned-device-s1" not in names and "final/s9-seed-device-s2" in names
    assert len(names) == 3 * 4 * 2 - 1  # seeds x (S9, S8 BN/LN/GN) x (seed, tuned), less the committed run
    albumentations = full_cifar.final_jobs([], 20, loader="albumentations", cuda_graph=True)
    assert len(albumentations) == 6 and all("--workers" in j.argv and "--cuda-graph" not in j.argv
                                            for j in albumentations)
    tune = full_cifar.tune_jobs([], 20, cuda_graph=True)
    distinct = {(key, recipes.recipe_with_settings("s9" if key == "s9" else "s8", "tuned", key[3:] or "bn", c))
                for key, candidates in select_recipes.CANDIDATES.items() for c in candidates}  # each recipe once
    expected = len(distinct) + len(select_recipes.S9_READINGS) + 3 * len(select_recipes.S8_READINGS)
    assert len(tune) == expected and tune[0].argv[3] == "s9" and "--cuda-graph" in tune[0].argv
    assert sum("--validation" in j.argv for j in tune) == len(distinct)
    assert {j.name for j in full_cifar.final_jobs([], 20, runs=("s9",))} == {
        f"final/s9-{r}-device-s{k}" for r in ("seed", "tuned") for k in (1, 2, 3)}
    only = full_cifar.tune_jobs([], 20, runs=("s8-ln",))
    assert only and all(j.name.startswith(("tune/s8-ln", "read/s8-ln")) for j in only)
    val = _record("s8", "ln", "tuned", 1, [75.0] * 20, kind=full_cifar.VALIDATION)
    assert "tune/s8-ln-base" not in [j.name for j in full_cifar.tune_jobs([val], 20)]


def test_full_cifar_plan_runs_a_candidate_equal_to_the_recipe_once(monkeypatch):
    now = recipes.get_recipe("s9", "tuned")
    monkeypatch.setattr(select_recipes, "CANDIDATES", {"s9": [{}, {"lr": now.lr}, {"lr": now.lr * 2}]})
    monkeypatch.setattr(select_recipes, "S9_READINGS", [])
    monkeypatch.setattr(select_recipes, "S8_READINGS", [])
    assert [j.name for j in full_cifar.tune_jobs([], 20)] == ["tune/s9-base", f"tune/s9-lr{now.lr * 2}"]


def test_full_cifar_runs_the_cuda_tests_apart_and_stops_a_suite_at_the_deadline(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(full_cifar, "RUNS", tmp_path)
    monkeypatch.setattr(full_cifar, "SNAPSHOT", tmp_path / "checkout")
    gpu, rest = full_cifar.test_suites()
    # the CUDA tests write the report gpu_tests_passed reads; the rest of the suite leaves them out
    assert "tests/test_gpu.py" in gpu.argv and f"--junitxml={tmp_path / 'pytest.xml'}" in gpu.argv
    assert "--ignore=tests/test_gpu.py" in rest.argv and "tests/test_gpu.py" not in rest.argv
    # ... and runs in a copy of the checkout, which the tuning's rewrite of helpers/recipes.py does not reach
    assert rest.cwd == tmp_path / "checkout" and gpu.cwd == ROOT
    copied = tmp_path / "checkout" / "helpers" / "recipes.py"
    assert copied.read_text() == (ROOT / "helpers" / "recipes.py").read_text()
    assert (tmp_path / "checkout" / "pytest.ini").is_file() and not (tmp_path / "checkout" / ".git").exists()
    quick = full_cifar.Job("quick", [sys.executable, "-c", "pass"])
    quick.start()
    full_cifar.finish(quick, time.time() + 60, "test")
    assert quick.proc.returncode == 0 and "quick: exit 0" in capsys.readouterr().out
    slow = full_cifar.Job("slow", [sys.executable, "-c", "import time; time.sleep(30)"])
    slow.start()
    start = time.time()
    full_cifar.finish(slow, time.time() + 1, "test")
    assert time.time() - start < 10 and slow.proc.returncode != 0
    assert "slow: stopped at the deadline" in capsys.readouterr().out


def _alive(pid: int) -> bool:
    """Is process ``pid`` still running (a zombie, which no parent has reaped, is not)?"""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc")
def test_stopping_a_job_stops_the_processes_it_started(tmp_path, monkeypatch):
    """pytest's half of the suite starts training processes of its own: stopped at the deadline, it used to
    leave them running, on the GPU that the speed phase wants to itself."""
    monkeypatch.setattr(full_cifar, "RUNS", tmp_path)
    pid_file = tmp_path / "child.pid"
    code = ("import subprocess, sys, time; child = subprocess.Popen([sys.executable, '-c', 'import time; "
            f"time.sleep(60)']); open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)")
    job = full_cifar.Job("parent", [sys.executable, "-c", code])
    job.start()
    deadline = time.time() + 30
    while not (pid_file.is_file() and pid_file.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    child = int(pid_file.read_text())
    assert _alive(child)
    job.stop()
    deadline = time.time() + 10
    while _alive(child) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(child) and job.finished()


def test_the_end_of_a_plan_stops_its_jobs_even_when_a_last_step_fails(tmp_path, monkeypatch, capsys):
    """A follow-up that came due at the deadline and failed (the choice, the packing) used to skip the kills:
    the plan's processes outlived it."""
    monkeypatch.setattr(full_cifar, "RUNS", tmp_path)
    slow = full_cifar.Job("slow", [sys.executable, "-c", "import time; time.sleep(30)"])
    slow.start()

    def choose() -> None:
        raise RuntimeError("select_recipes.py broke")
    full_cifar.stop_all([slow], "test", (choose,))
    assert slow.finished() and slow.proc.returncode != 0
    out = capsys.readouterr().out
    assert "choose failed" in out and "select_recipes.py broke" in out and "slow: stopped at the deadline" in out


def test_a_plan_that_fails_stops_its_test_suites(tmp_path, monkeypatch):
    """The suites start outside run_jobs, in process sessions of their own: a plan that failed (or was sent
    SIGTERM) used to leave them running, into the next plan's speed phase."""
    slow = [full_cifar.Job(name, [sys.executable, "-c", "import time; time.sleep(60)"]) for name in ("gpu", "rest")]
    monkeypatch.setattr(full_cifar, "test_suites", lambda: tuple(slow))

    handlers = []

    def broken(*args, **kwargs):
        handlers.append(signal.getsignal(signal.SIGTERM))
        raise RuntimeError("the plan broke")
    monkeypatch.setattr(full_cifar, "tune_jobs", broken)
    monkeypatch.setattr(full_cifar, "pack", lambda *a, **k: None)
    before, start = signal.getsignal(signal.SIGTERM), time.time()
    with pytest.raises(RuntimeError, match="the plan broke"):
        full_cifar.main(["--smoke", "--out", str(tmp_path / "out"), "--runs", "s9", "--phases", "tests", "tune"])
    assert all(job.finished() and job.proc.returncode != 0 for job in slow) and time.time() - start < 30
    # during the plan SIGTERM leaves through the finally blocks; afterwards the handler is what it was
    assert handlers == [full_cifar._exit_on_signal] and signal.getsignal(signal.SIGTERM) == before
    with pytest.raises(SystemExit) as exit_:
        full_cifar._exit_on_signal(signal.SIGTERM, None)
    assert exit_.value.code == 128 + signal.SIGTERM


def test_full_cifar_trains_beside_the_cuda_tests_when_no_speed_phase_waits_for_them(tmp_path, monkeypatch):
    """Without a speed phase nothing in the call needs the CUDA tests' outcome first, so the GPU must not idle
    while they run: the training starts at once, and the suites are still waited for (and reported) at the end."""
    marks = tmp_path / "marks"
    marks.mkdir()

    def job(name: str, delay: float) -> full_cifar.Job:  # writes when it ended, after ``delay`` seconds
        code = f"import time, pathlib; time.sleep({delay}); pathlib.Path(r'{marks / name}').write_text(str(time.time()))"
        return full_cifar.Job(name, [sys.executable, "-c", code])

    suites = (job("gpu", 4.0), job("rest", 0.0))
    monkeypatch.setattr(full_cifar, "test_suites", lambda: suites)
    monkeypatch.setattr(full_cifar, "tune_jobs", lambda *a, **k: [job("train", 0.0)])
    monkeypatch.setattr(full_cifar, "select_argv", lambda *a, **k: [sys.executable, "-c", "pass"])
    monkeypatch.setattr(full_cifar, "pack", lambda *a, **k: None)  # packs paths inside the checkout
    full_cifar.main(["--smoke", "--out", str(tmp_path / "out"), "--runs", "s9", "--phases", "tests", "tune",
                     "--budget", "60"])
    ended = {name: float((marks / name).read_text()) for name in ("gpu", "rest", "train")}
    assert ended["train"] < ended["gpu"]  # trained while the CUDA tests still ran
    assert all(suite.ended is not None and suite.proc.returncode == 0 for suite in suites)


def test_the_gpu_plan_commands_shown_in_the_readme_and_the_docstring_parse():
    """A device minute lost to a typo in a copied command is not got back: every full_cifar.py command line
    that README.md and the script's docstring show must be one its parser accepts."""
    commands = []  # each line's plans: one command may run two, one after the other (";")
    for text in ((ROOT / "README.md").read_text(), full_cifar.__doc__):
        joined = text.replace("\\\n", " ")  # a command continued on the next line
        commands += [[plan.split("#")[0].split("&&")[0].split(";")[0]
                      for plan in line.split("python benchmarks/full_cifar.py ")[1:]]
                     for line in joined.splitlines() if "python benchmarks/full_cifar.py " in line]
    assert len(commands) >= 3 and max(len(plans) for plans in commands) == 2
    for plans in commands:
        parsed = [full_cifar.build_parser().parse_args(shlex.split(plan.replace('"$OUT"', "/tmp/out")))
                  for plan in plans]
        on_the_cpu = any(args.smoke or args.budget >= 3600 for args in parsed)  # the CPU plans run for hours
        # setup.sh, start-up and packing: the plans of one command fit in a device call's 600 s
        assert on_the_cpu or sum(args.budget for args in parsed) + 60 <= 600, plans


def test_a_kept_call_on_a_bare_machine_says_the_earlier_runs_are_not_there(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(full_cifar, "tune_jobs", lambda *a, **k: [])
    monkeypatch.setattr(full_cifar, "select_argv", lambda *a, **k: [sys.executable, "-c", "pass"])
    monkeypatch.setattr(full_cifar, "pack", lambda *a, **k: None)
    full_cifar.main(["--smoke", "--keep", "--out", str(tmp_path / "out"), "--runs", "s9", "--phases", "tune"])
    assert "this machine started bare" in capsys.readouterr().out
    full_cifar.main(["--smoke", "--keep", "--out", str(tmp_path / "out"), "--runs", "s9", "--phases", "tune"])
    assert "started bare" not in capsys.readouterr().out  # the first call left runs/gpu there


def test_a_new_plan_moves_the_last_plans_runs_aside_instead_of_deleting_them(tmp_path, monkeypatch, capsys):
    """Run without --keep after a CPU plan, the plan used to delete runs/gpu: runs not yet collected, and
    the checkpoints of runs its budget stopped, were lost."""
    monkeypatch.setattr(full_cifar, "tune_jobs", lambda *a, **k: [])
    monkeypatch.setattr(full_cifar, "select_argv", lambda *a, **k: [sys.executable, "-c", "pass"])
    monkeypatch.setattr(full_cifar, "pack", lambda *a, **k: None)
    done = full_cifar.RUNS / "tune" / "s8-ln-base" / "run.json"
    done.parent.mkdir(parents=True)
    done.write_text("{}")
    full_cifar.main(["--smoke", "--out", str(tmp_path / "out"), "--runs", "s9", "--phases", "tune"])
    aside = [p for p in full_cifar.RUNS.parent.iterdir() if p.name.startswith(full_cifar.RUNS.name + "-")]
    assert len(aside) == 1 and (aside[0] / "tune" / "s8-ln-base" / "run.json").read_text() == "{}"
    assert not (full_cifar.RUNS / "tune" / "s8-ln-base").exists()  # the new plan starts from an empty folder
    assert f"aside to {aside[0].name}/" in capsys.readouterr().out


def test_full_cifar_moves_an_earlier_calls_run_of_another_recipe_out_of_the_way(monkeypatch):
    import torch
    # a fixed LayerNorm recipe, so that the three candidates below stay candidates whatever tuning chooses
    monkeypatch.setitem(recipes._TUNED, "s8-ln", dict(lr=0.025, batch_size=64, weight_decay=0.001, dropout=0.0,
                                                      augment="crop-flip", label_smoothing=0.0, tta_shift=1))
    runs = full_cifar.RUNS
    before = _record("s8", "ln", "tuned", 1, [70.0] * 20, kind=full_cifar.VALIDATION)
    before["config"]["recipe"]["label_smoothing"] = 0.3  # made around the recipe before the last choice
    (runs / "tune" / "s8-ln-lr0.02").mkdir(parents=True)
    (runs / "tune" / "s8-ln-lr0.02" / "run.json").write_text(json.dumps(before))
    this = _record("s8", "ln", "tuned", 1, [75.0] * 20, kind=full_cifar.VALIDATION)  # "no change", finished
    (runs / "tune" / "s8-ln-base").mkdir(parents=True)
    (runs / "tune" / "s8-ln-base" / "run.json").write_text(json.dumps(this))
    for name, recipe in (("s8-ln-weightdecay0.002", before["config"]["recipe"]),  # stopped runs: another recipe,
                         ("s8-ln-pctstart0.15", recipes.recipe_with_settings(  # and this very one
                             "s8", "tuned", "ln", {"pct_start": 0.15}).as_dict())):
        (runs / "tune" / name).mkdir(parents=True)
        torch.save({"config": {"recipe": recipe}, "model": {}, "optimizer": {}, "history": [],
                    "rng_cpu": torch.get_rng_state()}, runs / "tune" / name / "checkpoint.pt")
    (runs / "tune" / "s8-ln-lr0.05").mkdir(parents=True)  # a checkpoint that does not load: out of the way too
    (runs / "tune" / "s8-ln-lr0.05" / "checkpoint.pt").write_bytes(b"cut off")
    jobs = full_cifar.tune_jobs([], 20, runs=("s8-ln",), resume=True)
    assert {"tune/s8-ln-lr0.02", "tune/s8-ln-weightdecay0.002"} <= {j.name for j in jobs}
    earlier = runs / "earlier" / "tune"
    assert json.loads((earlier / "s8-ln-lr0.02" / "run.json").read_text()) == before  # kept, still collected
    assert (earlier / "s8-ln-weightdecay0.002" / "checkpoint.pt").is_file()
    assert not (runs / "tune" / "s8-ln-weightdecay0.002").exists()
    assert (runs / "tune" / "s8-ln-base" / "run.json").is_file()  # this run itself stays
    assert (runs / "tune" / "s8-ln-pctstart0.15" / "checkpoint.pt").is_file()  # and resumes
    assert (earlier / "s8-ln-lr0.05" / "checkpoint.pt").read_bytes() == b"cut off"
    assert "tune/s8-ln-pctstart0.15" in [j.name for j in jobs]


def test_full_cifar_reads_the_cuda_tests_outcome_from_the_junit_report(tmp_path):
    def report(*cases):
        xml = tmp_path / "pytest.xml"
        xml.write_text("<testsuites><testsuite>" + "".join(
            f'<testcase classname="tests.{module}" name="t{i}">{inner}</testcase>'
            for i, (module, inner) in enumerate(cases)) + "</testsuite></testsuites>")
        return full_cifar.gpu_tests_passed(xml)
    assert report(("test_gpu", ""), ("test_gpu", ""), ("test_data", "<failure/>"))  # other failures: not ours
    assert not report(("test_gpu", ""), ("test_gpu", "<failure message='x'/>"))
    assert not report(("test_gpu", '<skipped message="needs a CUDA GPU"/>'))  # skipped: not run on a GPU
    assert not report(("test_data", ""))  # no CUDA test at all
    assert not full_cifar.gpu_tests_passed(tmp_path / "missing.xml")


def test_full_cifar_uses_cuda_graphs_only_where_they_were_timed_faster(tmp_path):
    def speed(s9_graph, s8_graph):
        rows = [{"session": "s9", "loader": "device", "cuda_graph": False, "train_s": 1.0},
                {"session": "s8", "loader": "device", "cuda_graph": False, "train_s": 1.2},
                {"session": "s9", "loader": "device", "cuda_graph": True, "train_s": s9_graph},
                {"session": "s8", "loader": "device", "cuda_graph": True, "train_s": s8_graph},
                {"session": "s9", "loader": "albumentations", "cuda_graph": False, "train_s": 3.6}]
        rows = [r for r in rows if r["train_s"] is not None]  # None: the call ended before that case
        path = tmp_path / "speed.json"
        path.write_text(json.dumps({"rows": rows}))
        return path
    assert full_cifar.use_graphs("auto", speed(0.9, 0.5), True)
    assert not full_cifar.use_graphs("auto", speed(1.1, 0.5), True)       # slower for S9
    assert not full_cifar.use_graphs("auto", speed(0.9, 0.5), False)      # the tests failed
    assert not full_cifar.use_graphs("auto", tmp_path / "missing.json", None)
    assert full_cifar.use_graphs("auto", speed(0.9, None), True)       # S9's pair alone (it is timed first)
    assert not full_cifar.use_graphs("auto", speed(1.1, None), True)
    assert not full_cifar.use_graphs("auto", speed(None, None), True)  # no graphed case timed
    assert gpu_speed.CASES[:2] == ("s9/device", "s9/device/graph")
    assert full_cifar.use_graphs("on", None, False) and not full_cifar.use_graphs("off", speed(0.1, 0.1), True)


def test_full_cifar_starts_a_groups_follow_up_before_the_jobs_still_waiting(tmp_path, monkeypatch):
    monkeypatch.setattr(full_cifar, "RUNS", tmp_path)
    job = lambda name: full_cifar.Job(name, [sys.executable, "-c", "pass"])  # noqa: E731
    a1, a2, b, c, d = job("a1"), job("a2"), job("b"), job("c"), job("d")
    due = []
    then = [([a1, a2], lambda: due.append("a") or [c]),  # the finals of group a, once a1 and a2 have ended
            ([], lambda: due.append("none") or [d])]     # an empty group is due at once
    full_cifar.run_jobs([a1, a2, b], 1, time.time() + 60, "test", then)
    order = [j.name for j in sorted((a1, a2, b, c, d), key=lambda j: j.started)]
    assert due == ["none", "a"] and order == ["d", "a1", "a2", "c", "b"]
    assert all(j.proc.returncode == 0 for j in (a1, a2, b, c, d))
    late = job("late")
    full_cifar.run_jobs([job("now")], 1, time.time() + 30, "test", [([], lambda: [late])])
    assert late.started is not None
    stopped = full_cifar.Job("slow", [sys.executable, "-c", "import time; time.sleep(30)"])
    full_cifar.run_jobs([stopped], 1, time.time() + 1, "test")
    assert stopped.proc.returncode is not None and stopped.proc.returncode != 0  # killed at the deadline
    ended = job("ended")  # a group that ended just as time ran out: its choice is still made
    ended.start()
    ended.proc.wait()
    assert ended.finished()
    chosen, finals = [], job("finals")
    full_cifar.run_jobs([], 1, time.time() - 1, "test", [([ended], lambda: chosen.append(1) or [finals])])
    assert chosen == [1] and finals.started is None  # ... but its finals are not started


def _wire_main(tmp_path, monkeypatch, tune_seconds: float = 0.0) -> dict:
    """main() with quick stand-ins for its training jobs (a tuning job sleeps ``tune_seconds``) and its
    selection; returns the jobs it starts, by name, in the order they start."""
    (tmp_path / "helpers").mkdir(exist_ok=True)
    (tmp_path / "helpers" / "recipes.py").write_text((ROOT / "helpers" / "recipes.py").read_text())
    monkeypatch.setattr(full_cifar, "ROOT", tmp_path)  # no .device/execute.py there: the notebook jobs fail
    monkeypatch.setattr(full_cifar, "RUNS", tmp_path / "gpu")
    monkeypatch.setattr(full_cifar, "RESULTS", tmp_path / "results")

    def quick(name, seconds=0.0):
        return full_cifar.Job(name, [sys.executable, "-c", f"import time; time.sleep({seconds})"])
    monkeypatch.setattr(full_cifar, "tune_jobs", lambda records, e, smoke, graphs, keys, resume=False:
                        [quick(f"tune/{k}", tune_seconds) for k in keys])
    monkeypatch.setattr(full_cifar, "final_jobs", lambda records, e, smoke, cuda_graph=False, loader="device",
                        runs=(), resume=False, recipe_names=("tuned", "seed"):
                        [quick(f"final/{k}-{r}") for r in recipe_names for k in runs])
    monkeypatch.setattr(full_cifar, "select_argv", lambda e, smoke=False: [sys.executable, "-c", "pass"])
    started, start = {}, full_cifar.Job.start
    monkeypatch.setattr(full_cifar.Job, "start", lambda job: (started.setdefault(job.name, job), start(job))[1])
    return started


def test_full_cifar_main_chooses_per_group_and_starts_each_groups_finals_after_its_choice(tmp_path, monkeypatch,
                                                                                          capsys):
    """The wiring of main(): the S9 finals follow the S9 choice while S8 still tunes; the notebooks and the
    S8 finals follow the S8 choice; no notebook that failed is packed."""
    started = _wire_main(tmp_path, monkeypatch)
    full_cifar.main(["--out", str(tmp_path / "out"), "--phases", "tune", "finals", "notebooks", "--smoke",
                     "--parallel", "1", "--budget", "120"])
    # the seed recipes' finals wait for no choice: queued from the start, behind their own group's tuning
    assert list(started) == ["tune/s9", "final/s9-tuned", "final/s9-seed", "tune/s8-bn", "tune/s8-ln", "tune/s8-gn",
                             "notebook/s9_advanced_convolutions", "notebook/s8_normalization",
                             "final/s8-bn-tuned", "final/s8-ln-tuned", "final/s8-gn-tuned",
                             "final/s8-bn-seed", "final/s8-ln-seed", "final/s8-gn-seed"]
    assert capsys.readouterr().out.count("recipes chosen") == 2 and (tmp_path / "gpu" / "recipes.py").is_file()
    with tarfile.open(tmp_path / "out" / "results.tar.gz") as tar:
        assert not [n for n in tar.getnames() if n.endswith(".ipynb")]  # both failed here: neither is packed


def test_full_cifar_trains_the_seed_recipes_finals_beside_the_tuning_unless_a_reading_waits(tmp_path, monkeypatch):
    """S9's seed finals (batch 64, the longest runs) used to wait for the tuning's choice, which cannot
    change the seed recipe, and were then stopped at the deadline; now they train beside the candidates."""
    plan = ["--out", str(tmp_path / "out"), "--phases", "tune", "finals", "--smoke", "--runs", "s9",
            "--parallel", "2", "--budget", "60"]
    started = _wire_main(tmp_path, monkeypatch, tune_seconds=1.0)
    full_cifar.main(plan)
    tune, seed, tuned = started["tune/s9"], started["final/s9-seed"], started["final/s9-tuned"]
    assert seed.started < tune.ended <= tuned.started
    # a reading of the seed document still to run: the choice may change the seed recipe, so its finals wait
    monkeypatch.setattr(select_recipes, "S9_READINGS", [{"lr": 0.1}])
    started = _wire_main(tmp_path, monkeypatch, tune_seconds=1.0)
    full_cifar.main(plan)
    assert started["final/s9-seed"].started >= started["tune/s9"].ended


def test_full_cifar_select_command_parses_and_reads_both_folders(tmp_path, monkeypatch):
    """The plan's select_recipes.py command line, run as it is (once it named doc/results after an option,
    and argparse refused it, so no recipe was ever chosen on the GPU)."""
    monkeypatch.setattr(full_cifar, "RUNS", tmp_path / "gpu")
    monkeypatch.setattr(full_cifar, "RESULTS", tmp_path / "results")
    lr = recipes.get_recipe("s8", "tuned", "ln").lr  # two candidates that stay apart whatever the recipe is
    monkeypatch.setattr(select_recipes, "CANDIDATES", {"s8-ln": [{}, {"lr": lr * 3}]})
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.json").write_text(json.dumps(_record("s8", "ln", "tuned", 1, [75.0] * 20,
                                                                    kind=full_cifar.VALIDATION)))
    recipes_file = tmp_path / "recipes.py"
    recipes_file.write_text((ROOT / "helpers" / "recipes.py").read_text())
    for smoke in (False, True):
        argv = full_cifar.select_argv(20, smoke)
        assert argv[1] == "benchmarks/select_recipes.py" and ("--dry-run" in argv) == smoke
        (tmp_path / "gpu").mkdir(exist_ok=True)
        result = select_recipes.main(argv[2:] + ["--recipes-file", str(recipes_file)])
        seen = result["tuned"]["s8-ln"]["scores"] if not smoke else []
        assert smoke or [s["val_acc"] for s in seen] == [75.0]  # the committed record was read
    assert recipes_file.read_text() == (ROOT / "helpers" / "recipes.py").read_text()  # incomplete: no change


def test_sample_comparison_trains_both_recipes_per_seed(tmp_path):
    folders = recipes_benchmark.run_sample(None, ["s8-bn"], [1], epochs=1, out=tmp_path, smoke=True)
    assert sorted(f.name for f in folders) == ["s8-bn-seed-seed1", "s8-bn-tuned-seed1"]
    names = sorted(p.name for p in recipes_benchmark.collect([tmp_path], tmp_path / "results"))
    assert names == ["synthetic-s8-bn-seed-albumentations-seed1-e1.json",
                     "synthetic-s8-bn-tuned-albumentations-seed1-e1.json"]
    candidate = recipes_benchmark.run_sample(None, ["s8-bn"], [1], epochs=1, out=tmp_path / "c", smoke=True,
                                             names=("tuned",), settings=("augment=crop-flip",))
    assert [f.name for f in candidate] == ["s8-bn-tuned-augment=crop-flip-seed1"]
    made = json.loads((candidate[0] / "run.json").read_text())["config"]["recipe"]
    assert made == recipes.get_recipe("s8", "tuned", "bn", augment="crop-flip").as_dict()


def test_full_cifar_starts_the_notebooks_only_when_they_can_finish(capsys):
    late = full_cifar.notebook_jobs(time.time() + full_cifar.NOTEBOOK_SECONDS / 2)
    assert late == [] and "notebooks: not started" in capsys.readouterr().out
    names = [j.name for j in full_cifar.notebook_jobs(time.time() + full_cifar.NOTEBOOK_SECONDS + 60)]
    assert names == ["notebook/s9_advanced_convolutions", "notebook/s8_normalization"]
    smoke = full_cifar.notebook_jobs(time.time() + 10, smoke=True)  # synthetic data: seconds
    assert len(smoke) == 2 and all(j.env == {"SMOKE_TEST": "1"} for j in smoke)


def test_the_checkpoints_archive_keeps_to_its_limit_with_many_files(tmp_path, monkeypatch):
    """The archive's size was counted without tar's extended headers (about 1 KB a file): with many small
    checkpoints it came out larger than the limit it was packed to."""
    monkeypatch.setattr(full_cifar, "ROOT", tmp_path)
    for i in range(40):
        folder = full_cifar.RUNS / "tune" / f"s8-bn-candidate{i:02d}"
        folder.mkdir(parents=True)
        (folder / "checkpoint.pt").write_bytes(b"x" * 4000)
    limit = 100_000
    full_cifar.pack_checkpoints(tmp_path / "out", limit=limit)
    size, packed = (tmp_path / "out" / "checkpoints.tar").stat().st_size, _names(tmp_path / "out" / "checkpoints.tar")
    assert size <= limit and 10 < len(packed) < 40  # as many as fit, and no more

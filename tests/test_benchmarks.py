"""The benchmark scripts' own logic (their training runs take hours and are not tests)."""
import json

import pytest

from benchmarks import recipes as recipes_benchmark
from benchmarks import tune
from helpers import data


def _history(accs):
    return [{"epoch": i + 1, "test_acc": a} for i, a in enumerate(accs)]


def test_recipe_table_reports_final_best_and_mean_gain():
    one_seed = {"s9": {"seed": [_history([40.0, 56.0, 55.5])], "tuned": [_history([50.0, 62.0, 64.25])]}}
    table = recipes_benchmark.format_table(one_seed).splitlines()
    assert table[0] == "| run | seed recipe | tuned recipe | gain |"
    assert table[2] == "| s9 | 55.50% (best 56.00% @ 2) | 64.25% (best 64.25% @ 3) | +8.75 pts |"
    seeds = {"s8-bn": {"seed": [_history([50.0]), _history([54.0])], "tuned": [_history([60.0]), _history([62.0])]}}
    assert recipes_benchmark.format_table(seeds).splitlines()[2] == \
        "| s8-bn | 52.00% ± 2.83 | 61.00% ± 1.41 | +9.00 pts |"


def test_settings_parse_to_recipe_values():
    assert tune.parse_settings(["lr=0.02", "tta=false", "ema_decay=none", "augment=s9-light", "dropout=0"]) == \
        {"lr": 0.02, "tta": False, "ema_decay": None, "augment": "s9-light", "dropout": 0}
    with pytest.raises(ValueError, match="key=value"):
        tune.parse_settings(["lr"])


def test_validation_split_holds_out_the_last_batch(splits):
    train_split, val_split = tune.split_train_val(splits[0], 4)
    assert len(val_split) == len(splits[0]) // 4 and len(train_split) + len(val_split) == len(splits[0])
    assert (val_split.images == splits[0].images[len(train_split):]).all()
    with pytest.raises(ValueError, match="two training batch"):
        tune.split_train_val(splits[0], 1)


def test_a_tuning_run_trains_on_the_split_and_logs_one_line(cifar_root, tmp_path):
    log = tmp_path / "tuning.jsonl"
    result = tune.main(["s8", "--norm", "gn", "--epochs", "1", "--set", "augment=pad-crop", "lr=0.05",
                        "--data-root", str(cifar_root), "--device", "cpu", "--log", str(log)])
    assert (result["train_images"], result["val_images"]) == (512, 512)  # the fixture writes two batches
    assert result["augment"] == "pad-crop" and 0 <= result["val_acc"] <= 100
    assert json.loads(log.read_text()) == result
    assert len(data.load_cifar10(cifar_root, train=True)) == 1024

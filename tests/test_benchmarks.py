"""The benchmark scripts' own logic (their training runs take hours and are not tests)."""
import json
import pickle

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


def test_validation_split_holds_out_exactly_the_last_batch_file(tmp_path):
    folder = data.write_synthetic_cifar(tmp_path, n_train=300, n_test=20, seed=0, train_batches=3)
    last = data.safe_unpickle(folder / "data_batch_3")
    with open(folder / "data_batch_3", "wb") as f:  # a shorter last file, as in a course subset
        pickle.dump({**last, "data": last["data"][:40], "labels": last["labels"][:40]}, f, protocol=2)
    full = data.load_cifar10(tmp_path, train=True, download=False)
    assert tune.last_batch_size(str(tmp_path)) == (3, 40)
    train_split, val_split = tune.split_train_val(full, *tune.last_batch_size(str(tmp_path)))
    assert (len(train_split), len(val_split)) == (200, 40)
    assert (val_split.images.reshape(40, -1) == last["data"][:40].reshape(40, 3, 32, 32)
            .transpose(0, 2, 3, 1).reshape(40, -1)).all()
    with pytest.raises(ValueError, match="two training batch"):
        tune.split_train_val(full, 1, 40)


def test_settings_change_the_recipe_and_none_means_none():
    recipe, augment = tune.tuned_recipe("s9", "tuned", "bn", {"lr": 0.05, "dropout": None, "augment": "pad-crop"})
    assert (recipe.lr, recipe.dropout, augment) == (0.05, None, "pad-crop")  # tuned S9 has dropout 0.0
    assert recipe.augment == "s9-light"  # an extra augmentation stays out of the recipe
    recipe, augment = tune.tuned_recipe("s8", "tuned", "ln", {"augment": "s8"})
    assert (recipe.lr, augment) == (0.02, "s8")  # the per-norm lr still applies
    with pytest.raises(SystemExit):
        tune.main(["s9", "--norm", "ln"])  # S9 has no norm choice


def test_a_tuning_run_trains_on_the_split_and_logs_one_line(cifar_root, tmp_path):
    log = tmp_path / "tuning.jsonl"
    result = tune.main(["s8", "--epochs", "2", "--set", "augment=pad-crop", "batch_size=32",
                        "--data-root", str(cifar_root), "--device", "cpu", "--log", str(log)])
    assert (result["train_images"], result["val_images"]) == (512, 512)  # the fixture writes two batches
    assert result["augment"] == "pad-crop" and result["val_acc"] > 40  # it learns; chance is 10 %
    assert json.loads(log.read_text()) == result

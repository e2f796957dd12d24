import json
import math
import pickle

import pytest
import torch
import torch.nn.functional as F
from payloads import Exploit
from torch import nn

from helpers import data, models, recipes, train


def _metrics(history):
    """A history without its wall times, which differ from run to run."""
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def _loaders(splits, batch_size=64, n_train=None, seed=0):
    train_split, test_split = splits
    if n_train:
        train_split = data.CifarSplit(train_split.images[:n_train], train_split.labels[:n_train], train_split.classes)
    mean, std = data.mean_std(train_split.images)
    train_ds = data.AugmentedCifar(train_split, data.s8_train_transforms(mean, std), seed=seed)
    test_ds = data.AugmentedCifar(test_split, data.eval_transforms(mean, std))
    return (data.make_loader(train_ds, batch_size, train=True, seed=seed, num_workers=0),
            data.make_loader(test_ds, 200, train=False, num_workers=0))


def _run(splits, epochs, schedule="step", out_dir=None, resume=False, n_train=256, seed=0, global_seed=None,
         recipe_fields=None, **fit_kwargs):
    train.set_seed(seed if global_seed is None else global_seed)
    train_loader, test_loader = _loaders(splits, n_train=n_train, seed=seed)
    model = models.S8("bn")
    recipe = recipes.get_recipe("s8", "seed", lr=0.05, step_size=1, gamma=0.5, schedule=schedule,
                                **(recipe_fields or {}))
    optimizer = recipes.make_optimizer(model, recipe)
    scheduler = recipes.make_scheduler(optimizer, recipe, epochs, len(train_loader))
    history = train.fit(model, train_loader, test_loader, optimizer, scheduler, epochs, "cpu",
                        out_dir=out_dir, resume=resume, progress=False, verbose=False, **fit_kwargs)
    return history, model, optimizer, scheduler, train_loader


def test_training_loss_is_smoothed_nll_and_cuda_graphs_need_cuda(splits):
    model = models.S8("bn")
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    loss_fn = train.TrainingLoss(model, label_smoothing=0.1, cuda_graph=True)
    loss, log_probs = loss_fn.step(x, y)  # a CPU batch: computed eagerly, nothing captured
    expected = 0.9 * F.nll_loss(log_probs, y) - 0.1 * log_probs.mean()  # (1 - e) NLL + e x mean over classes
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss_fn.graph_shape is None and loss.requires_grad and not log_probs.requires_grad
    with pytest.raises(ValueError, match="needs a CUDA device"):
        _run(splits, 1, cuda_graph=True)


def test_two_epoch_fit_clearly_beats_chance(splits):
    train.set_seed(0)
    # small steps: with the augmentation draws independent per transform, lr 0.05 / batch 32 swung from
    # 18 % to 53 % with the seed; lr 0.01 / batch 16 gave 55-70 % over seeds 0-3
    train_loader, test_loader = _loaders(splits, batch_size=16)
    model = models.S8("gn")
    history = train.fit(model, train_loader, test_loader, torch.optim.SGD(model.parameters(), 0.01, momentum=0.9),
                        epochs=2, progress=False, verbose=False)
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[-1]["test_acc"] > 35, history  # chance is 10 %
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_history_contents_and_test_loss_is_mean_nll(splits):
    history, model, *_ = _run(splits, 2)
    assert all(list(h) == list(train.HISTORY_KEYS) for h in history)
    for h in history:
        assert 0 <= h["train_acc"] <= 100 and 0 <= h["test_acc"] <= 100
        assert math.isfinite(h["train_loss"]) and h["test_loss"] > 0
    _, test_loader = _loaders(splits, n_train=256)
    model.eval()  # the reference written out, not through train.predict (which evaluate itself uses)
    with torch.no_grad():
        log_probs = torch.cat([model(x) for x, _ in test_loader])
    labels = torch.cat([y for _, y in test_loader])
    nll = -log_probs[torch.arange(len(labels)), labels].mean().item()
    assert history[-1]["test_loss"] == pytest.approx(nll, rel=1e-5)
    assert history[-1]["test_acc"] == pytest.approx(100 * (log_probs.argmax(1) == labels).float().mean().item())
    assert train.best_epoch(history)["test_acc"] == max(h["test_acc"] for h in history)


def test_step_lr_steps_once_per_epoch(splits):
    history, *_ = _run(splits, 3, "step")
    assert [h["lr"] for h in history] == pytest.approx([0.05, 0.025, 0.0125])


def test_plateau_lowers_the_lr_once_the_test_loss_stops_improving(splits):
    """fit steps a plateau schedule on each epoch's test loss. With a threshold no loss can beat and patience 0,
    every epoch after the first counts as no better, so the lr halves after epoch 2 and again after epoch 3."""
    history, *_ = _run(splits, 4, "plateau", n_train=64,
                       recipe_fields=dict(patience=0, threshold=100.0, threshold_mode="abs"))
    assert [h["lr"] for h in history] == pytest.approx([0.05, 0.05, 0.025, 0.0125])


def test_one_cycle_steps_once_per_batch(splits):
    history, _, optimizer, scheduler, loader = _run(splits, 2, "onecycle")
    assert scheduler.last_epoch == 2 * len(loader)
    assert history[0]["lr"] == pytest.approx(0.005)                  # max_lr / div_factor at the start
    assert 0.005 < history[1]["lr"] < 0.05                           # annealing from the peak after warm-up


def test_plateau_steps_on_test_loss(splits):
    history, _, _, scheduler, _ = _run(splits, 3, "plateau")
    assert scheduler.last_epoch == 3
    assert scheduler.best == pytest.approx(min(h["test_loss"] for h in history[:3]), abs=0.1 + 1e-9)
    # the plateau scheduler only ever sees test losses: its best is one of them
    assert any(scheduler.best == pytest.approx(h["test_loss"]) for h in history)


def test_same_seed_gives_identical_histories(splits):
    first, *_ = _run(splits, 2)
    second, *_ = _run(splits, 2)
    assert _metrics(first) == _metrics(second)
    third, *_ = _run(splits, 2, seed=1)
    assert _metrics(third) != _metrics(first)


def test_channels_last_is_a_layout_change_only(splits):
    history, model, *_ = _run(splits, 1)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert not all(c.weight.is_contiguous() for c in convs)  # really N,H,W,C, not merely contiguous
    x = torch.randn(8, 3, 32, 32)
    standard = models.S8("bn")
    standard.load_state_dict(model.state_dict())  # copies values into contiguous weights
    model.eval(), standard.eval()
    assert all(p.is_contiguous() for p in standard.parameters())
    torch.testing.assert_close(model(x), standard(x), rtol=1e-4, atol=1e-4)
    plain, plain_model, *_ = _run(splits, 1, channels_last=False)
    assert all(p.is_contiguous() for p in plain_model.parameters())
    assert plain[0]["test_acc"] == pytest.approx(history[0]["test_acc"], abs=2.0)


class StopAfter:
    """Wraps a loader and raises KeyboardInterrupt in the middle of epoch ``stop``."""

    def __init__(self, loader, stop):
        self.loader, self.stop, self.epoch = loader, stop, 0
        self.sampler, self.dataset = loader.sampler, loader.dataset

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.epoch += 1
        for i, batch in enumerate(self.loader):
            if self.epoch == self.stop and i == 2:
                raise KeyboardInterrupt
            yield batch


def test_interrupted_then_resumed_run_ends_like_an_uninterrupted_one(splits, tmp_path):
    full, *_ = _run(splits, 3, "step", out_dir=tmp_path / "full")

    out = tmp_path / "run"
    train.set_seed(0)
    train_loader, test_loader = _loaders(splits, n_train=256)
    model = models.S8("bn")
    recipe = recipes.get_recipe("s8", "seed", lr=0.05, step_size=1, gamma=0.5)
    optimizer = recipes.make_optimizer(model, recipe)
    scheduler = recipes.make_scheduler(optimizer, recipe, 3, len(train_loader))
    with pytest.raises(KeyboardInterrupt):
        train.fit(model, StopAfter(train_loader, 3), test_loader, optimizer, scheduler, 3, "cpu",
                  out_dir=out, progress=False, verbose=False)
    # the last completed epoch (2) is intact on disk
    assert _metrics(json.loads((out / "history.json").read_text())) == _metrics(full[:2])
    assert _metrics(train.load_checkpoint(out / "checkpoint.pt")["history"]) == _metrics(full[:2])
    assert not list(out.glob("*.tmp"))

    resumed, *_ = _run(splits, 3, "step", out_dir=out, resume=True, global_seed=99)  # RNG state comes from the checkpoint
    assert _metrics(resumed) == _metrics(full)
    again, *_ = _run(splits, 3, "step", out_dir=out, resume=True)  # a finished run has nothing left to do
    assert _metrics(again) == _metrics(full)


def test_non_finite_loss_stops_with_epoch_and_batch_and_keeps_checkpoint(splits, tmp_path):
    train_loader, test_loader = _loaders(splits, n_train=256)

    class PoisonEpoch2:
        def __init__(self, loader):
            self.loader, self.epoch = loader, 0

        def __len__(self):
            return len(self.loader)

        def __iter__(self):
            self.epoch += 1
            for i, (x, y) in enumerate(self.loader):
                yield (x * float("nan") if self.epoch == 2 and i == 2 else x), y

    model = models.S8("gn")
    optimizer = torch.optim.SGD(model.parameters(), 0.01)
    with pytest.raises(train.NonFiniteLossError, match="epoch 2, batch 3") as err:
        train.fit(model, PoisonEpoch2(train_loader), test_loader, optimizer, epochs=3, out_dir=tmp_path,
                  progress=False, verbose=False)
    assert "checkpoint of epoch 1" in str(err.value)
    state = train.load_checkpoint(tmp_path / "checkpoint.pt")
    assert len(state["history"]) == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_ema_and_tta_options_run_and_the_model_ends_with_the_scored_weights(splits, tmp_path):
    history, model, *_ = _run(splits, 2, "onecycle", ema_decay=0.9, tta=True, label_smoothing=0.1, out_dir=tmp_path)
    state = train.load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["ema"] is not None
    # fit hands back the averaged weights: predicting with the model reproduces the history's last test scores
    _, test_loader = _loaders(splits, n_train=256)
    log_probs, labels = train.predict(model, test_loader, torch.device("cpu"), tta=True)
    assert history[-1]["test_acc"] == pytest.approx(100 * (log_probs.argmax(1) == labels).float().mean().item())
    assert history[-1]["test_loss"] == pytest.approx(-log_probs[torch.arange(len(labels)), labels].mean().item(),
                                                     rel=1e-5)
    raw = {k: v for k, v in state["model"].items() if v.is_floating_point()}
    assert any(not torch.equal(model.state_dict()[k], v) for k, v in raw.items()), "still the raw weights"


class _PositionNet(nn.Module):
    """A toy classifier that sees where things are (a linear map of every pixel): each view scores differently."""

    def __init__(self, height: int, width: int):
        super().__init__()
        weights = torch.randn(10, 3 * height * width, generator=torch.Generator().manual_seed(0))
        self.register_buffer("weights", weights / math.sqrt(weights.shape[1]))

    def forward(self, x):
        return F.log_softmax(x.flatten(1) @ self.weights.T, dim=1)


def _moved(x: torch.Tensor, shift: int) -> torch.Tensor:
    """x moved ``shift`` pixels down-right (``shift`` < 0: up-left), mirrored at the border: written out pixel
    by pixel, the pixel at (i, j) comes from (i - shift, j - shift)."""
    def source(i: int, size: int) -> int:
        i -= shift
        return -i if i < 0 else 2 * (size - 1) - i if i >= size else i
    h, w = x.shape[-2:]
    rows, cols = torch.tensor([source(i, h) for i in range(h)]), torch.tensor([source(j, w) for j in range(w)])
    return x[:, :, rows][:, :, :, cols]


@pytest.mark.parametrize("height, width, shift", [(8, 8, 1), (6, 9, 2)])
def test_tta_averages_the_probabilities_of_the_flips_and_shifts_with_airbenchs_weights(height, width, shift):
    model, x = _PositionNet(height, width), torch.randn(5, 3, height, width)
    probs = lambda images: model(images).exp()  # noqa: E731
    flip = lambda images: torch.flip(images, dims=[3])  # noqa: E731
    down_right, up_left = _moved(x, shift), _moved(x, -shift)
    with torch.no_grad():
        assert torch.equal(train.tta_log_probs(model, x, flip=False), model(x))
        # flips alone: exactly the formula of the runs made before shifts existed
        assert torch.equal(train.tta_log_probs(model, x), torch.logaddexp(model(x), model(flip(x))) - math.log(2))
        # the unshifted pair weighs half, each shifted pair (the moved image and its mirror image) a quarter
        expected = (probs(x) / 4 + probs(flip(x)) / 4 + sum(probs(v) / 8 for v in
                                                            (down_right, up_left, flip(down_right), flip(up_left))))
        assert torch.allclose(train.tta_log_probs(model, x, shift=shift).exp(), expected, atol=1e-6)
        expected = probs(x) / 2 + probs(down_right) / 4 + probs(up_left) / 4
        assert torch.allclose(train.tta_log_probs(model, x, flip=False, shift=shift).exp(), expected, atol=1e-6)
        assert not torch.allclose(train.tta_log_probs(model, x, shift=shift), train.tta_log_probs(model, x),
                                  atol=1e-3)


def test_fit_scores_with_shift_tta_when_asked(splits):
    history, model, *_ = _run(splits, 1, tta=True, tta_shift=1)
    _, test_loader = _loaders(splits, n_train=256)
    log_probs, labels = train.predict(model, test_loader, torch.device("cpu"), tta=True, tta_shift=1)
    assert history[-1]["test_loss"] == pytest.approx(-log_probs[torch.arange(len(labels)), labels].mean().item(),
                                                     rel=1e-5)
    flip_only, _ = train.predict(model, test_loader, torch.device("cpu"), tta=True)
    assert (log_probs - flip_only).abs().max() > 1e-5  # the shifted views changed the scores (float eps ~2e-7)
    # tta=False scores each image once, whatever tta_shift says (--set tta=false switches all of it off)
    no_tta, _ = train.predict(model, test_loader, torch.device("cpu"), tta=False, tta_shift=1)
    with torch.no_grad():
        plain = torch.cat([model(x) for x, _ in test_loader])
    assert torch.allclose(no_tta, plain, atol=1e-6)


def test_weight_average_computes_what_torchs_averaged_model_computes():
    from torch.optim.swa_utils import AveragedModel

    def warmed_up_ema(averaged, current, num_averaged):  # torch's EMA, with the warm-up written out
        decay = min(0.9, (1 + num_averaged.item()) / (10 + num_averaged.item()))
        for a, c in zip(averaged, current):
            a.copy_(decay * a + (1 - decay) * c)

    torch.manual_seed(0)
    model = models.S8("bn")
    ours = train.make_ema(model, 0.9)
    torchs = AveragedModel(model, multi_avg_fn=warmed_up_ema, use_buffers=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):  # the first update copies, the later ones average
        F.cross_entropy(model(torch.randn(16, 3, 32, 32)), torch.randint(0, 10, (16,))).backward()
        optimizer.step()
        optimizer.zero_grad()
        ours.update_parameters(model)
        torchs.update_parameters(model)
    theirs = torchs.state_dict()
    assert ours.state_dict().keys() == theirs.keys()  # checkpoints keep their layout ("module.*", n_averaged)
    for key, value in ours.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, theirs[key], atol=1e-6), key
    assert int(ours.n_averaged) == 3 and not torch.equal(ours.module.features[0][0].weight, model.features[0][0].weight)


def test_weight_average_goes_on_averaging_after_a_reload():
    model = models.S8("gn")
    saved = train.make_ema(model, 0.5)
    saved.update_parameters(model)
    restored = train.make_ema(models.S8("gn"), 0.5)  # other initial weights
    restored.load_state_dict(saved.state_dict())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    before = restored.module.state_dict()["features.0.0.weight"].clone()
    restored.update_parameters(model)  # a reloaded average must average, not copy as a fresh one would
    decay = 2 / 11  # the warm-up's (1 + n) / (10 + n) after n = 1 update
    expected = decay * before + (1 - decay) * model.state_dict()["features.0.0.weight"]
    assert torch.allclose(restored.module.state_dict()["features.0.0.weight"], expected)
    with pytest.raises(ValueError, match="between 0 and 1"):
        train.make_ema(model, 1.0)


def test_weight_average_loaded_inside_a_larger_module_keeps_its_step_count():
    model = nn.Linear(2, 2)
    saved = nn.ModuleDict({"ema": train.make_ema(model, 0.99)})
    for _ in range(5):
        saved["ema"].update_parameters(model)
    restored = nn.ModuleDict({"ema": train.make_ema(nn.Linear(2, 2), 0.99)})
    restored.load_state_dict(saved.state_dict())
    assert restored["ema"].updates == 5 and restored["ema"].current_decay() == saved["ema"].current_decay()


def test_weight_average_forgets_the_first_weights_of_a_short_run():
    """300 steps at decay 0.999 (a 20-epoch run on the 4,068-image sample at batch 256): the untrained
    first weights must not dominate the average; a plain EMA would still give them 0.999 ** 299 = 74 %."""
    model = nn.Linear(1, 1, bias=False)
    ema = train.make_ema(model, 0.999)
    with torch.no_grad():
        model.weight.fill_(0.0)
        ema.update_parameters(model)  # the "untrained" weights
        model.weight.fill_(1.0)
        for _ in range(299):
            ema.update_parameters(model)  # the trained ones
    assert ema.module.weight.item() > 0.99
    assert ema.current_decay() < 0.999 and train.make_ema(model, 0.5).current_decay() == pytest.approx(0.1)


def test_a_resumed_run_with_a_weight_average_ends_like_an_uninterrupted_one(splits, tmp_path):
    full, full_model, *_ = _run(splits, 2, ema_decay=0.9, out_dir=tmp_path / "full")
    _run(splits, 1, ema_decay=0.9, out_dir=tmp_path / "part")
    resumed, resumed_model, *_ = _run(splits, 2, ema_decay=0.9, out_dir=tmp_path / "part", resume=True,
                                       global_seed=99)  # the RNG state must come from the checkpoint
    assert _metrics(resumed) == _metrics(full)  # the average went on from its saved weights and step count
    for key, value in full_model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[key], value), key


def test_an_interrupt_before_the_first_epoch_ends_claims_no_saved_epoch(splits, tmp_path, capsys):
    train_loader, test_loader = _loaders(splits, n_train=256)
    model = models.S8("bn")
    with pytest.raises(KeyboardInterrupt):
        train.fit(model, StopAfter(train_loader, 1), test_loader, torch.optim.SGD(model.parameters(), 0.01),
                  epochs=2, out_dir=tmp_path, progress=False, verbose=True)
    said = capsys.readouterr().out
    assert "interrupted during epoch 1; no epoch had completed, nothing is saved" in said
    assert not (tmp_path / "checkpoint.pt").exists()


def test_resume_refuses_a_checkpoint_saved_with_other_settings(splits, tmp_path):
    config = {"session": "s8", "recipe": {"lr": 0.05, "augment": "s8"}, "seed": 0}
    first, *_ = _run(splits, 1, out_dir=tmp_path, config=config)
    assert train.load_checkpoint(tmp_path / "checkpoint.pt")["config"] == config
    changed = {**config, "recipe": {"lr": 0.1, "augment": "s8"}}
    with pytest.raises(train.CheckpointMismatchError, match=r"recipe.lr: 0.05 -> 0.1"):
        _run(splits, 2, out_dir=tmp_path, resume=True, config=changed)
    resumed, *_ = _run(splits, 2, out_dir=tmp_path, resume=True, config=config)  # the same settings continue
    assert resumed[0] == first[0] and len(resumed) == 2
    assert train.config_changes(None, config) == [] and train.config_changes(config, None) == []
    assert train.config_changes({"seed": 0}, {"seed": 1, "norm": "bn"}) == ["norm: None -> 'bn'", "seed: 0 -> 1"]
    # a recipe field added to the code since the checkpoint was saved: it counts as its default, if one is given
    with_shift = {**config, "recipe": {**config["recipe"], "tta_shift": 0}}
    assert train.config_changes(config, with_shift) == ["recipe.tta_shift: None -> 0"]
    assert train.config_changes(config, with_shift, {"recipe": {"tta_shift": 0}}) == []
    with_shift["recipe"]["tta_shift"] = 1
    assert train.config_changes(config, with_shift, {"recipe": {"tta_shift": 0}}) == ["recipe.tta_shift: 0 -> 1"]


def test_resume_refuses_fewer_epochs_than_the_checkpoint_holds(splits, tmp_path):
    """A step-schedule run of 2 epochs resumed with epochs=1 would train nothing and hand back the 2-epoch history
    as if it were the run asked for: it is refused in one message, and the saved run is left as it was."""
    first, *_ = _run(splits, 2, out_dir=tmp_path)
    saved = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(train.CheckpointMismatchError, match="trained for 2 epochs, more than the 1 asked for") as e:
        _run(splits, 1, out_dir=tmp_path, resume=True)
    assert e.value.changes == ["epochs: 2 -> 1"]
    assert (tmp_path / "checkpoint.pt").read_bytes() == saved
    again, *_ = _run(splits, 2, out_dir=tmp_path, resume=True)  # as many as it holds: nothing left to train
    assert again == first


def test_crafted_checkpoint_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": Exploit(marker)}, path, pickle_protocol=2)
    with pytest.raises(ValueError, match="not a safe or valid checkpoint"):
        train.load_checkpoint(path)
    assert not marker.exists()
    pickle.loads(pickle.dumps(Exploit(marker)))  # the payload is real
    assert marker.exists()


def test_bad_arguments_are_explained(splits):
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), 0.1)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="epochs must be a positive integer"):
            train.fit(model, [], [], opt, epochs=bad)
    with pytest.raises(ValueError, match="needs the out_dir"):
        train.fit(model, [], [], opt, epochs=1, resume=True)
    with pytest.raises(ValueError, match="auto, cpu, cuda, mps"):
        train.get_device("tpu")
    assert train.get_device("cpu").type == "cpu" and train.get_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="learning rate must be a positive number"):
        recipes.get_recipe("s8", "seed", lr=-0.1)
    with pytest.raises(ValueError, match="seed, tuned"):
        recipes.get_recipe("s8", "fast")
    with pytest.raises(ValueError, match="s8 or s9"):
        recipes.get_recipe("s7")


def test_history_records_each_epochs_wall_time_and_resume_without_checkpoint_says_so(splits, tmp_path, capsys):
    train.set_seed(0)
    train_loader, test_loader = _loaders(splits, batch_size=16, n_train=256)  # 16 batches: enough for an estimate
    model = models.S8("bn")
    optimizer = recipes.make_optimizer(model, recipes.get_recipe("s8", "seed"))
    history = train.fit(model, train_loader, test_loader, optimizer, None, 1, "cpu", out_dir=tmp_path / "new",
                        resume=True, progress=False, verbose=True)
    out = capsys.readouterr().out
    assert f"no checkpoint in {tmp_path / 'new'}: starting a new run" in out
    assert list(history[0]) == list(train.HISTORY_KEYS) and 0 < history[0]["seconds"] < 600
    assert "estimate from the first" in out  # a long run says early how long it will take


def test_checkpoint_rng_states_load_onto_the_cpu_whatever_the_map_location(splits, tmp_path):
    _run(splits, 1, out_dir=tmp_path)
    state = train.load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["rng_cpu"].dtype == torch.uint8 and state["rng_cpu"].device.type == "cpu"
    # tests/test_gpu.py checks the same with the checkpoint loaded onto a GPU
    model = models.S8("bn")
    optimizer = recipes.make_optimizer(model, recipes.get_recipe("s8", "seed"))
    history = train._restore(state, model, optimizer, None, None)
    assert torch.equal(torch.get_rng_state(), state["rng_cpu"]) and len(history) == 1


def test_checkpoint_keeps_and_restores_an_apple_gpus_random_state(splits, tmp_path, monkeypatch):
    """On MPS, dropout draws from the MPS generator: a resumed run must get it back (checked here with a
    stand-in generator, as this machine has no Apple GPU)."""
    mps_state = {"now": torch.tensor([7, 7], dtype=torch.uint8)}
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.mps, "get_rng_state", lambda: mps_state["now"].clone())
    monkeypatch.setattr(torch.mps, "set_rng_state", lambda t: mps_state.update(now=t.clone()))
    _run(splits, 1, out_dir=tmp_path)
    state = train.load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["rng_mps"].tolist() == [7, 7]
    mps_state["now"] = torch.tensor([1, 2], dtype=torch.uint8)  # the generator moved on, as in another process
    model = models.S8("bn")
    train._restore(state, model, recipes.make_optimizer(model, recipes.get_recipe("s8", "seed")), None, None)
    assert mps_state["now"].tolist() == [7, 7]


def test_resume_keeps_this_machines_fused_sgd(splits, tmp_path):
    """A checkpoint of a run without fused SGD (a CPU run) resumed where SGD is fused (a GPU): the optimizer
    keeps its own implementation and takes the checkpoint's state (momentum buffers, lr)."""
    _run(splits, 1, out_dir=tmp_path)  # make_optimizer's default on the CPU: not fused
    state = train.load_checkpoint(tmp_path / "checkpoint.pt")
    assert not state["optimizer"]["param_groups"][0].get("fused")
    model = models.S8("bn")
    optimizer = recipes.make_optimizer(model, recipes.get_recipe("s8", "seed"), fused=True)  # CPU fused SGD: torch>=2.4
    train._restore(state, model, optimizer, None, None)
    assert optimizer.param_groups[0]["fused"] is True
    assert optimizer.param_groups[0]["lr"] == state["optimizer"]["param_groups"][0]["lr"]
    assert len(optimizer.state) == len(state["optimizer"]["state"]) > 0


def test_resumed_momentum_buffers_take_their_weights_memory_layout(splits, tmp_path):
    """Fused SGD on CUDA refuses a momentum buffer laid out unlike its weight, so a checkpoint saved by a run
    without channels-last weights must resume in a channels-last one with its buffers laid out anew."""
    _run(splits, 1, out_dir=tmp_path)
    state = train.load_checkpoint(tmp_path / "checkpoint.pt")
    saved = state["optimizer"]["state"]
    for entry in saved.values():  # as a run without channels-last would have saved them
        entry["momentum_buffer"] = entry["momentum_buffer"].contiguous()
    model = models.S8("bn").to(memory_format=torch.channels_last)
    optimizer = recipes.make_optimizer(model, recipes.get_recipe("s8", "seed"))
    train._restore(state, model, optimizer, None, None)
    params = list(model.parameters())
    assert any(not p.is_contiguous() for p in params)  # the case is there: channels-last conv weights
    for i, p in enumerate(params):
        buffer = optimizer.state[p]["momentum_buffer"]
        assert buffer.stride() == p.stride() and torch.equal(buffer, saved[i]["momentum_buffer"])


def test_amp_off_never_enters_autocast():
    # torch's autocast refuses a device type it does not support even with enabled=False (Apple's "mps"
    # before torch 2.5 did): with amp off, training and scoring must not ask it at all
    with train.bf16_autocast("meta", False):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with pytest.raises(RuntimeError, match="unsupported autocast device_type"):
        with torch.autocast("meta", dtype=torch.bfloat16, enabled=False):
            pass
    with train.bf16_autocast("cpu", True):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_bf16_autocast_is_on_by_default_only_where_the_gpu_has_bf16_in_hardware(monkeypatch):
    """Colab's T4 (compute capability 7.5) only emulates bf16, so autocast stays off there by default;
    an A100/H100 (8.0/9.0) gets it; a CPU never does."""
    for capability, expected in (((7, 5), False), ((8, 0), True), ((9, 0), True)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert train.bf16_is_native(torch.device("cuda")) is expected
    assert train.bf16_is_native(torch.device("cpu")) is False


def test_the_epoch_functions_take_the_device_by_name(splits):
    """fit took device="cpu" but evaluate, predict and train_one_epoch needed a torch.device: a student's
    train.evaluate(model, loader, "cpu") ended in "'str' object has no attribute 'type'"."""
    train_loader, test_loader = _loaders(splits, n_train=128)
    model = models.S8("bn")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loss, acc = train.train_one_epoch(model, train_loader, optimizer, "cpu", progress=False)
    assert math.isfinite(loss) and 0 <= acc <= 100
    assert train.evaluate(model, test_loader, "cpu") == train.evaluate(model, test_loader, torch.device("cpu"))

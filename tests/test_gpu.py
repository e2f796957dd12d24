"""CUDA-only checks: they skip on a machine without a GPU and run on the lent GPU before an issue closes
(``source .device/setup.sh && python -m pytest``)."""
import json

import pytest
import torch

from helpers import device_data, models, recipes, run, train

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _metrics(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


@cuda
def test_resume_on_cuda_continues_the_run(tmp_path, capsys):
    base = ["s8", "--smoke", "--out", str(tmp_path / "r"), "--no-progress", "--loader", "device", "--device", "cuda"]
    run.main(base + ["--epochs", "1"])
    run.main(base + ["--epochs", "2", "--resume"])  # used to end in "RNG state must be a torch.ByteTensor"
    history = json.loads((tmp_path / "r" / "history.json").read_text())
    assert "resumed from" in capsys.readouterr().out and [h["epoch"] for h in history] == [1, 2]


@cuda
@pytest.mark.parametrize("first, second", [("cuda", "cpu"), ("cpu", "cuda")])
def test_a_checkpoint_moves_between_gpu_and_cpu(tmp_path, capsys, first, second):
    base = ["s8", "--smoke", "--out", str(tmp_path / "r"), "--no-progress", "--loader", "albumentations",
            "--no-amp"]
    run.main(base + ["--epochs", "1", "--device", first])
    first_epoch = json.loads((tmp_path / "r" / "history.json").read_text())
    capsys.readouterr()
    run.main(base + ["--epochs", "2", "--resume", "--device", second])
    history = json.loads((tmp_path / "r" / "history.json").read_text())
    # epoch 1 comes from the checkpoint, its wall time included (a fresh start would have timed it anew)
    assert "resumed from" in capsys.readouterr().out
    assert len(history) == 2 and history[:1] == first_epoch


@cuda
def test_interrupted_and_resumed_equals_uninterrupted_on_cuda(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)  # the same kernels in both runs
    # fp32 (amp off): the two runs may differ by float rounding only, whatever bf16 would add
    common = dict(epochs=3, smoke=True, device="cuda", loader="device", amp=False, progress=False, verbose=False)
    full = run.train_course_net("s8", "bn", "seed", out=tmp_path / "full", **common).history
    part = run.train_course_net("s8", "bn", "seed", out=tmp_path / "part", **{**common, "epochs": 2}).history
    # the seed recipe's StepLR does not depend on the total, so a 2-epoch run can be continued to 3
    resumed = run.train_course_net("s8", "bn", "seed", out=tmp_path / "part", resume=True, **common).history
    # a real resume: epochs 1-2 come from the checkpoint, wall times included, and only epoch 3 is trained
    assert [h["epoch"] for h in resumed] == [1, 2, 3] and resumed[:2] == part
    for a, b in zip(_metrics(full), _metrics(resumed)):
        assert a["epoch"] == b["epoch"]
        for key in ("train_loss", "test_loss"):  # float rounding only: a resume that dropped the optimizer's
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-3)  # momentum or the RNG is ~3 % off (on a CPU)


@cuda
def test_device_loader_on_cuda_gives_static_channels_last_batches():
    images = torch.randint(0, 256, (1000, 32, 32, 3), dtype=torch.uint8).numpy()
    labels = torch.randint(0, 10, (1000,)).numpy()
    loader = device_data.DeviceLoader(images, labels, 128, device="cuda", channels_last=True,
                                      **device_data.PRESETS["s9"])
    batches = list(loader)
    assert len(batches) == 7 and {len(y) for _, y in batches} == {128}
    x, y = batches[0]
    assert x.is_cuda and y.is_cuda and x.is_contiguous(memory_format=torch.channels_last)


@cuda
def test_bf16_autocast_trains_and_the_figures_use_it(tmp_path, watch_autocast):
    if not train.bf16_is_native(torch.device("cuda")):
        pytest.skip("this GPU only emulates bf16, so autocast is off by default (train.bf16_is_native)")
    result = run.train_course_net("s9", recipe="tuned", epochs=1, smoke=True, device="cuda", progress=False,
                                  verbose=False, batch_size=64, out=tmp_path / "r")
    assert result.amp and result.config["loader"] == "device"
    x = next(iter(result.test_loader))[0]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        conv_out = result.model.blocks[0][0][0](x)
    assert conv_out.dtype == torch.bfloat16
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in result.history)
    entered = watch_autocast()
    paths = run.write_figures(result, tmp_path / "r", "s9")
    assert all(p.stat().st_size > 0 for p in paths)
    assert entered and set(entered) == {("cuda", True)}  # the figures' predictions ran under the run's autocast


@cuda
def test_fused_sgd_on_cuda():
    model = models.S8().cuda()
    opt = recipes.make_optimizer(model, recipes.get_recipe("s8", "tuned"))
    assert opt.defaults.get("fused") is True


@cuda
def test_bad_data_gives_one_line_on_cuda(tmp_path):
    from helpers import data
    folder = data.write_synthetic_cifar(tmp_path, 100, 50)
    (folder / "data_batch_1").write_bytes((folder / "data_batch_1").read_bytes()[:5000])
    with pytest.raises(SystemExit) as exit_:
        run.main(["s8", "--data-root", str(tmp_path), "--device", "cuda", "--out", str(tmp_path / "o")])
    message = str(exit_.value.code)
    assert message.startswith("error:") and "data_batch_1" in message and "\n" not in message


def _graph_pair(norm="bn", amp=False):
    """Two copies of the S8 net, one trained through CUDA graphs, one eagerly, from the same weights."""
    torch.manual_seed(0)
    # no dropout: capturing draws random numbers, so dropout masks would differ from the eager run's
    eager_model = models.build_model("s8", norm, 0.0).cuda().to(memory_format=torch.channels_last)
    graph_model = models.build_model("s8", norm, 0.0).cuda().to(memory_format=torch.channels_last)
    graph_model.load_state_dict(eager_model.state_dict())
    return (train.TrainingLoss(eager_model, 0.1, amp), train.TrainingLoss(graph_model, 0.1, amp, cuda_graph=True))


# tolerances of the graphed step against the eager one: float32 differs by cuDNN's kernel choice only; bfloat16
# (what the plan trains with) rounds each kernel's output to 8 bits of mantissa, and 4 steps at the recipe's lr
# of 0.2 on random labels amplify a flipped last bit to 0.4 in the outputs (a CPU stand-in), so under bf16 the
# steps take lr 0.02 (0.06 and 0.0065 in the same stand-in) and the tolerances are wider
GRAPH_TOLERANCE = {False: dict(lr=None, loss=1e-4, out=2e-3, weights=1e-3),
                   True: dict(lr=0.02, loss=2e-2, out=0.15, weights=3e-2)}


@cuda
@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize("norm", ["bn", "gn"])
def test_cuda_graph_step_computes_what_the_eager_step_computes(norm, amp):
    eager, graphed = _graph_pair(norm, amp)
    tol = GRAPH_TOLERANCE[amp]
    batches = [(torch.randn(64, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last),
                torch.randint(0, 10, (64,), device="cuda")) for _ in range(4)]
    recipe = recipes.get_recipe("s8", "tuned", **({"lr": tol["lr"]} if tol["lr"] else {}))
    optimizers = [recipes.make_optimizer(m.model, recipe) for m in (eager, graphed)]
    for x, y in batches:  # the first call captures; the optimiser's updates must reach the replays
        losses = []
        for loss_fn, opt in zip((eager, graphed), optimizers):
            opt.zero_grad(set_to_none=True)
            loss, log_probs = loss_fn.step(x, y)
            loss.backward()
            opt.step()
            losses.append((loss.item(), log_probs.clone()))
        assert losses[0][0] == pytest.approx(losses[1][0], rel=tol["loss"])  # fp32: a replay with stale weights fails this
        # per image, cuDNN may pick other kernels (and TF32) in the graph than eagerly: 4e-4 seen on an H200 (fp32)
        torch.testing.assert_close(losses[0][1], losses[1][1], atol=tol["out"], rtol=1e-3)
    assert graphed.graph_shape is not None and "forward" in vars(graphed)  # the graphs were used
    for a, b in zip(eager.model.state_dict().values(), graphed.model.state_dict().values()):
        torch.testing.assert_close(a.float(), b.float(), atol=tol["weights"], rtol=1e-3)  # weights and BN statistics, as
        # eager ones to the same kernel-choice tolerance as the outputs (a replay with stale weights: far off)
    x, y = batches[0][0][:10], batches[0][1][:10]  # another shape runs eagerly
    loss, _ = graphed.step(x, y)
    assert torch.isfinite(loss)


@cuda
@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])
def test_fit_with_cuda_graphs_trains_and_leaves_the_model_usable(tmp_path, monkeypatch, amp):
    replays = []  # every training batch that went through the captured graphs
    capture = train.TrainingLoss._capture

    def counted_capture(self, x, y):
        capture(self, x, y)
        graphed_forward = self.forward  # what make_graphed_callables put in place of the eager forward
        self.forward = lambda *args: replays.append(1) or graphed_forward(*args)

    monkeypatch.setattr(train.TrainingLoss, "_capture", counted_capture)
    # no dropout (whatever the tuned recipe says): capturing draws random numbers, so dropout masks would differ
    common = dict(epochs=2, smoke=True, device="cuda", loader="device", progress=False, verbose=False, amp=amp,
                  dropout=0.0)
    eager = run.train_course_net("s8", "bn", "tuned", **common)
    assert not replays
    graphed = run.train_course_net("s8", "bn", "tuned", cuda_graph=True, out=tmp_path / "g", **common)
    assert len(replays) == 2 * len(graphed.train_loader)  # every batch of both epochs: static shapes, no eager step
    for a, b in zip(eager.history, graphed.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=0.05 if amp else 0.02, abs=0.01)
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=0.05 if amp else 0.02, abs=0.01)
    model = graphed.model
    model.train()
    assert model(torch.randn(2, 3, 32, 32, device="cuda")).shape == (2, 10)  # any batch size still works
    assert json.loads((tmp_path / "g" / "run.json").read_text())["cuda_graph"] is True


@cuda
def test_cuda_graphs_refuse_the_albumentations_loader(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # if the check ever broke, the run would train into ./runs here, not in the repo
    with pytest.raises(SystemExit) as exit_:
        run.main(["s8", "--smoke", "--cuda-graph", "--loader", "albumentations", "--device", "cuda"])
    assert exit_.value.code == 2 and "CUDA graphs (--cuda-graph) need the device loader (--loader device)" in capsys.readouterr().err


@cuda
def test_the_batch_loop_never_waits_for_the_gpu():
    """Issue 14's "no host synchronisation inside the batch loop": an epoch of 6 batches makes Python wait for the
    GPU as often as one of 2 (only the end-of-epoch read-out waits), with the EMA, bf16 and fused SGD of a fast run."""
    import warnings

    def waits(n_batches: int) -> int:
        torch.manual_seed(0)
        images = torch.randint(0, 256, (32 * n_batches, 32, 32, 3), dtype=torch.uint8).numpy()
        labels = torch.randint(0, 10, (32 * n_batches,)).numpy()
        loader = device_data.DeviceLoader(images, labels, 32, device="cuda", channels_last=True,
                                          **device_data.PRESETS["s9"])
        model = train.prepare_model(models.S8("bn"), torch.device("cuda"))
        recipe = recipes.get_recipe("s8", "tuned", norm="bn", ema_decay=0.99)
        optimizer = recipes.make_optimizer(model, recipe)
        scheduler = recipes.make_scheduler(optimizer, recipe, 2, len(loader))
        ema, loss_fn = train.make_ema(model, 0.99), train.TrainingLoss(model, 0.1, amp=True)
        def epoch() -> None:
            train.train_one_epoch(model, loader, optimizer, torch.device("cuda"), scheduler=scheduler, ema=ema,
                                  amp=True, progress=False, loss_fn=loss_fn)

        epoch()  # the first epoch: cuDNN autotuning and lazy set-up may wait, once
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                epoch()
        finally:
            torch.cuda.set_sync_debug_mode(0)
        return sum("synchroniz" in str(w.message) for w in caught)

    torch.cuda.set_sync_debug_mode("warn")  # the detector itself: a read-back is reported
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.ones(1, device="cuda").item()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert any("synchroniz" in str(w.message) for w in caught)
    assert waits(6) == waits(2) > 0

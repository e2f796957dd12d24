# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Session 8 · Normalization: BatchNorm vs LayerNorm vs GroupNorm
#
# We train one small CNN on CIFAR-10 three times, once with each normalization layer, and
# compare BatchNorm, LayerNorm and GroupNorm. Then we compute each normalization by hand, on
# feature maps of the trained network, and check that we get what PyTorch's layers compute.
# (With the tuned recipe, the default, each normalization also trains with settings of its own,
# section 4; `RECIPE = "seed"` trains all three the same way, so that only the layer differs. The
# *seed document* is the assignment write-up this course was rebuilt from: its network, its
# training settings and its results.)
#
# 1. [Setup](#1.-Setup)
# 2. [Dataset](#2.-Dataset)
# 3. [Model and the three normalizations](#3.-Model-and-the-three-normalizations)
# 4. [Training](#4.-Training)
# 5. [Comparison](#5.-Comparison)
# 6. [Normalization by hand](#6.-Normalization-by-hand)
# 7. [BatchNorm depends on the batch](#7.-BatchNorm-depends-on-the-batch)
# 8. [Misclassified images](#8.-Misclassified-images)
#
# The code you could reuse lives in the repository's `helpers` package; this notebook calls it
# and shows the computations that matter. The outputs stored in this notebook come from the
# run that last executed it; section 4 prints its data, epochs, device and PyTorch version.
# Where that says "synthetic smoke-test images", they come from the test suite's one-epoch smoke
# run and its pictures and accuracies mean nothing. Run the notebook yourself to get your own.

# %% [markdown]
# ## 1. Setup
#
# The first cell makes the `helpers` package importable. Locally it finds the repository folder
# above this notebook. On Google Colab it clones the repository into `/content/cifar10-course`
# (a re-run pulls the latest version) and installs the two packages Colab lacks.
#
# The settings cell (`EPOCHS`, `RECIPE`, `SEED`, `LOADER`, `DATA_ROOT`) holds every setting.
# `DATA_ROOT` is where CIFAR-10 is read from, the same folder the command line uses:
# `$CIFAR10_ROOT` if you set it, else the repository's `data/` folder (CIFAR-10 is downloaded
# there on first use). The tests set `SMOKE_TEST=1`: the notebook then trains for one epoch on
# tiny synthetic images in the CIFAR-10 file format.

# %%
# Setup: make the course's `helpers` package importable.
# Locally the repository is a folder above this notebook; on Colab we clone it (a re-run pulls).
import os
import subprocess
import sys
from pathlib import Path

REPO_URL = "https://github.com/OWNER/cifar10-course"  # set by: python notebooks/set_repo_url.py URL
COLAB_DIR = Path("/content/cifar10-course")             # where the repository goes on Colab

try:
    import google.colab  # noqa: F401  (exists only on Colab)
    ON_COLAB = True
except ImportError:
    ON_COLAB = False

if ON_COLAB:
    if (COLAB_DIR / ".git").is_dir():  # cloned by an earlier run: update it
        pull = subprocess.run(["git", "-C", str(COLAB_DIR), "pull", "--ff-only", "-q"], capture_output=True, text=True)
        if pull.returncode != 0:
            print(f"Could not update {COLAB_DIR} (git pull failed); using it as it is.")
    elif not (COLAB_DIR / "helpers").is_dir():  # neither cloned nor uploaded yet
        if "/OWNER/" in REPO_URL:
            raise RuntimeError(
                "REPO_URL still holds the OWNER placeholder: run `python notebooks/set_repo_url.py "
                f"https://github.com/<account>/<repository>` in the repository (or edit REPO_URL in this "
                f"cell), or upload the repository folder to {COLAB_DIR}.")
        clone = subprocess.run(["git", "clone", "-q", "--depth", "1", REPO_URL, str(COLAB_DIR)],
                               capture_output=True, text=True)
        if clone.returncode != 0:
            reason = (clone.stderr.strip().splitlines() or ["git failed"])[-1]
            raise RuntimeError(f"Could not clone {REPO_URL} ({reason}): correct REPO_URL in this cell, "
                               f"or upload the repository folder to {COLAB_DIR}.")
    # torch, torchvision, numpy, matplotlib and tqdm come with Colab
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "torchinfo>=1.8",
                          "albumentations>=2.0.5,<2.1"], capture_output=True, text=True)
    if pip.returncode != 0:
        reason = (pip.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise RuntimeError(f"Could not install torchinfo and albumentations ({reason}).")
    REPO_DIR = COLAB_DIR
    os.chdir(REPO_DIR)
else:
    REPO_DIR = next((p for p in (Path.cwd(), *Path.cwd().parents) if (p / "helpers").is_dir()), None)
    if REPO_DIR is None:
        raise RuntimeError("helpers/ not found: open this notebook from the course repository's notebooks/ folder.")
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

# %% tags=["nbval-ignore-output"]
# %matplotlib inline
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no online version check

import copy
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from torch import nn

from helpers import data, models, plots, recipes, rf, run, summary, train

# %%
SMOKE = os.environ.get("SMOKE_TEST") == "1"  # the tests: tiny synthetic data, one epoch
EPOCHS = 1 if SMOKE else 20  # on a CPU set 2 first: an epoch there takes minutes, on a GPU seconds
RECIPE = "tuned"   # "tuned": the improved recipe; "seed": the seed document's (section 4)
SEED = 1
LOADER = "auto"    # "auto", "albumentations" or "device": how training batches are made (section 4)
DATA_ROOT = os.environ.get("CIFAR10_ROOT") or str(REPO_DIR / "data")  # holds cifar-10-batches-py/

if SMOKE:  # synthetic images like the ones train_course_net(smoke=True) trains on
    DATA_ROOT = str(data.write_synthetic_cifar(tempfile.mkdtemp(), n_train=512, n_test=256, seed=SEED).parent)

# %% [markdown]
# ## 2. Dataset
#
# CIFAR-10 holds 32×32 RGB images of 10 classes. `helpers.data.load_cifar10` reads the python
# version of the files with a restricted unpickler (a crafted file cannot run code) and checks
# their structure. If the files are missing it downloads them into `DATA_ROOT`.

# %% tags=["nbval-ignore-output"]
try:
    train_split = data.load_cifar10(DATA_ROOT, train=True)
    test_split = data.load_cifar10(DATA_ROOT, train=False)
except data.CifarDataError:
    raise RuntimeError(
        f"No usable CIFAR-10 under DATA_ROOT = '{DATA_ROOT}' and it could not be downloaded: put "
        "cifar-10-python.tar.gz or the cifar-10-batches-py/ folder there, or set DATA_ROOT in the "
        "settings cell to the folder that holds it.") from None
classes = train_split.classes
if SMOKE:
    print("SMOKE TEST: synthetic images and one epoch; the pictures and accuracies below mean nothing")
print(f"train: {len(train_split):,} images of shape {train_split.images.shape[1:]}, {train_split.images.dtype}")
print(f"test:  {len(test_split):,} images")
print(f"{'class':<12}{'train':>7}{'test':>7}")
for name, n_train, n_test in zip(classes, np.bincount(train_split.labels, minlength=10),
                                 np.bincount(test_split.labels, minlength=10)):
    print(f"{name:<12}{n_train:>7}{n_test:>7}")

# %% [markdown]
# The classes are equally common (exactly so in the full CIFAR-10), so plain accuracy is a fair
# summary. Some training images with their labels:

# %% tags=["nbval-ignore-output"]
plots.show_images(train_split.images[:32], train_split.labels[:32], classes);

# %% [markdown]
# ### Mean and standard deviation
#
# The inputs are normalized per colour channel: subtract the channel's mean, divide by its
# standard deviation, both taken over **all pixels of all training images** (scaled to [0, 1]).

# %% tags=["nbval-ignore-output"]
mean, std = data.mean_std(train_split.images)  # streams over the images, sums in float64
print("mean over all pixels:   ", tuple(round(m, 4) for m in mean))
print("std over all pixels:    ", tuple(round(s, 4) for s in std))

# the common mistake: the average of the per-image standard deviations (in chunks, to spare memory)
per_image_stds = [(chunk.reshape(len(chunk), -1, 3) / 255.0).std(axis=1)  # one std per image and channel
                  for chunk in np.array_split(train_split.images, 20)]
per_image_std = np.concatenate(per_image_stds).mean(axis=0)
print("mean of per-image stds: ", tuple(round(float(s), 4) for s in per_image_std))
print()
print("full CIFAR-10 training set, std over all pixels (helpers.data.CIFAR10_STD):", data.CIFAR10_STD)
print("the often-copied std, a mean of per-image stds:                           ", (0.2023, 0.1994, 0.2010))

# %% [markdown]
# The often-copied std (the last line) is a *mean of per-image* standard deviations, like the
# third line. It only measures how pixels vary *inside* each image and misses how much images
# differ *from each other* (a dark image next to a bright one), so it is too small. Training
# normalizes with the statistics over all pixels of the data it trains on.
#
# The second line and `CIFAR10_STD` measure the same thing. If they differ in the third decimal,
# your files are not the official ones: a JPEG-compressed copy of CIFAR-10, for example, is a
# little smoother, so its pixels vary a little less, and a sample of a few thousand images reads
# a little higher or lower by chance. (The outputs stored with this notebook come from the
# course's JPEG copy, which is why its second line reads lower: the provenance line in section 4
# says "not the official files".)
#
# ### Augmentation
#
# The recipe decides the augmentation; each row is one image and ten random draws of it. This is
# the BatchNorm network's recipe; the tuned LayerNorm and GroupNorm recipes may augment
# differently (each run prints its recipe in section 4). `crop-flip` pads the image by 2 pixels
# (mirroring its border), cuts a random 32×32 window out of it, and mirrors it left to right half
# the time; `flip` only mirrors.

# %% tags=["nbval-ignore-output"]
recipe = recipes.get_recipe("s8", RECIPE)
augment = data.train_transforms(recipe.augment, mean, std)
print(f"recipe {RECIPE!r}, augmentation {recipe.augment!r}:",
      ", ".join(f"{type(t).__name__}(p={t.p})" for t in augment.transforms))
plots.show_image_rows({f"{classes[train_split.labels[i]]} #{i}":
                       data.augment_examples(train_split.images[i], augment, n=10, seed=100 * i, mean=mean, std=std)
                       for i in range(4)});

# %% [markdown]
# ## 3. Model and the three normalizations
#
# A squeeze-and-expand CNN, in the seed document's names `C1 C2 c3 P1 C3 C4 C5 c6 P2 C7 C8 C9 GAP
# c10`, where `C` is a 3×3 convolution block (conv → norm → ReLU → dropout), `c` a 1×1 block that
# squeezes the channels, `P` a 2×2 max-pool, `GAP` global average pooling and `c10` a 1×1
# convolution to the 10 classes, followed by log-softmax. (Each letter is numbered on its own,
# so `c3` and `C3` are different layers.) The last two 3×3 convolutions, C8 and C9, have no
# padding, so the 8×8 maps shrink to 6×6 and 4×4 before the average pooling. `models.S8(norm)` builds it with `norm` = `"bn"`, `"ln"` or
# `"gn"`. The summary (from `helpers.summary`, built on torchinfo) lists every layer with its
# output shape. (torchinfo 1.8.0 labels its multiply-add count "(Units.MEGABYTES)", a known bug
# of its own: read it as millions of multiply-adds per image.)

# %% tags=["nbval-ignore-output"]
print(summary.model_summary(models.S8("bn")))

# %%
NORMS = {"BN": "bn", "LN": "ln", "GN": "gn"}
for label, norm in NORMS.items():
    n_params = models.count_parameters(models.S8(norm))
    print(f"{label}: {n_params:,} trainable parameters")
    assert n_params == 46_064


# %% [markdown]
# The three networks have exactly the same number of parameters: every normalization layer
# learns a scale γ and a shift β per channel, whichever values it takes its statistics from.
#
# ### Three ways to normalize
#
# A batch of feature maps has the shape **(N, C, H, W)**: images, channels, height, width. A
# normalization layer subtracts a mean μ, divides by a standard deviation √(σ² + ε), then
# applies the learned γ and β. The three layers differ only in **which values share one μ and
# σ²**. In the figure, each cube is a batch with the H and W axes flattened into one; the blue
# block is one set of values that share a mean and a variance.
#
# | layer | statistics over the axes | one (μ, σ²) per | depends on the batch? |
# |---|---|---|---|
# | BatchNorm `nn.BatchNorm2d(C)` | N, H, W | channel | yes, in training mode |
# | LayerNorm `nn.GroupNorm(1, C)` | C, H, W | image | no |
# | GroupNorm `nn.GroupNorm(G, C)`, here G = 2 | C/G, H, W | image and group of channels | no |
#
# We build LayerNorm as `GroupNorm(1, C)`, which keeps one γ and β per channel;
# `nn.LayerNorm([C, H, W])` would learn one per value (C·H·W of each) and tie the network to one
# image size. GroupNorm with G = C would be InstanceNorm.

# %%
def draw_norm_axes(n=6, c=6, hw=4, groups=2):
    """One cube per normalization: axes N, C and H*W; the values normalized together are blue."""
    shaded = {  # (image, channel) -> is it in the highlighted set?
        "BatchNorm: one channel,\nall images and positions": lambda i, j: j == 0,
        "LayerNorm: one image,\nall channels and positions": lambda i, j: i == n - 1,
        f"GroupNorm ({groups} groups): one image,\none group of channels": lambda i, j: i == n - 1 and j < c // groups,
    }
    fig = plt.figure(figsize=(13, 4.4))
    for k, (title, in_set) in enumerate(shaded.items(), start=1):
        ax = fig.add_subplot(1, 3, k, projection="3d")
        colours = np.empty((n, c, hw), dtype=object)
        for i in range(n):
            for j in range(c):
                colours[i, j, :] = "#4a7fc1" if in_set(i, j) else "#e8e8e8"
        ax.voxels(np.ones((n, c, hw), dtype=bool), facecolors=colours, edgecolor="#555555",
                  linewidth=0.4, shade=False)
        ax.set_xlabel("N (images)")
        ax.set_ylabel("C (channels)")
        ax.text(-0.3, 0, hw / 2, "H·W", ha="right", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_zticks([])
        ax.set_box_aspect((n, c, hw))
        ax.view_init(elev=20, azim=-55)
        ax.set_title(title, fontsize=10)
    return fig


draw_norm_axes()
plt.show()

# %% [markdown]
# ### Receptive field
#
# `helpers.rf.rf_table` follows the layers the model runs. Each convolution or pooling layer adds
# `(k − 1) · jump` pixels to the receptive field, where `jump` is the distance between
# neighbouring pixels of the layer's *input*, counted in image pixels. The table's `jump` column
# is the jump after each layer, so a layer's own step uses the row above it: the first 2×2
# max-pool adds (2 − 1) · 1 = 1 pixel, and the jump doubles behind every max-pool.

# %% tags=["nbval-ignore-output"]
display(Markdown(rf.format_rf_table(rf.rf_table(models.S8("bn")))))

# %%
print("receptive field before global average pooling:", rf.receptive_field(models.S8("bn")))
assert rf.receptive_field(models.S8("bn")) == 44

# %% [markdown]
# Each output of the last 3×3 convolution sees a 44×44 window: more than the whole 32×32 image.
# The last convolution of all, the 1×1 `head` after the global average pooling, keeps that
# number (in the table and the line above) because `helpers.rf` counts sliding windows only and
# the pooling is not one: it averages every position, so the classifier sees the whole image in
# any case. The receptive field is the course's measure of what each position of the last
# feature map can see.
#
# ## 4. Training
#
# One function, `helpers.run.train_course_net`, wires everything together: it picks the recipe
# (`helpers.recipes`: optimizer, learning-rate schedule, augmentation, dropout, test-time
# augmentation), loads the data from `DATA_ROOT`, builds the network and trains it with
# `helpers.train.fit`, returning the model, the history (one row of metrics per epoch) and what
# it used. The command line (`python -m helpers.run s8 --norm gn`) calls the same function.
#
# **The recipe.** With `RECIPE = "tuned"`, training uses a OneCycle schedule fitted to the
# epoch budget, and each normalization gets its own peak learning rate, batch size,
# augmentation, weight decay and label smoothing (and, where the tuning moved them, its own
# warm-up share, annealing shape and decay of the biases), chosen on a validation split (the
# table in section 5 shows the main ones, and each run prints its whole recipe; the tuning runs are in
# the repository's `doc/tuning.md`). So the comparison is of each normalization at its best,
# not of the layer alone.
# `RECIPE = "seed"` trains as the seed document did, the same way for all three. The tuned
# recipes also score the test images with **test-time augmentation** (TTA): the network sees
# each test image and its mirror image, and, with the recipe's `tta_shift` above 0, copies of
# both moved by that many pixels; the predicted probabilities are averaged (the unshifted pair
# and the shifted copies weigh half each). Each run prints its recipe.
#
# The terms, briefly: **OneCycle** raises the learning rate from a tenth of its peak to the peak
# over the first `pct_start` of the steps (the *warm-up share*), then lowers it to nearly 0,
# along a cosine or a straight line (`anneal`). **Nesterov momentum** takes each step from where
# the momentum is about to carry the weights, rather than from where they are. **Weight decay**
# pulls every weight a little towards 0 at each step (`bias_decay=False`: not the biases and the
# norm layers' γ and β). **Label smoothing** trains towards 0.9 on the true class and spreads 0.1
# over all ten classes, instead of 1 and 0s. The printed recipe lists every field:
# `dropout=None` means the network's own default, and `step_size`, `gamma`, `patience` and
# `threshold` belong to the other schedules (unused under OneCycle).
#
# **The loader.** `LOADER = "auto"` picks `"device"` on a CUDA GPU: `helpers.device_data`
# keeps the whole dataset in GPU memory and augments whole batches there, because a few CPU
# workers running albumentations image by image cannot keep a GPU busy. Everywhere else it picks
# `"albumentations"`: the DataLoader path of section 2, one image at a time on the CPU. Both
# apply the same transforms with the same probabilities, though not pixel for pixel the same: the
# seed recipe's rotation fills the corners with black in albumentations and with reflected
# pixels on the device. On a GPU
# with bfloat16 in hardware (A100, H100 and newer; not Colab's T4) the run also computes in
# bfloat16 (autocast), which is faster and usually about as accurate (this course has not
# measured the difference). Each run starts from the same seed; with the seed recipe, which is
# the same for all three, the networks also see the same batches.

# %% tags=["nbval-ignore-output"]
results = {}
results["BN"] = run.train_course_net("s8", norm="bn", recipe=RECIPE, epochs=EPOCHS, data_root=DATA_ROOT,
                                     seed=SEED, device="auto", loader=LOADER, smoke=SMOKE, progress=False)
print(results["BN"].recipe)

# %% tags=["nbval-ignore-output"]
results["LN"] = run.train_course_net("s8", norm="ln", recipe=RECIPE, epochs=EPOCHS, data_root=DATA_ROOT,
                                     seed=SEED, device="auto", loader=LOADER, smoke=SMOKE, progress=False)
print(results["LN"].recipe)

# %% tags=["nbval-ignore-output"]
results["GN"] = run.train_course_net("s8", norm="gn", recipe=RECIPE, epochs=EPOCHS, data_root=DATA_ROOT,
                                     seed=SEED, device="auto", loader=LOADER, smoke=SMOKE, progress=False)
print(results["GN"].recipe)

# %% [markdown]
# The run that produced the outputs in this notebook:

# %% tags=["nbval-ignore-output"]
result = results["BN"]
source = ("synthetic smoke-test images (SMOKE_TEST=1)" if SMOKE
          else data.describe_files(DATA_ROOT, relative_to=REPO_DIR))  # the folder, and whether the files are official
print(f"data:    {len(result.train_split):,} training and {len(result.test_split):,} test images, {source}")
print(f"epochs:  {EPOCHS} per normalization, recipe {RECIPE!r}, seed {SEED}")
print(f"device:  {run.hardware_name(result.device)}, loader {result.config['loader']!r}, "
      f"bfloat16 autocast {'on' if result.amp else 'off'}")
print(f"PyTorch: {torch.__version__}")

# %% [markdown]
# ## 5. Comparison
#
# Loss and accuracy per epoch: one colour per normalization, training dashed, test solid.

# %% tags=["nbval-ignore-output"]
histories = {label: result.history for label, result in results.items()}
plots.plot_history(histories, title="S8: BatchNorm vs LayerNorm vs GroupNorm");

# %% tags=["nbval-ignore-output"]
plots.plot_lr(histories);

# %% tags=["nbval-ignore-output"]
rows = ["| norm | peak lr | batch | schedule | weight decay | augmentation | label smoothing | final test acc "
        "| final train acc | best test acc (epoch; chosen on the test set) | parameters |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
for label, result in results.items():
    best, last, r = train.best_epoch(result.history), result.history[-1], result.recipe
    schedule = (f"OneCycle: {r.pct_start:.0%} warm-up, {r.anneal} fall" if r.schedule == "onecycle"
                else f"step: x{r.gamma:g} every {r.step_size} epochs" if r.schedule == "step" else r.schedule)
    decay = f"{r.weight_decay:g}" + ("" if r.bias_decay else " (not on biases or norm scales)")
    rows.append(f"| {label} | {r.lr:g} | {r.batch_size} | {schedule} | {decay} | {r.augment} | {r.label_smoothing:g} "
                f"| {last['test_acc']:.2f} % | {last['train_acc']:.2f} % "
                f"| {best['test_acc']:.2f} % ({best['epoch']}) | {models.count_parameters(result.model):,} |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# **Reading the table and the curves.**
#
# * Compare the final test accuracies first: that is how well each network does on images it
#   never trained on. A change of seed alone moves a single run a little, so small
#   differences between rows say little.
# * The best-epoch column is picked by looking at the test images, so it flatters each network:
#   a fair report gives the final epoch (or picks the epoch on a validation split).
# * Then compare each row's training and test accuracy. Training accuracy well above test
#   accuracy means the network **overfits** (it learns the training images rather than the
#   classes); both low and close together means it **underfits** (it has not learned enough
#   yet, and less regularization or a better learning rate would help).
# * In the curves, look at the test loss while the learning rate is high (around the peak of
#   the learning-rate plot above). At test time BatchNorm normalizes with running averages of the batch
#   statistics, which lag behind while the weights still change fast, so its test loss can
#   jump from one epoch to the next. LayerNorm and GroupNorm use each image's own statistics in
#   training and testing alike; their test loss wobbles too at a high learning rate, for the
#   usual reason (large steps), but not for this one.
# * Do not compare the loss levels of a run with label smoothing with those of a run without it
#   (each run prints its recipe, `label_smoothing` among its fields): label smoothing aims at
#   less confident predictions and so raises the plotted loss, which need not cost accuracy.
# * Training accuracy can end up *below* test accuracy. It is measured during the epoch, on
#   augmented images, while the weights still change; test accuracy is measured afterwards, on
#   clean images (and with test-time augmentation in the tuned recipe).
# * The first columns show what else differs between the rows under the tuned recipe: the
#   peak learning rate together with the batch size (a smaller batch makes more steps per
#   epoch, and each norm's learning rate was tuned for its batch size), the schedule's warm-up
#   share and shape, the weight decay, the augmentation and the label smoothing. Part of a gap
#   between two rows may come from these;
#   `RECIPE = "seed"` removes them.

# %% [markdown]
# ## 6. Normalization by hand
#
# Each layer outputs y = γ · (x − μ) / √(σ² + ε) + β, with μ and σ² taken over the axes in the
# table of section 3. We compute all three on real feature maps: the output of the first
# convolution of the trained BatchNorm network on 128 test images.

# %%
test_images, _ = next(iter(results["BN"].test_loader))  # one batch of normalized test images
test_images = test_images[:128].float().cpu().contiguous()
first_conv = copy.deepcopy(results["BN"].model.features[0][0]).float().cpu()  # C1's convolution
with torch.no_grad():
    x = first_conv(test_images).contiguous()
N, C, H, W = x.shape
eps = 1e-5  # keeps the division safe; PyTorch's layers use the same default
print("feature maps x:", tuple(x.shape), "= (N, C, H, W)")

# %%
# BatchNorm: one mean and variance per channel, over the images and all positions (axes N, H, W)
mu = x.mean(dim=(0, 2, 3), keepdim=True)                  # shape (1, C, 1, 1)
var = x.var(dim=(0, 2, 3), keepdim=True, unbiased=False)  # divides by N*H*W, as the layers do
bn_by_hand = (x - mu) / torch.sqrt(var + eps)
print("BatchNorm: mu", tuple(mu.shape), "-> one per channel")

# LayerNorm: one mean and variance per image, over its channels and positions (axes C, H, W)
mu = x.mean(dim=(1, 2, 3), keepdim=True)                  # shape (N, 1, 1, 1)
var = x.var(dim=(1, 2, 3), keepdim=True, unbiased=False)
ln_by_hand = (x - mu) / torch.sqrt(var + eps)
print("LayerNorm: mu", tuple(mu.shape), "-> one per image")

# GroupNorm: split the C channels into G groups of C/G, then normalize each group of each image
G = 2
groups = x.reshape(N, G, C // G, H, W)
mu = groups.mean(dim=(2, 3, 4), keepdim=True)             # shape (N, G, 1, 1, 1)
var = groups.var(dim=(2, 3, 4), keepdim=True, unbiased=False)
gn_by_hand = ((groups - mu) / torch.sqrt(var + eps)).reshape(N, C, H, W)
print("GroupNorm: mu", tuple(mu.shape), "-> one per image and group")

# %% [markdown]
# Now the same with PyTorch's layers. A new layer starts with γ = 1 and β = 0, so its output is
# exactly the normalized x. `nn.BatchNorm2d` in training mode uses the statistics of the batch
# it is given, as we did. The last line takes the trained network's own BatchNorm layer, whose
# γ and β were learned, and applies them to our result: it scales by γ and shifts by β.

# %%
trained_bn = copy.deepcopy(results["BN"].model.features[0][1]).float().cpu().train()
gamma, beta = trained_bn.weight.view(1, C, 1, 1), trained_bn.bias.view(1, C, 1, 1)
checks = {
    f"BatchNorm == nn.BatchNorm2d({C}), training mode": (bn_by_hand, nn.BatchNorm2d(C).train()),
    f"LayerNorm == nn.GroupNorm(1, {C})": (ln_by_hand, nn.GroupNorm(1, C)),
    f"GroupNorm == nn.GroupNorm({G}, {C})": (gn_by_hand, nn.GroupNorm(G, C)),
    "gamma * BatchNorm + beta == the trained BatchNorm layer": (gamma * bn_by_hand + beta, trained_bn),
}
for name, (by_hand, layer) in checks.items():
    with torch.no_grad():
        expected = layer(x)
    same = torch.allclose(by_hand, expected, atol=1e-5)
    print(f"{name:<56} {same}  (max abs difference {(by_hand - expected).abs().max().item():.1e})")


# %% [markdown]
# That was BatchNorm in training mode. In eval mode (`model.eval()`, section 7) it does not use
# the batch's statistics: it uses `running_mean` and `running_var`, averages of the batch
# statistics that the layer kept while training (each training batch moves them by a fraction,
# the layer's `momentum`, 0.1 by default). One detail: PyTorch keeps the running variance
# unbiased (divided by n − 1) while it normalizes a training batch with the biased one (divided
# by n), as we did above. By hand, with the trained layer's running averages (a fresh copy: the
# check above ran our copy in training mode, and that moved its running averages towards this
# batch's statistics):

# %%
trained_bn = copy.deepcopy(results["BN"].model.features[0][1]).float().cpu().eval()  # eval: running averages
running_mean = trained_bn.running_mean.view(1, C, 1, 1)
running_var = trained_bn.running_var.view(1, C, 1, 1)
gamma, beta = trained_bn.weight.view(1, C, 1, 1), trained_bn.bias.view(1, C, 1, 1)
with torch.no_grad():
    bn_eval_by_hand = gamma * (x - running_mean) / torch.sqrt(running_var + eps) + beta
    expected = trained_bn(x)
same = torch.allclose(bn_eval_by_hand, expected, atol=1e-5)
print(f"{'eval mode: gamma * (x - running_mean) / sqrt(running_var + eps) + beta == the trained layer':<91} "
      f"{same}  (max abs difference {(bn_eval_by_hand - expected).abs().max().item():.1e})")


# %% [markdown]
# ## 7. BatchNorm depends on the batch
#
# In training mode BatchNorm normalizes with the statistics of the current batch, so an image's
# output depends on the other images in its batch. In eval mode (`model.eval()`) it uses the
# running averages collected during training instead, so each image's output is its own; that
# is why a network is switched to eval mode before testing. LayerNorm and GroupNorm take their
# statistics from each image alone: their output never depends on the batch.
#
# We feed the same test image once in a batch of 2 and once in a batch of 128 and compare its
# 10 output log-probabilities.

# %%
def output_of_first_image(model, batch, norm_training_mode):
    """The model's output for batch[0]; its normalization layers in training mode if asked
    (everything else, dropout included, in eval mode)."""
    model = copy.deepcopy(model).float().cpu().eval()  # a copy: the running averages stay as trained
    for layer in model.modules():
        if isinstance(layer, (nn.BatchNorm2d, nn.GroupNorm)):  # LayerNorm is nn.GroupNorm(1, C) here
            layer.train(norm_training_mode)
    with torch.no_grad():
        return model(batch)[0]


for label in ("BN", "LN", "GN"):
    model = results[label].model
    for norm_training_mode in (True, False):
        in_batch_of_2 = output_of_first_image(model, test_images[:2], norm_training_mode)
        in_batch_of_128 = output_of_first_image(model, test_images[:128], norm_training_mode)
        same = torch.allclose(in_batch_of_2, in_batch_of_128, atol=1e-5)
        mode = "training mode" if norm_training_mode else "eval mode"
        print(f"{label}, {mode:<13}: same output in a batch of 2 and of 128? {same!s:<5} "
              f"(max abs difference {(in_batch_of_2 - in_batch_of_128).abs().max().item():.1e})")

# %% [markdown]
# With small batches (a batch of 2 here) BatchNorm's statistics are noisy, and training suffers
# from it; LayerNorm and GroupNorm work the same with any batch size, which is why they are used
# where batches must be small (large images or videos, long sequences). LayerNorm is also the
# norm of transformers for another reason: in a batch of sequences of different lengths, padded
# to one length, statistics over the batch would mix in the padding. A transformer's LayerNorm
# normalizes each token on its own, over its channels only (for a CNN that would be one μ and
# σ² per image *and position*, over C), so no token's statistics see another token, padding
# included. Ours, `GroupNorm(1, C)`, takes all positions of an image together.
#
# ## 8. Misclassified images
#
# `helpers.run.predict_test` returns the log-probabilities of the whole test set, scored as the
# history scored it (with the recipe's test-time augmentation, if it uses one), and
# `helpers.train.misclassified` the first wrong predictions in test-set order, titled
# "true -> predicted".

# %% tags=["nbval-ignore-output"]
for label, result in results.items():
    log_probs, labels = run.predict_test(result)
    wrong = train.misclassified(log_probs, labels, n=10)
    plots.show_misclassified(result.test_split.images[[i for i, _, _ in wrong]], [t for _, t, _ in wrong],
                             [p for _, _, p in wrong], classes,
                             title=f"{label}: first 10 misclassified test images (true -> predicted)")

# %% [markdown]
# Look for images that all three networks get wrong, and for mistakes that stay within the
# animals or within the vehicles (such as cat and dog, or automobile and truck): those classes
# look alike at 32×32 pixels.
#
# ## Learnings
#
# * A normalization layer is a mean and a variance over some axes of (N, C, H, W), then a
#   learned scale and shift: BatchNorm over N, H, W; LayerNorm over C, H, W; GroupNorm over
#   H, W and a group of channels. Section 6 computed each by hand and got PyTorch's result.
# * BatchNorm's output depends on the batch in training mode and uses running averages in eval
#   mode (section 7); LayerNorm and GroupNorm behave the same in both modes and for any batch
#   size.
# * The three layers cost the same parameters (46,064 for this network) but do not train the
#   same: compare them with the recipe suited to each (the table in section 5).

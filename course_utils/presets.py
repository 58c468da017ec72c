"""Presets: the same lesson at three sizes.

* ``smoke``: for CI; a whole notebook in well under a minute on 2 CPU cores, every cell still real.
* ``cpu``: a learner's laptop; at most 10 minutes of training on 2 cores, results a person recognises.
* ``gpu``: the source recipe or better (lesson 1: UNet2DModel blocks (32, 64, 64) with attention, batch 128,
  10 epochs).

Introduced in lesson 1.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import torch

PRESET_NAMES = ("smoke", "cpu", "gpu")

_D, _A, _U, _AU = "DownBlock2D", "AttnDownBlock2D", "UpBlock2D", "AttnUpBlock2D"

_CLASS_CONCAT = {
    "smoke": {
        "model": dict(class_emb_size=4, block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4,
                      down_block_types=(_D, _D, _A), up_block_types=(_AU, _U, _U), attention_head_dim=8),
        "train": dict(max_steps=8, batch_size=32, learning_rate=2e-3, warmup_steps=2, lr_schedule="cosine",
                      ema_decay=0.99, snr_gamma=5.0, loss_weighting="clipped_snr", log_every=2),
        "train_subset": 512,
        "prediction_type": "v_prediction",
        "sample": dict(sampler="dpm", steps=3),
        "eval_per_class": 4,
        "compare_samplers": [("ddpm", 6), ("ddim", 4), ("dpm", 3)],
        "compare_per_class": 1,
        "exercise_overrides": {},
    },
    "cpu": {
        # Chosen by measurement (bench/bench_lesson1.py and the README): a thin UNet for many more steps per
        # minute, a 16-channel class embedding (a stronger label signal than 4 channels), v-prediction, SNR weighting capped at 5 but keeping full weight on the high-noise steps
        # (where the label decides the digit), a higher learning rate with warm-up and cosine decay, EMA.
        "model": dict(class_emb_size=16, block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=8,
                      down_block_types=(_D, _D, _A), up_block_types=(_AU, _U, _U), attention_head_dim=8),
        "train": dict(max_steps=1500, batch_size=64, learning_rate=2e-3, warmup_steps=50, lr_schedule="cosine",
                      ema_decay=0.999, snr_gamma=5.0, loss_weighting="clipped_snr", time_limit_s=540,
                      checkpoint_every=250),
        "train_subset": None,
        "prediction_type": "v_prediction",
        "sample": dict(sampler="ddpm", steps=25),
        "eval_per_class": 100,
        "compare_samplers": [("ddpm", 1000), ("ddim", 50), ("dpm", 20)],
        "compare_per_class": 10,
        "exercise_overrides": {"time_limit_s": 240},
    },
    "gpu": {
        # The source recipe (Hugging Face diffusion course, unit 2): 10 epochs, batch 128, blocks (32, 64, 64).
        "model": dict(class_emb_size=4, block_out_channels=(32, 64, 64), layers_per_block=2, norm_num_groups=32,
                      down_block_types=(_D, _A, _A), up_block_types=(_AU, _AU, _U), attention_head_dim=8),
        "train": dict(epochs=10, batch_size=128, learning_rate=1e-3, warmup_steps=200, lr_schedule="cosine",
                      ema_decay=0.999, snr_gamma=5.0, loss_weighting="clipped_snr", checkpoint_every=1000),
        "train_subset": None,
        "prediction_type": "v_prediction",
        "sample": dict(sampler="ddpm", steps=25),
        "eval_per_class": 500,
        "compare_samplers": [("ddpm", 1000), ("ddim", 50), ("dpm", 20)],
        "compare_per_class": 50,
        "exercise_overrides": {},
    },
}

_XD, _XU = "CrossAttnDownBlock2D", "CrossAttnUpBlock2D"

_CROSS_ATTENTION = {
    # Lesson 2: labels -> MLP -> one token -> cross-attention in a UNet2DConditionModel, on 16x16 RGB sprites.
    "smoke": {
        "model": dict(block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4,
                      down_block_types=(_D, _XD, _XD), up_block_types=(_XU, _XU, _U),
                      cross_attention_dim=8, attention_head_dim=4),
        "concat_model": dict(class_emb_size=4, block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4,
                             down_block_types=(_D, _A, _A), up_block_types=(_AU, _AU, _U), attention_head_dim=4),
        "train": dict(max_steps=8, batch_size=32, learning_rate=2e-3, warmup_steps=2, lr_schedule="cosine",
                      ema_decay=0.99, snr_gamma=5.0, loss_weighting="clipped_snr", log_every=2),
        "train_subset": None,
        "prediction_type": "v_prediction",
        "sample": dict(sampler="dpm", steps=3),
        "eval_per_class": 4,
        "compare_budget_s": 4,
        "exercise_per_pair": 4,
    },
    "cpu": {
        # The lesson-1 recipe carried over (v-prediction, SNR weight capped at 5, warm-up + cosine, EMA) on a
        # UNet sized for 16x16 by measurement: cross-attention at 4x4 and in the middle block only is 1.45x
        # faster per image than also at 8x8, with about the same accuracy and a lower FID in the same 240 s
        # (bench_lesson2.py layout, README). fp32: bf16 autocast
        # is slower on CPUs without bf16 units.
        "model": dict(block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=8,
                      down_block_types=(_D, _D, _XD), up_block_types=(_XU, _U, _U),
                      cross_attention_dim=64, attention_head_dim=8),
        # Lesson 1's conditioning at the same widths, for the comparison (self-attention where this has cross).
        "concat_model": dict(class_emb_size=16, block_out_channels=(32, 64, 64), layers_per_block=1,
                             norm_num_groups=8, down_block_types=(_D, _D, _A), up_block_types=(_AU, _U, _U),
                             attention_head_dim=8),
        "train": dict(max_steps=1800, batch_size=64, learning_rate=2e-3, warmup_steps=50, lr_schedule="cosine",
                      ema_decay=0.999, snr_gamma=5.0, loss_weighting="clipped_snr", time_limit_s=540,
                      checkpoint_every=250, mixed_precision="auto"),
        "train_subset": None,
        "prediction_type": "v_prediction",
        "sample": dict(sampler="ddpm", steps=25),
        "eval_per_class": 100,
        "compare_budget_s": 120,
        "exercise_per_pair": 20,
    },
    "gpu": {
        # After the source course (DeepLearning.AI's sprites lesson: 32 epochs, batch 100, lr 1e-3), with a wider
        # cross-attention UNet and mixed precision (bf16 where supported, else fp16 with a gradient scaler).
        "model": dict(block_out_channels=(64, 128, 256), layers_per_block=2, norm_num_groups=32,
                      down_block_types=(_D, _XD, _XD), up_block_types=(_XU, _XU, _U),
                      cross_attention_dim=128, attention_head_dim=8),
        "concat_model": dict(class_emb_size=16, block_out_channels=(64, 128, 256), layers_per_block=2,
                             norm_num_groups=32, down_block_types=(_D, _A, _A), up_block_types=(_AU, _AU, _U),
                             attention_head_dim=8),
        # min_steps: 32 epochs are 28,600 steps of the 89,400 real sprites but only 224 of the 753 offline emoji,
        # which reached 46% class accuracy on an H100 (README); the floor gives the small set enough steps.
        "train": dict(epochs=32, min_steps=4000, batch_size=100, learning_rate=1e-3, warmup_steps=500,
                      lr_schedule="cosine", ema_decay=0.9995, snr_gamma=5.0, loss_weighting="clipped_snr", checkpoint_every=2000,
                      mixed_precision="auto"),
        "train_subset": None,
        "prediction_type": "v_prediction",
        "sample": dict(sampler="ddpm", steps=50),
        "eval_per_class": 500,
        "compare_budget_s": 600,
        "exercise_per_pair": 100,
    },
}

def _text_preset(name: str) -> dict:
    """Lesson 3: lesson 2's UNet and recipe, with text tokens for labels and label dropout for guidance."""
    p = copy.deepcopy(_CROSS_ATTENTION[name])
    p.pop("concat_model")
    p["train"]["cond_drop_prob"] = 0.1
    p.update(text_backend="auto", text_max_length=16, image_size=16 if name != "gpu" else 32,
             guidance_scales=[0.0, 1.0, 3.0, 7.0], eval_prompts={"smoke": 8, "cpu": 200, "gpu": 500}[name],
             exercise_overrides={"cpu": {"time_limit_s": 240, "max_steps": 800}}.get(name, {}))
    return p


_TEXT = {name: _text_preset(name) for name in PRESET_NAMES}

PRESETS = {"mnist": _CLASS_CONCAT, "fashion_mnist": _CLASS_CONCAT, "sprites": _CROSS_ATTENTION, "captions": _TEXT}


def default_preset() -> str:
    """``$COURSE_PRESET`` if set, else ``gpu`` when CUDA is available, else ``cpu``.

    Introduced in lesson 1.
    """
    name = os.environ.get("COURSE_PRESET") or ("gpu" if torch.cuda.is_available() else "cpu")
    if name not in PRESET_NAMES:
        raise ValueError(f"COURSE_PRESET={name!r}; choose one of {PRESET_NAMES}")
    return name


def get_preset(task: str, name: str | None = None) -> dict:
    """A copy of the preset ``name`` (default: :func:`default_preset`) for ``task``.

    Introduced in lesson 1.
    """
    name = name or default_preset()
    if task not in PRESETS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(PRESETS)}")
    if name not in PRESET_NAMES:
        raise ValueError(f"unknown preset {name!r}; choose one of {PRESET_NAMES}")
    return copy.deepcopy(PRESETS[task][name])


# --------------------------------------------------------------------------- lesson 4: YAML configs

SCRATCH_TASKS = ("emoji32", "cifar10", "celeba")
CONFIG_DIR = Path(__file__).parent / "configs"


def config_path(task: str) -> Path:
    """The YAML config shipped for a lesson-4 data set (``course_utils/configs/<task>.yaml``).

    Introduced in lesson 4.
    """
    if task not in SCRATCH_TASKS:
        raise ValueError(f"unknown lesson-4 task {task!r}; choose one of {SCRATCH_TASKS}")
    return CONFIG_DIR / f"{task}.yaml"


def load_config(task: str, preset: str | None = None, path: str | os.PathLike | None = None) -> dict:
    """A lesson-4 config with one preset resolved: the file's top-level keys (``dataset``, ``prediction_type``,
    ...) plus that preset's ``model`` / ``train`` / ``sample`` sections. ``path`` is a YAML file of the same
    shape (a copy of the shipped one with values changed); by default the shipped file is read.

    Introduced in lesson 4.
    """
    import yaml

    path = Path(path) if path is not None else config_path(task)
    if not path.is_file():
        raise FileNotFoundError(f"no config file at {path}; start from a copy of {config_path(task)}")
    raw = yaml.safe_load(path.read_text()) or {}
    name = preset or default_preset()
    presets = raw.pop("presets", None) or {}
    if name not in presets:
        raise ValueError(f"{path} has no preset {name!r} (it has {sorted(presets)}); add a presets.{name} section")
    cfg = {**raw, **copy.deepcopy(presets[name])}
    missing = [k for k in ("dataset", "model", "train", "sample") if k not in cfg]
    if missing:
        raise ValueError(f"{path}, preset {name!r}: missing {missing}; see {config_path(task)} for the shape")
    for key in ("channels", "attention_resolutions"):
        if key in cfg["model"]:
            cfg["model"][key] = tuple(cfg["model"][key])
    cfg.update(preset=name, config_file=str(path))
    return cfg

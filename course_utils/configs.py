"""Every task's configuration, as YAML shipped with the package: ``configs/TASK.yaml``, with the presets
``smoke`` / ``cpu`` / ``gpu`` inside.

* ``smoke``: for CI; a whole notebook in well under a minute on 2 CPU cores, every cell still real.
* ``cpu``: a learner's laptop; at most 10 minutes of training on 2 cores, results a person recognises.
* ``gpu``: the source recipe or better.

``python -m course_utils config TASK`` prints a task's file to copy and edit; ``train TASK --config FILE`` reads
the copy. A file may start from another with ``extends: TASK`` (Fashion-MNIST extends MNIST).

Introduced in lesson 1.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import yaml

from .errors import ConfigError

PRESET_NAMES = ("smoke", "cpu", "gpu")
SAMPLERS = ("ddpm", "ddim", "dpm", "dpm-sde")  # what a config's `sample.sampler` may name (course_utils.schedulers)
# task -> what it trains (the CLI's help lists these)
TASKS = {
    "mnist": "lesson 1: digits, the label concatenated as channels",
    "fashion_mnist": "lesson 1's exercise: Fashion-MNIST with the same model",
    "sprites": "lesson 2: 16x16 sprites (Twemoji offline), one-hot labels through cross-attention",
    "captions": "lesson 3: text-to-image with classifier-free guidance (emoji names offline, COCO with --coco)",
    "emoji32": "lesson 4: the hand-written UNet on Twemoji at 32x32 (offline)",
    "cifar10": "lesson 4: the hand-written UNet on CIFAR-10",
    "celeba": "lesson 4: the hand-written UNet on CelebA faces with multi-hot attributes",
}
MODEL_CLASSES = ("ClassConditionedUnet", "LabelConditionedUnet", "TextConditionedUnet", "ScratchUNet")
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
REQUIRED = ("dataset", "model_class", "model", "train", "sample")
# model settings that YAML gives as lists and the models keep as tuples
_TUPLES = ("channels", "attention_resolutions", "block_out_channels", "down_block_types", "up_block_types")


def default_preset() -> str:
    """``$COURSE_PRESET`` if set, else ``gpu`` when CUDA is available, else ``cpu``.

    Introduced in lesson 1.
    """
    name = os.environ.get("COURSE_PRESET")
    if not name:
        import torch  # only here: `python -m course_utils --help` should not load torch

        name = "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PRESET_NAMES:
        raise ConfigError(f"COURSE_PRESET={name!r}; choose one of {', '.join(PRESET_NAMES)}")
    return name


def config_path(task: str) -> Path:
    """The YAML config shipped for ``task`` (``course_utils/configs/TASK.yaml``).

    Introduced in lesson 1.
    """
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return CONFIG_DIR / f"{task}.yaml"


def read_yaml(path: str | os.PathLike) -> dict:
    """A YAML mapping from ``path``, with a one-line error naming the file and line when it is malformed.

    Introduced in lesson 1.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file at {path}; print a task's default with "
                          "`python -m course_utils config TASK > my.yaml` and edit the copy")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}. Compare it with "
                          "`python -m course_utils config TASK`") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} should hold a mapping of settings (dataset: ..., presets: ...), "
                          f"found a {type(raw).__name__}")
    return raw


def merge(base: dict, over: dict) -> dict:
    """``over`` put on top of ``base``, mappings merged key by key (a copy; neither is changed).

    Introduced in lesson 1.
    """
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _raw_config(task: str, path: Path, seen: tuple[str, ...] = ()) -> dict:
    raw = read_yaml(path)
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if parent not in TASKS or parent in seen:
        raise ConfigError(f"{path}: `extends: {parent}` must name another task ({', '.join(TASKS)})")
    return merge(_raw_config(parent, config_path(parent), (*seen, task)), raw)


def load_config(task: str, preset: str | None = None, path: str | os.PathLike | None = None) -> dict:
    """``task``'s config with one preset resolved: the file's top-level settings (``dataset``, ``model_class``,
    ``prediction_type``, ...) with the preset's sections (``model``, ``train``, ``sample``, ...) merged over
    them, plus ``task``, ``preset`` (the name actually used, also when it came from ``$COURSE_PRESET``) and
    ``config_file``. ``path`` is a YAML file of the same shape (a copy of the shipped one with values
    changed), or one preset already resolved (what ``config TASK --preset P`` prints, edited), which then serves
    whichever preset is asked; by default the shipped file is read.

    Introduced in lesson 1.
    """
    path = Path(path) if path is not None else config_path(task)
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    raw = _raw_config(task, path)
    name = preset or default_preset()
    if name not in PRESET_NAMES:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESET_NAMES)}")
    if "presets" not in raw and "model" in raw:  # already resolved: what `config TASK --preset P` prints
        cfg = raw
    else:
        presets = raw.pop("presets", None) or {}
        if not isinstance(presets, dict) or name not in presets:
            found = sorted(presets) if isinstance(presets, dict) else presets
            raise ConfigError(f"{path} has no preset {name!r} (it has {found}); add a presets.{name} section")
        cfg = merge(raw, presets[name] or {})
    missing = [k for k in REQUIRED if k not in cfg]
    if missing:
        raise ConfigError(f"{path}, preset {name!r}: missing {', '.join(missing)}; see "
                          f"`python -m course_utils config {task}` for the shape")
    if cfg["model_class"] not in MODEL_CLASSES:
        raise ConfigError(f"{path}: model_class must be one of {', '.join(MODEL_CLASSES)}, got {cfg['model_class']!r}")
    for section in ("model", "train", "sample"):
        if not isinstance(cfg[section], dict):
            raise ConfigError(f"{path}, preset {name!r}: `{section}` must be a mapping of settings")
    for key in _TUPLES:
        if key in cfg["model"]:
            cfg["model"][key] = tuple(cfg["model"][key])
    cfg.update(task=task, preset=name, config_file=str(path))
    return cfg


def config_text(task: str, preset: str | None = None) -> str:
    """What ``python -m course_utils config TASK [--preset P]`` prints: the shipped file as it is (to copy and
    edit), or with ``preset`` the settings that preset resolves to.

    Introduced in lesson 1.
    """
    if preset is None:
        return config_path(task).read_text(encoding="utf-8")
    cfg = load_config(task, preset)
    for key in ("task", "preset", "config_file"):
        cfg.pop(key)
    head = f"# {task}, preset {preset}, resolved from {config_path(task).name}\n"
    return head + yaml.safe_dump(_plain(cfg), sort_keys=False, default_flow_style=None, width=110)


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj

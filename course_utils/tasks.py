"""Whole jobs behind the CLI and the notebooks: train a lesson's model on a preset, sample from a saved
pipeline, evaluate a samples file.

Introduced in lesson 1.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch

from .data import load_dataset, to_unit_range
from .metrics import evaluate_samples, load_or_train_judge
from .models import ClassConditionedUnet, count_parameters
from .pipelines import ConditionalDDPMPipeline, load_pipeline, load_samples_npz, save_samples_npz
from .plots import plot_losses, save_images
from .presets import get_preset
from .sampling import labels_per_class, sample_images
from .schedulers import make_noise_scheduler, make_sampler
from .training import TrainConfig, steps_for_epochs, train_diffusion

CLASS_CONDITIONED_TASKS = ("mnist", "fashion_mnist")


def train_config_from_preset(preset: dict, dataset_size: int) -> TrainConfig:
    """Turn a preset's ``train`` section (which may give ``epochs``) into a :class:`TrainConfig`.

    Introduced in lesson 1.
    """
    kw = dict(preset["train"])
    if "epochs" in kw:
        kw["max_steps"] = steps_for_epochs(kw.pop("epochs"), dataset_size, kw.get("batch_size", 128),
                                           kw.get("grad_accum_steps", 1))
    return TrainConfig(**kw)


def save_pipeline_atomically(pipe: ConditionalDDPMPipeline, path: Path) -> Path:
    """``save_pretrained`` into a temporary folder, then rename: a reader never sees half a pipeline.

    Introduced in lesson 1.
    """
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp)
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def train_class_conditioned(task: str = "mnist", preset: str | None = None, out_dir: str | Path = "runs/mnist",
                            source: str = "auto", resume: bool = True, progress: bool = True,
                            evaluate: bool = True, overrides: dict | None = None) -> dict:
    """Lesson 1's main job: train a :class:`ClassConditionedUnet` on MNIST (or Fashion-MNIST) with a preset,
    then write into ``out_dir``: ``pipeline/`` (EMA weights + scheduler), ``samples.png`` (a row per class),
    ``loss.png``, ``losses.json`` and ``metrics.json`` (class accuracy, classifier FID beside real-vs-real,
    timings). ``overrides`` replaces entries of the preset's ``train`` section. Returns the metrics.

    Introduced in lesson 1.
    """
    if task not in CLASS_CONDITIONED_TASKS:
        raise ValueError(f"unknown task {task!r}; lesson 1 trains one of {CLASS_CONDITIONED_TASKS}")
    cfg = get_preset(task, preset)
    cfg["train"].update(overrides or {})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    train_set = load_dataset(task, "train", source=source)
    if cfg["train_subset"]:
        train_set = train_set.subset(cfg["train_subset"])
    train_cfg = train_config_from_preset(cfg, len(train_set))
    model = ClassConditionedUnet(num_classes=train_set.num_classes, in_channels=train_set.image_shape[0],
                                 sample_size=train_set.image_shape[1], **cfg["model"])
    noise_scheduler = make_noise_scheduler(prediction_type=cfg.get("prediction_type", "epsilon"))
    print(f"[train] {task}, preset {preset or 'default'}: {count_parameters(model):,} parameters, "
          f"{train_cfg.max_steps} steps of batch {train_cfg.batch_size}")
    result = train_diffusion(model, noise_scheduler, train_set, train_cfg, out_dir=out_dir, resume=resume,
                             progress=progress)
    pipe = ConditionalDDPMPipeline(unet=result.model, scheduler=noise_scheduler)
    save_pipeline_atomically(pipe, out_dir / "pipeline")
    (out_dir / "losses.json").write_text(json.dumps(result.losses))
    ax = plot_losses(result.losses, title=f"{task}: training loss", path=out_dir / "loss.png")
    ax.figure.clear()

    metrics = {"task": task, "preset": preset, "parameters": count_parameters(model), "steps": result.step,
               "batch_size": train_cfg.batch_size, "train_seconds": round(result.train_seconds, 1),
               "stopped_early": result.stopped_early, "final_loss": sum(result.losses[-50:]) / min(50, len(result.losses)),
               "data_source": train_set.source, "torch_threads": torch.get_num_threads()}
    if evaluate:
        s = cfg["sample"]
        report, images, labels, seconds = evaluate_pipeline(result.model, noise_scheduler, task, s["sampler"],
                                                            s["steps"], cfg["eval_per_class"], source=source)
        per_row = min(10, cfg["eval_per_class"])  # samples come class by class: a row of each class
        grid = images.view(train_set.num_classes, cfg["eval_per_class"], *images.shape[1:])[:, :per_row]
        save_images(grid.flatten(0, 1), out_dir / "samples.png", nrow=per_row)
        metrics.update(report.to_dict())
        metrics.update({"sampler": s["sampler"], "sampling_steps": s["steps"], "model_evals_per_sample": s["steps"],
                        "seconds_per_sample": round(seconds / len(labels), 4)})
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def evaluate_pipeline(model, noise_scheduler, task: str, sampler: str, steps: int, per_class: int, seed: int = 0,
                      source: str = "auto"):
    """Sample ``per_class`` images of every class and judge them. Returns ``(report, images01, labels, seconds)``.

    Introduced in lesson 1.
    """
    judge, info = load_or_train_judge(task, source=source)
    test = load_dataset(task, "test", source=source, verbose=False)
    labels = labels_per_class(judge.config.num_classes, per_class)
    start = time.perf_counter()
    images = to_unit_range(sample_images(model, noise_scheduler, labels, steps, sampler, seed=seed))
    seconds = time.perf_counter() - start
    report = evaluate_samples(judge, images, labels, test.images, info["test_accuracy"], seed=seed)
    return report, images, labels, seconds


def sample_to_file(checkpoint: str | Path, out: str | Path, per_class: int = 10, steps: int = 20,
                   sampler: str = "dpm", seed: int = 0, dataset: str | None = None) -> Path:
    """Load a saved pipeline, draw ``per_class`` samples of each class, and write them as an ``.npz``.

    Introduced in lesson 1.
    """
    pipe = load_pipeline(checkpoint)
    unet = pipe.unet
    labels = labels_per_class(unet.config.num_classes, per_class)
    make_sampler(sampler, pipe.scheduler)  # fail early on an unknown sampler name
    start = time.perf_counter()
    images = to_unit_range(sample_images(unet, pipe.scheduler, labels, steps, sampler, seed=seed, progress=True))
    seconds = time.perf_counter() - start
    dataset = dataset or _dataset_of(checkpoint)
    return save_samples_npz(out, images, labels, dataset=dataset or "", sampler=sampler, steps=steps, seed=seed,
                            seconds_per_sample=seconds / len(labels))


def _dataset_of(checkpoint: str | Path) -> str | None:
    """The data set a training run used, read from its ``metrics.json`` if it is there."""
    for d in (Path(checkpoint), Path(checkpoint).parent):
        if (d / "metrics.json").exists():
            return json.loads((d / "metrics.json").read_text()).get("task")
    return None


def evaluate_file(path: str | Path, dataset: str | None = None, source: str = "auto") -> dict:
    """Judge a samples file: class accuracy and classifier FID (with real-vs-real beside it).

    Introduced in lesson 1.
    """
    images, labels, meta = load_samples_npz(path)
    dataset = dataset or meta.get("dataset") or None
    if not dataset:
        raise ValueError(f"{path} does not say which data set it imitates; pass --dataset mnist (or fashion_mnist)")
    judge, info = load_or_train_judge(str(dataset), source=source)
    c, h, w = judge.config.in_channels, judge.config.image_size, judge.config.image_size
    if tuple(images.shape[1:]) != (c, h, w):
        raise ValueError(f"{path} holds images of shape {tuple(images.shape[1:])}, but {dataset} images are "
                         f"{(c, h, w)}")
    if labels.numel() and labels.max() >= judge.config.num_classes:
        raise ValueError(f"label {labels.max().item()} is out of range for {dataset} "
                         f"({judge.config.num_classes} classes)")
    test = load_dataset(str(dataset), "test", source=source, verbose=False)
    report = evaluate_samples(judge, images, labels, test.images, info["test_accuracy"])
    out = report.to_dict()
    out["dataset"] = str(dataset)
    for k in ("sampler", "steps", "seconds_per_sample"):
        if k in meta:
            out[k] = meta[k].item() if hasattr(meta[k], "item") else meta[k]
    return out

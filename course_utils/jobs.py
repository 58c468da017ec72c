"""Whole jobs, the same for every lesson: train a task from its config, sample a saved pipeline into a file,
evaluate a samples file. The command line (``python -m course_utils``) and the notebooks call these.

Introduced in lesson 1.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from accelerate import PartialState

from .configs import load_config
from .devices import default_device
from .data import ImageDataset, load_celeba, load_coco_captions, load_dataset, load_emoji_captions
from .errors import ConfigError
from .evaluation import (
    evaluate_models,
    evaluate_prompt_samples,
    evaluate_samples,
    guidance_sweep,
    load_or_train_judge,
    reference_images,
)
from .files import atomic_path, load_samples_npz, save_samples_npz, write_json
from .models import (ClassConditionedUnet, LabelConditionedUnet, TextConditionedUnet, count_parameters,
                     null_condition_for)
from .pipelines import ConditionalDDPMPipeline, TextToImagePipeline, load_pipeline
from .plots import plot_losses, save_gif, save_grid
from .sampling import DEFAULT_GUIDANCE_SCALE, labels_per_class, model_evaluations, sample_images
from .schedulers import make_noise_scheduler, make_sampler
from .scratch import CosineDDPM, ScratchUNet
from .text import load_text_encoder
from .training import TrainConfig, train_diffusion

# --------------------------------------------------------------------------- building blocks

def build_dataset(cfg: dict, split: str = "train", source: str = "auto", data_path: str | os.PathLike | None = None,
                  verbose: bool = True):
    """The data a task's config names, with the labels its model takes: integer classes for lesson 1's
    embedding, one-hot or multi-hot vectors for the label encoder and the scratch UNet's label tokens, captions
    (COCO from ``data_path``, else emoji names) for the text model; ``train_subset`` keeps a random part.

    Introduced in lesson 1.
    """
    kind = cfg["model_class"]
    if kind == "TextConditionedUnet":
        size = cfg["image_size"]
        if data_path:
            return load_coco_captions(data_path, split, size=size, limit=cfg.get("limit"), verbose=verbose)
        return load_emoji_captions(size, split, verbose=verbose)
    if cfg["dataset"] == "celeba":
        data = load_celeba(split, path=data_path, attributes=cfg.get("attributes"), size=cfg.get("image_size", 64),
                           source=source, limit=cfg.get("limit"), verbose=verbose)
    else:
        data = load_dataset(cfg["dataset"], split, source=source, path=data_path, verbose=verbose)
    data = data.with_class_indices() if kind == "ClassConditionedUnet" else data.one_hot()
    if split == "train" and cfg.get("train_subset"):
        data = data.subset(cfg["train_subset"])
    return data


def build_model(cfg: dict, data, text_encoder=None) -> torch.nn.Module:
    """The denoiser a task's config describes (``model_class`` and the ``model`` section), sized to ``data``
    (channels, resolution, number of classes and their names), or for text to ``text_encoder``.

    Introduced in lesson 1.
    """
    kind, model_cfg = cfg["model_class"], cfg["model"]
    if kind == "TextConditionedUnet":
        if text_encoder is None:
            raise ValueError("a text-conditioned model needs the text encoder it will read (its hidden size)")
        return TextConditionedUnet(text_dim=text_encoder.hidden_size, sample_size=cfg["image_size"],
                                   text_backend=text_encoder.backend, text_max_length=text_encoder.max_length,
                                   **model_cfg)
    c, size = data.image_shape[0], data.image_shape[1]
    if kind == "ClassConditionedUnet":
        return ClassConditionedUnet(num_classes=data.num_classes, in_channels=c, sample_size=size, **model_cfg)
    if kind == "LabelConditionedUnet":
        return LabelConditionedUnet.build(num_classes=data.num_classes, in_channels=c, sample_size=size,
                                          class_names=list(data.classes), **model_cfg)
    if kind == "ScratchUNet":
        return ScratchUNet(sample_size=size, in_channels=c, num_labels=data.num_classes,
                           label_names=list(data.classes), **model_cfg)
    raise ValueError(f"unknown model_class {kind!r}")


def build_noise_scheduler(cfg: dict):
    """The noise scheduler a task trains with: lesson 4's hand-written :class:`CosineDDPM`, else diffusers'
    ``DDPMScheduler`` with the same cosine schedule; both predict ``cfg["prediction_type"]``.

    Introduced in lesson 1.
    """
    kind = cfg.get("prediction_type", "epsilon")
    return CosineDDPM(prediction_type=kind) if cfg["model_class"] == "ScratchUNet" else make_noise_scheduler(
        prediction_type=kind)


def null_condition_of(model, data):
    """What label dropout replaces a condition by, and guidance samples with: the empty caption's states for
    text, else the model's own "no label" (:func:`~course_utils.models.null_condition_for`), or ``None``.

    Introduced in lesson 1; text in lesson 3.
    """
    if hasattr(data, "null_condition"):
        return data.null_condition()
    return null_condition_for(model)


def pipeline_of(model, noise_scheduler, label_dropout: float = 0.0):
    """A saveable pipeline around a trained denoiser and its scheduler (lesson 4's hand-written one becomes the
    equal diffusers ``DDPMScheduler``), recording the label dropout it was trained with.

    Introduced in lesson 2.
    """
    scheduler = noise_scheduler.to_diffusers() if isinstance(noise_scheduler, CosineDDPM) else noise_scheduler
    if isinstance(model, TextConditionedUnet):
        return TextToImagePipeline(unet=model, scheduler=scheduler, label_dropout=label_dropout)
    if isinstance(model, LabelConditionedUnet):
        return ConditionalDDPMPipeline(unet=model.unet, scheduler=scheduler, label_encoder=model.label_encoder,
                                       label_dropout=label_dropout, patch_size=model.patch_size)
    return ConditionalDDPMPipeline(unet=model, scheduler=scheduler, label_dropout=label_dropout)


def guidance_of(cfg: dict, model) -> dict:
    """The config's sampling guidance (``sample.guidance_scale``, and ``sample.guidance_interval``: the timesteps
    whose steps are guided, every step if it is left out) with the model's null condition, as keyword arguments
    of :func:`~course_utils.sampling.sample_images`.

    Introduced in lesson 1.
    """
    s = cfg["sample"]
    scale, interval = s.get("guidance_scale"), s.get("guidance_interval")
    guided = scale not in (None, 1)
    return {"guidance_scale": scale, "null_condition": null_condition_for(model) if guided else None,
            "guidance_interval": tuple(interval) if guided and interval is not None else None}


def guidance_scale_for(cfg: dict, steps: int) -> float | None:
    """The guidance scale to sample a model trained for ``steps`` steps with: ``sample.guidance_scale``, or where
    the config has ``sample.guidance_by_steps`` (pairs ``[steps, scale]``, steps increasing) the scale of the last
    pair whose steps the model reached. A better-trained model needs less guidance: lesson 1's ``cpu`` preset
    guides at 2.5, at 2 from 2,000 steps and at 1.5 from 3,500 (measured in lesson 1 and the README), so a faster
    machine, which trains more steps in the same 300 s, samples with less guidance and more variety.

    Introduced in lesson 1.
    """
    s = cfg["sample"]
    scale, pairs = s.get("guidance_scale"), s.get("guidance_by_steps") or []
    example = "e.g. [[2000, 2.0], [3500, 1.5]]"
    try:
        pairs = [(int(n), float(v)) for n, v in pairs]
    except (TypeError, ValueError):
        raise ConfigError(f"sample.guidance_by_steps must be a list of [steps, scale] pairs, {example}; got "
                          f"{s['guidance_by_steps']!r}") from None
    if any(a[0] >= b[0] for a, b in zip(pairs, pairs[1:])) or any(v < 0 for _, v in pairs):
        raise ConfigError(f"sample.guidance_by_steps must list its steps in increasing order with scales >= 0, "
                          f"{example}; got {s['guidance_by_steps']!r}")
    if pairs and scale in (None, 1):
        raise ConfigError("sample.guidance_by_steps changes the guidance scale of a guided model: set "
                          "sample.guidance_scale too (the scale below its first steps)")
    for at_least, value in pairs:
        if steps >= at_least:
            scale = value
    return scale


def with_guidance_for(cfg: dict, steps: int) -> dict:
    """``cfg`` with ``sample.guidance_scale`` set for a model trained ``steps`` steps (:func:`guidance_scale_for`)
    and ``guidance_by_steps`` resolved away, so that everything that samples from it uses that one scale.

    Introduced in lesson 1.
    """
    sample = {k: v for k, v in cfg["sample"].items() if k != "guidance_by_steps"}
    return {**cfg, "sample": {**sample, "guidance_scale": guidance_scale_for(cfg, steps)}}


def guidance_words(cfg: dict) -> str:
    """``", guidance scale 3.5 at t in [350, 1000]"``: the config's guidance for a title ("" unguided)."""
    s = cfg["sample"]
    scale, interval = s.get("guidance_scale"), s.get("guidance_interval")
    if scale in (None, 1):
        return ""
    return f", guidance scale {scale:g}" + (f" at t in [{interval[0]:g}, {interval[1]:g}]" if interval else "")


def grid_labels(data: ImageDataset, per_row: int) -> tuple[torch.Tensor, list[str]]:
    """Labels for a sample grid and a name per row: a row per class; for multi-hot attributes, a row with none
    of them, then a row per attribute alone.

    Introduced in lesson 1; attributes in lesson 4.
    """
    k = data.num_classes
    if data.labels.ndim == 1:
        return labels_per_class(k, per_row), list(data.classes)
    if data.is_multi_hot:
        rows, names = torch.cat([torch.zeros(1, k), torch.eye(k)]), ["(none)"] + list(data.classes)
    else:
        rows, names = torch.eye(k), list(data.classes)
    return rows.repeat_interleave(per_row, dim=0), names


# --------------------------------------------------------------------------- train

def training_data(cfg: dict, source: str = "auto", data_path: str | os.PathLike | None = None,
                  text_encoder: str | None = None, verbose: bool = True):
    """A task's training set as its config says, and ``(data, encoder)``: for text, the frozen text encoder
    (``text_encoder`` or the config's back-end), with the captions' states cached, since training reads them;
    for labels, ``encoder`` is ``None``.

    Introduced in lesson 1; text in lesson 3.
    """
    data = build_dataset(cfg, "train", source, data_path, verbose=verbose)
    encoder = None
    if cfg["model_class"] == "TextConditionedUnet":
        encoder = load_text_encoder(text_encoder or cfg["text_backend"], max_length=cfg["text_max_length"],
                                    verbose=verbose)
        data.cache_embeddings(encoder)
    return data, encoder


def train(task: str, preset: str | None = None, out_dir: str | os.PathLike | None = None,
          config: str | os.PathLike | None = None, source: str = "auto", data_path: str | os.PathLike | None = None,
          text_encoder: str | None = None, resume: bool = True, progress: bool = True, evaluate: bool = True,
          overrides: dict | None = None, model_overrides: dict | None = None) -> dict:
    """Train a task's model as its config says for ``preset`` (``config``: your own copy of the YAML), then
    write into ``out_dir``: ``pipeline/`` (EMA weights + scheduler), ``samples.png`` (a row per class),
    ``denoising.gif``, ``loss.png``, ``losses.json`` and ``metrics.json`` (class accuracy and classifier FID
    beside real-vs-real; for text, the guidance sweep and ``guidance.png``). Returns the metrics.

    ``data_path`` is the real data's folder (sprite files, CIFAR-10, CelebA, COCO); ``overrides`` /
    ``model_overrides`` replace entries of the config's ``train`` / ``model`` sections. A run resumes from
    ``out_dir``'s last checkpoint unless ``resume=False``.
    Introduced in lesson 1.
    """
    cfg = load_config(task, preset, config)
    cfg["train"].update(overrides or {})
    cfg["model"].update(model_overrides or {})
    out_dir = Path(out_dir) if out_dir is not None else Path("runs") / f"{task}-{cfg['preset']}"
    out_dir.mkdir(parents=True, exist_ok=True)

    guidance_scale_for(cfg, 0)  # a malformed sample.guidance_by_steps fails now, not after the training
    data, encoder = training_data(cfg, source, data_path, text_encoder)
    train_cfg = TrainConfig.from_config(cfg, len(data))
    torch.manual_seed(train_cfg.seed)  # the same seed gives the same initial weights
    model = build_model(cfg, data, encoder)
    noise_scheduler = build_noise_scheduler(cfg)
    null_condition = null_condition_of(model, data)
    if train_cfg.cond_drop_prob > 0 and null_condition is None:
        raise ValueError(f"label dropout (cond_drop_prob {train_cfg.cond_drop_prob}) needs a 'no label' input: for "
                         "lesson 1's model set `null_class: true` in the config's model section")
    print(f"[train] {task} ({data.name}, {len(data)} images), preset {cfg['preset']}, config {cfg['config_file']}: "
          f"{count_parameters(model):,} parameters, {train_cfg.max_steps} steps of batch {train_cfg.batch_size}",
          file=sys.stderr)
    result = train_diffusion(model, noise_scheduler, data, train_cfg, out_dir=out_dir, resume=resume,
                             null_condition=null_condition if train_cfg.cond_drop_prob > 0 else None,
                             progress=progress)
    if cfg["sample"].get("guidance_by_steps"):
        cfg = with_guidance_for(cfg, result.step)
        print(f"[train] {result.step:,} steps trained: sampling at guidance scale {cfg['sample']['guidance_scale']:g} "
              "(the config's sample.guidance_by_steps)", file=sys.stderr)
    metrics = {"task": task, "dataset": data.name, "preset": cfg["preset"], "config": cfg["config_file"],
               "parameters": count_parameters(model), "steps": result.step, "batch_size": train_cfg.batch_size,
               "train_seconds": round(result.train_seconds, 1), "stopped_early": result.stopped_early,
               "final_loss": sum(result.losses[-50:]) / max(1, min(50, len(result.losses))),
               "cond_drop_prob": train_cfg.cond_drop_prob, "data_source": data.source, "num_train": len(data),
               "torch_threads": torch.get_num_threads()}
    if encoder is not None:
        metrics["text_encoder"] = encoder.backend
    if not PartialState().is_main_process:  # under `accelerate launch`, one process writes the results
        return metrics
    pipe = pipeline_of(result.model, noise_scheduler, label_dropout=train_cfg.cond_drop_prob)
    with atomic_path(out_dir / "pipeline") as tmp:
        pipe.save_pretrained(tmp)
    write_json(out_dir / "losses.json", result.losses, indent=None)
    ax = plot_losses(result.losses, title=f"{task}: training loss", path=out_dir / "loss.png")
    ax.figure.clear()
    if encoder is not None:
        if evaluate:
            metrics.update(_evaluate_text(cfg, result.model, noise_scheduler, data, out_dir))
    else:
        metrics.update(draw_pictures(cfg, result.model, pipe.scheduler, data, out_dir))
        if evaluate:
            metrics.update(_evaluate_classes(cfg, result, pipe.scheduler, data, source, data_path))
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def draw_pictures(cfg, model, scheduler, data, out_dir: Path, per_row: int = 8) -> dict:
    """``samples.png`` (a row per class, labelled) and ``denoising.gif`` (one sample per row, noise to image)."""
    s = cfg["sample"]
    labels, names = grid_labels(data, per_row)
    images, frames = sample_images(model, scheduler, labels, s["steps"], s["sampler"], seed=0,
                                   keep_every=max(1, s["steps"] // 20), **guidance_of(cfg, model))
    guided = guidance_words(cfg)
    save_grid(images, out_dir / "samples.png", nrow=per_row, row_labels=names, scale=1.0,
              title=f"{cfg['task']}, preset {cfg['preset']}: {s['sampler']}, {s['steps']} steps{guided}")
    save_gif([f[::per_row] for f in frames], out_dir / "denoising.gif", nrow=len(frames[0][::per_row]))
    return {}


def _evaluate_classes(cfg, result, scheduler, data, source, data_path) -> dict:
    """Class accuracy and classifier FID of the EMA weights (and the raw ones where the config asks), or why
    nothing was measured."""
    judge = cfg.get("judge", data.name)
    if not judge:
        return {"evaluation": "skipped: no judge for this data set"}
    if data.is_multi_hot:
        return {"evaluation": "skipped: a judge of classes cannot score multi-hot attributes"}
    if data.smoke_only:
        return {"evaluation": f"skipped: trained on {data.source}; give the real data to be judged"}
    s = cfg["sample"]
    models = {"ema": result.model, "raw": result.raw_model} if cfg.get("evaluate_raw") else {"ema": result.model}
    guidance = guidance_of(cfg, result.model)
    reports = evaluate_models(models, scheduler, judge, s["sampler"], s["steps"], cfg["eval_per_class"],
                              source=source, data_path=data_path, **guidance)
    out = reports["ema"].to_dict()  # the saved pipeline carries the EMA weights
    if "raw" in reports:
        out["raw"] = reports["raw"].to_dict()
    out.update(sampler=s["sampler"], sampling_steps=s["steps"], guidance_scale=guidance["guidance_scale"],
               model_evals_per_sample=model_evaluations(make_sampler(s["sampler"], scheduler), s["steps"],
                                                        guidance["guidance_scale"], guidance["guidance_interval"]))
    if guidance["guidance_interval"]:
        out["guidance_interval"] = list(guidance["guidance_interval"])
    return out


def _evaluate_text(cfg, model, noise_scheduler, data, out_dir: Path) -> dict:
    """Lesson 3: the guidance sweep (prompt fidelity at each scale, category accuracy where there are categories)
    and ``guidance.png``, a row per scale."""
    size = cfg["image_size"]
    judge, info = load_or_train_judge(f"twemoji{size}")
    s, scales = cfg["sample"], cfg["guidance_scales"]
    rows, images = guidance_sweep(model, noise_scheduler, data, judge, scales, cfg["eval_prompts"],
                                  steps=max(s["steps"], 2), sampler=s["sampler"])
    k = min(10, cfg["eval_prompts"])
    save_grid(torch.cat([images[sc][:k] for sc in scales]), out_dir / "guidance.png", nrow=k,
              row_labels=[f"s = {sc:g}" for sc in scales], title="the same prompts and noise at each guidance scale")
    out = {"guidance": rows, "judge_test_accuracy": info["test_accuracy"]}
    if data.categories is None:
        out["note"] = ("prompt fidelity is measured with the emoji judge's features; these captions have no "
                       "categories, so category accuracy is not")
    return out


# --------------------------------------------------------------------------- sample and evaluate files

def sample_to_file(checkpoint: str | os.PathLike, out: str | os.PathLike, per_class: int = 10, steps: int = 20,
                   sampler: str = "dpm", seed: int = 0, dataset: str | None = None, prompts: list[str] | None = None,
                   guidance_scale: float | None = None, guidance_interval: tuple[float, float] | None = None) -> Path:
    """Load a saved pipeline, draw samples and write them as an ``.npz``.

    A class-conditioned pipeline (lessons 1, 2 and 4) draws ``per_class`` samples of each class; a model trained
    with label dropout can be guided (``guidance_scale``; ``guidance_interval``: only the steps whose timestep
    lies in it). A text-to-image pipeline (lesson 3) draws
    ``per_class`` samples of each of ``prompts`` with guidance at ``guidance_scale`` (default
    :data:`~course_utils.sampling.DEFAULT_GUIDANCE_SCALE`); the file's ``labels`` then index its ``prompts``.
    Introduced in lesson 1; prompts in lesson 3.
    """
    if per_class < 1:
        raise ValueError(f"--per-class must be at least 1, got {per_class}")
    if steps < 1:
        raise ValueError(f"--steps must be at least 1 (the number of sampling steps), got {steps}")
    pipe = load_pipeline(checkpoint, device=default_device())  # the GPU where there is one: 5,000 MNIST samples
    pipe.scheduler = make_sampler(sampler, pipe.scheduler)      # took minutes on an H200's host CPU, seconds on it
    pipe.set_progress_bar_config(disable=False)
    dataset = dataset or _dataset_of(checkpoint) or ""
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    if isinstance(pipe, TextToImagePipeline):
        if not prompts:
            raise ValueError(f"{checkpoint} is a text-to-image pipeline (lesson 3): pass the prompts to draw, e.g. "
                             '--prompt "red apple" --prompt "dog face" (--per-class images of each)')
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompts must be strings")
        if pipe.config.label_dropout == 0 and guidance_scale not in (None, 1):
            raise ValueError(f"{checkpoint} was trained without label dropout, so it cannot be guided; pass "
                             "--guidance-scale 1 (the plain conditional model)")
        scale = DEFAULT_GUIDANCE_SCALE if guidance_scale is None else guidance_scale
        wanted = [p for p in prompts for _ in range(per_class)]
        images = pipe(wanted, guidance_scale=scale, num_inference_steps=steps, generator=generator,
                      output_type="pt", guidance_interval=guidance_interval).images
        labels, meta = labels_per_class(len(prompts), per_class), {"prompts": prompts, "guidance_scale": float(scale)}
    else:
        if prompts:
            raise ValueError(f"{checkpoint} is a class-conditioned pipeline: it takes class labels, not --prompt; "
                             f"leave --prompt out to draw --per-class samples of each of its {pipe.num_classes} "
                             "classes. --prompt is for text-to-image pipelines (`train captions`).")
        labels = labels_per_class(pipe.num_classes, per_class)
        images = pipe(labels, num_inference_steps=steps, generator=generator, output_type="pt",
                      guidance_scale=guidance_scale, guidance_interval=guidance_interval).images
        meta = {} if guidance_scale is None else {"guidance_scale": float(guidance_scale)}
    if guidance_interval is not None:
        meta["guidance_interval"] = [float(t) for t in guidance_interval]
    seconds = time.perf_counter() - start
    return save_samples_npz(out, images, labels, dataset=dataset, sampler=sampler, steps=steps, seed=seed,
                            seconds_per_sample=seconds / len(labels), **meta)


def _dataset_of(checkpoint: str | os.PathLike) -> str | None:
    """The data set a training run used, read from its ``metrics.json`` if it is there."""
    for d in (Path(checkpoint), Path(checkpoint).parent):
        if (d / "metrics.json").exists():
            m = json.loads((d / "metrics.json").read_text())
            return m.get("dataset") or m.get("task")
    return None


def evaluate_file(path: str | os.PathLike, dataset: str | None = None, source: str = "auto",
                  data_path: str | os.PathLike | None = None) -> dict:
    """Judge a samples file: class accuracy and classifier FID (with real-vs-real beside it). A file drawn
    for prompts (lesson 3) gets :func:`~course_utils.evaluation.evaluate_prompt_samples` instead.

    Introduced in lesson 1.
    """
    images, labels, meta = load_samples_npz(path)
    if "prompts" in meta:  # written from a text-to-image pipeline (lesson 3)
        return evaluate_prompt_samples(images, labels, [str(p) for p in meta["prompts"]], meta, source=source)
    dataset = dataset or meta.get("dataset") or None
    if not dataset:
        raise ValueError(f"{path} does not say which data set it imitates; pass --dataset (mnist, fashion_mnist, "
                         "twemoji16, twemoji32, sprites or cifar10)")
    judge, info = load_or_train_judge(str(dataset), source=source, path=data_path)
    c, h, w = judge.config.in_channels, judge.config.image_size, judge.config.image_size
    if tuple(images.shape[1:]) != (c, h, w):
        raise ValueError(f"{path} holds images of shape {tuple(images.shape[1:])}, but {dataset} images are "
                         f"{(c, h, w)}")
    if labels.numel() and labels.max() >= judge.config.num_classes:
        raise ValueError(f"label {labels.max().item()} is out of range for {dataset} "
                         f"({judge.config.num_classes} classes)")
    report = evaluate_samples(judge, images, labels, reference_images(str(dataset), source, data_path),
                              info["test_accuracy"])
    out = report.to_dict()
    out["dataset"] = str(dataset)
    for k in ("sampler", "steps", "seconds_per_sample", "guidance_scale", "guidance_interval"):
        if k in meta:
            out[k] = meta[k].tolist() if hasattr(meta[k], "tolist") else meta[k]
    return out

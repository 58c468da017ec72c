"""Lesson 4's jobs: train the hand-written UNet on a data set's YAML config, evaluate EMA against raw weights,
write the sample grid and the GIF of the generation process.

Introduced in lesson 4.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .data import ImageDataset, load_celeba, load_dataset, to_unit_range
from .metrics import evaluate_samples, load_or_train_judge
from .models import count_parameters
from .pipelines import ConditionalDDPMPipeline
from .plots import plot_losses, save_gif, save_images
from .presets import load_config
from .sampling import labels_per_class, sample_images
from .scratch import CosineDDPM, ScratchUNet
from .tasks import reference_images, save_pipeline_atomically, train_config_from_preset
from .training import train_diffusion


def scratch_dataset(cfg: dict, split: str = "train", source: str = "auto", data_path: str | Path | None = None,
                    verbose: bool = True) -> ImageDataset:
    """The data set a lesson-4 config names, with float label vectors (one-hot classes or multi-hot attributes).

    Introduced in lesson 4.
    """
    if cfg["dataset"] == "celeba":
        data = load_celeba(split, path=data_path, attributes=cfg.get("attributes"), size=cfg.get("image_size", 64),
                           source=source, limit=cfg.get("limit"), verbose=verbose)
    else:
        data = load_dataset(cfg["dataset"], split, source=source, path=data_path, verbose=verbose)
    return data.one_hot()


def build_scratch_unet(train_set: ImageDataset, model_cfg: dict) -> ScratchUNet:
    """A :class:`ScratchUNet` sized to the data (channels, resolution, number of labels, their names).

    Introduced in lesson 4.
    """
    c, size = train_set.image_shape[0], train_set.image_shape[1]
    return ScratchUNet(sample_size=size, in_channels=c, num_labels=train_set.num_classes,
                       label_names=list(train_set.classes), **model_cfg)


def grid_labels(train_set: ImageDataset, per_row: int, multi_hot: bool) -> tuple[torch.Tensor, list[str]]:
    """Label vectors for a sample grid and a name per row: a row per class for one-hot data; for multi-hot
    attributes, a row with none of them, then a row per attribute alone.

    Introduced in lesson 4.
    """
    k = train_set.num_classes
    if not multi_hot:
        rows = torch.eye(k)
        names = list(train_set.classes)
    else:
        rows = torch.cat([torch.zeros(1, k), torch.eye(k)])
        names = ["(none)"] + list(train_set.classes)
    return rows.repeat_interleave(per_row, dim=0), names


def is_multi_hot(train_set: ImageDataset) -> bool:
    """True when items may carry several labels at once (attributes), not exactly one class each.

    Introduced in lesson 4.
    """
    return bool((train_set.labels.sum(1) != 1).any())


def evaluate_weights(models: dict[str, torch.nn.Module], noise_scheduler, judge_name: str, sampler: str, steps: int,
                     per_class: int, seed: int = 0, source: str = "auto",
                     data_path: str | Path | None = None) -> dict[str, dict]:
    """Class accuracy and classifier FID of each model (say EMA and raw weights) on the same labels and noise.
    The judge and the real reference images come from the same data as training (``data_path``, ``source``).

    Introduced in lesson 4.
    """
    judge, info = load_or_train_judge(judge_name, source=source, path=data_path)
    reference = reference_images(judge_name, source=source, data_path=data_path)
    labels = labels_per_class(judge.config.num_classes, per_class)
    out = {}
    for name, model in models.items():
        start = time.perf_counter()
        images = to_unit_range(sample_images(model, noise_scheduler, labels, steps, sampler, seed=seed))
        seconds = time.perf_counter() - start
        report = evaluate_samples(judge, images, labels, reference, info["test_accuracy"], seed=seed)
        out[name] = {**report.to_dict(), "seconds_per_sample": round(seconds / len(labels), 4), "images": images}
    return out


def train_scratch(task: str = "emoji32", preset: str | None = None, out_dir: str | Path = "runs/emoji32",
                  config: str | Path | None = None, source: str = "auto", data_path: str | Path | None = None,
                  resume: bool = True, progress: bool = True, evaluate: bool = True,
                  overrides: dict | None = None) -> dict:
    """Train lesson 4's :class:`ScratchUNet` with the hand-written :class:`CosineDDPM`, as ``config`` (a YAML file;
    default: the one shipped for ``task``) says for ``preset``. Writes into ``out_dir``: ``pipeline/`` (EMA
    weights + the equal diffusers scheduler), ``samples.png`` (a row per class or attribute), ``denoising.gif``,
    ``loss.png``, ``losses.json`` and ``metrics.json`` (class accuracy and classifier FID of the EMA and the raw
    weights, where the data set has a judge). Returns the metrics.

    Introduced in lesson 4.
    """
    cfg = load_config(task, preset, config)
    cfg["train"].update(overrides or {})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_set = scratch_dataset(cfg, "train", source, data_path)
    multi_hot = is_multi_hot(train_set)
    train_cfg = train_config_from_preset(cfg, len(train_set))
    model = build_scratch_unet(train_set, cfg["model"])
    ddpm = CosineDDPM(prediction_type=cfg.get("prediction_type", "epsilon"))
    print(f"[train] {task} ({train_set.name}, {len(train_set)} images), preset {cfg['preset']}, config "
          f"{cfg['config_file']}: {count_parameters(model):,} parameters, {train_cfg.max_steps} steps of batch "
          f"{train_cfg.batch_size}")
    result = train_diffusion(model, ddpm, train_set, train_cfg, out_dir=out_dir, resume=resume, progress=progress,
                             null_condition=torch.zeros_like if train_cfg.cond_drop_prob > 0 else None)
    scheduler = ddpm.to_diffusers()
    save_pipeline_atomically(ConditionalDDPMPipeline(unet=result.model, scheduler=scheduler), out_dir / "pipeline")
    (out_dir / "losses.json").write_text(json.dumps(result.losses))
    plot_losses(result.losses, title=f"{task}: training loss", path=out_dir / "loss.png").figure.clear()

    metrics = {"task": task, "dataset": train_set.name, "preset": cfg["preset"], "config": cfg["config_file"],
               "parameters": count_parameters(model), "steps": result.step, "batch_size": train_cfg.batch_size,
               "train_seconds": round(result.train_seconds, 1), "stopped_early": result.stopped_early,
               "final_loss": sum(result.losses[-50:]) / min(50, len(result.losses)), "data_source": train_set.source,
               "num_train": len(train_set), "labels": "multi-hot" if multi_hot else "one-hot",
               "torch_threads": torch.get_num_threads()}
    s = cfg["sample"]
    per_row = 8
    labels, _ = grid_labels(train_set, per_row, multi_hot)
    images, frames = sample_images(result.model, scheduler, labels, s["steps"], s["sampler"], seed=0,
                                   keep_every=max(1, s["steps"] // 20))
    save_images(images, out_dir / "samples.png", nrow=per_row)
    save_gif([f[::per_row] for f in frames], out_dir / "denoising.gif", nrow=len(frames[0][::per_row]))
    judge = cfg.get("judge")
    if evaluate and judge and not multi_hot and not train_set.smoke_only:
        reports = evaluate_weights({"ema": result.model, "raw": result.raw_model}, scheduler, judge, s["sampler"],
                                   s["steps"], cfg["eval_per_class"], source=source, data_path=data_path)
        for name, report in reports.items():
            report.pop("images")
            metrics[name] = report
        metrics.update({k: v for k, v in reports["ema"].items()})  # the saved pipeline carries the EMA weights
        metrics.update({"sampler": s["sampler"], "sampling_steps": s["steps"], "model_evals_per_sample": s["steps"]})
    elif evaluate:
        metrics["evaluation"] = ("skipped: no judge for this data set" if not judge else
                                 "skipped: a judge of classes cannot score multi-hot attributes" if multi_hot else
                                 f"skipped: trained on {train_set.source}; give the real data to be judged")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def typical_combinations(train_set: ImageDataset, num_groups: int) -> tuple[torch.Tensor, list[str]]:
    """For multi-hot data whose first ``num_groups`` labels are groups (Twemoji categories) and the rest
    their members (subcategories): each group with its most frequent member, as label vectors and names.
    A grid of these shows the model combining two labels it was trained on together.

    Introduced in lesson 4.
    """
    labels, names = train_set.labels, train_set.classes
    rows, row_names = [], []
    for g in range(num_groups):
        members = labels[labels[:, g] == 1][:, num_groups:].sum(0)
        m = int(members.argmax()) + num_groups
        row = torch.zeros(len(names))
        row[[g, m]] = 1.0
        rows.append(row)
        row_names.append(f"{names[g]} + {names[m]}")
    return torch.stack(rows), row_names


@torch.no_grad()
def sample_guided(model, noise_scheduler, labels: torch.Tensor, guidance_scale: float, steps: int = 25,
                  sampler: str = "dpm", seed: int = 0) -> torch.Tensor:
    """Classifier-free guidance with a lesson-4 model trained with label dropout: the null condition is the
    all-zero label vector (every label token "absent"). Returns images in [-1, 1].

    Introduced in lesson 4.
    """
    from .models import label_vectors
    from .sampling import denoise
    from .schedulers import make_sampler
    from .text import guided_prediction

    cfg = model.config
    device = next(model.parameters()).device
    y = label_vectors(labels, cfg.num_labels).to(device)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((len(y), cfg.in_channels, cfg.sample_size, cfg.sample_size), generator=generator).to(device)
    model.eval()
    out, _ = denoise(lambda xt, t: guided_prediction(model, xt, t, y, torch.zeros_like(y), guidance_scale),
                     make_sampler(sampler, noise_scheduler), x, steps,
                     generator=generator if device.type == "cpu" else None)
    return out.cpu()


def guidance_accuracy(model, noise_scheduler, judge_name: str, scales: list[float], per_class: int,
                      steps: int = 25, sampler: str = "dpm", seed: int = 0,
                      data_path: str | Path | None = None) -> dict[float, float]:
    """Class accuracy (judged) of guided samples at each guidance scale, same labels and noise for each.

    Introduced in lesson 4.
    """
    from .metrics import class_accuracy

    judge, _ = load_or_train_judge(judge_name, path=data_path)
    labels = labels_per_class(judge.config.num_classes, per_class)
    return {s: class_accuracy(judge, to_unit_range(sample_guided(model, noise_scheduler, labels, s, steps, sampler,
                                                                 seed)), labels) for s in scales}


def section_train_config(cfg: dict, dataset_size: int, section: str | None = None):
    """The config's ``train`` recipe as a :class:`TrainConfig`, with the entries of ``cfg[section]["train"]``
    (the notebook's shorter ``multi_hot`` and ``exercise`` runs) put over it.

    Introduced in lesson 4.
    """
    train = {**cfg["train"], **((cfg.get(section) or {}).get("train", {}) if section else {})}
    return train_config_from_preset({**cfg, "train": train}, dataset_size)

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
from .models import ClassConditionedUnet, LabelConditionedUnet, count_parameters
from .pipelines import ConditionalDDPMPipeline, load_pipeline, load_samples_npz, save_samples_npz
from .plots import plot_losses, save_images
from .presets import get_preset
from .sampling import labels_per_class, sample_images
from .schedulers import make_noise_scheduler, make_sampler
from .training import TrainConfig, steps_for_epochs, train_diffusion

CLASS_CONDITIONED_TASKS = ("mnist", "fashion_mnist", "sprites")
CROSS_ATTENTION_TASKS = ("sprites",)  # lesson 2: labels reach the UNet through cross-attention


def train_config_from_preset(preset: dict, dataset_size: int) -> TrainConfig:
    """Turn a preset's ``train`` section (which may give ``epochs``, and ``min_steps`` for a small data set such as
    the offline Twemoji stand-in) into a :class:`TrainConfig`.

    Introduced in lesson 1.
    """
    kw = dict(preset["train"])
    min_steps = kw.pop("min_steps", 0)
    if "epochs" in kw:
        kw["max_steps"] = steps_for_epochs(kw.pop("epochs"), dataset_size, kw.get("batch_size", 128),
                                           kw.get("grad_accum_steps", 1))
    kw["max_steps"] = max(kw.get("max_steps", TrainConfig.max_steps), min_steps)  # a small data set: more epochs
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


def build_model(conditioning: str, train_set, model_cfg: dict):
    """A denoiser sized to the data: lesson 1's :class:`ClassConditionedUnet` (``conditioning="concatenation"``)
    or lesson 2's :class:`LabelConditionedUnet` (``"cross_attention"``).

    Introduced in lesson 2.
    """
    c, size = train_set.image_shape[0], train_set.image_shape[1]
    if conditioning == "cross_attention":
        return LabelConditionedUnet.build(num_classes=train_set.num_classes, in_channels=c, sample_size=size,
                                          class_names=list(train_set.classes), **model_cfg)
    if conditioning == "concatenation":
        return ClassConditionedUnet(num_classes=train_set.num_classes, in_channels=c, sample_size=size, **model_cfg)
    raise ValueError(f"conditioning must be 'concatenation' or 'cross_attention', got {conditioning!r}")


def pipeline_of(model, noise_scheduler) -> ConditionalDDPMPipeline:
    """Wrap a trained denoiser and its scheduler as a saveable :class:`ConditionalDDPMPipeline`.

    Introduced in lesson 2.
    """
    if isinstance(model, LabelConditionedUnet):
        return ConditionalDDPMPipeline(unet=model.unet, scheduler=noise_scheduler, label_encoder=model.label_encoder)
    return ConditionalDDPMPipeline(unet=model, scheduler=noise_scheduler)


def train_class_conditioned(task: str = "mnist", preset: str | None = None, out_dir: str | Path = "runs/mnist",
                            source: str = "auto", resume: bool = True, progress: bool = True,
                            evaluate: bool = True, overrides: dict | None = None,
                            data_path: str | Path | None = None, model_overrides: dict | None = None) -> dict:
    """Train a lesson's class-conditioned model with a preset, then write into ``out_dir``: ``pipeline/``
    (EMA weights + scheduler), ``samples.png`` (a row per class), ``loss.png``, ``losses.json`` and
    ``metrics.json`` (class accuracy, classifier FID beside real-vs-real, timings). Returns the metrics.

    ``task`` is ``mnist`` / ``fashion_mnist`` (lesson 1, channel concatenation) or ``sprites`` (lesson 2,
    cross-attention; ``data_path`` is the folder of the real sprite files, else Twemoji is used offline).
    ``overrides`` / ``model_overrides`` replace entries of the preset's ``train`` / ``model`` sections.
    Introduced in lesson 1; ``sprites`` in lesson 2.
    """
    if task not in CLASS_CONDITIONED_TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {CLASS_CONDITIONED_TASKS}")
    cfg = get_preset(task, preset)
    cfg["train"].update(overrides or {})
    cfg["model"].update(model_overrides or {})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    train_set = load_dataset(task, "train", source=source, path=data_path)
    if task in CROSS_ATTENTION_TASKS:
        train_set = train_set.one_hot()
    if cfg["train_subset"]:
        train_set = train_set.subset(cfg["train_subset"])
    train_cfg = train_config_from_preset(cfg, len(train_set))
    model = build_model("cross_attention" if task in CROSS_ATTENTION_TASKS else "concatenation", train_set,
                        cfg["model"])
    noise_scheduler = make_noise_scheduler(prediction_type=cfg.get("prediction_type", "epsilon"))
    print(f"[train] {task} ({train_set.name}), preset {preset or 'default'}: {count_parameters(model):,} "
          f"parameters, {train_cfg.max_steps} steps of batch {train_cfg.batch_size}")
    result = train_diffusion(model, noise_scheduler, train_set, train_cfg, out_dir=out_dir, resume=resume,
                             progress=progress)
    save_pipeline_atomically(pipeline_of(result.model, noise_scheduler), out_dir / "pipeline")
    (out_dir / "losses.json").write_text(json.dumps(result.losses))
    ax = plot_losses(result.losses, title=f"{task}: training loss", path=out_dir / "loss.png")
    ax.figure.clear()

    metrics = {"task": task, "dataset": train_set.name, "preset": preset, "parameters": count_parameters(model),
               "steps": result.step, "batch_size": train_cfg.batch_size,
               "train_seconds": round(result.train_seconds, 1), "stopped_early": result.stopped_early,
               "final_loss": sum(result.losses[-50:]) / min(50, len(result.losses)),
               "data_source": train_set.source, "num_train": len(train_set), "torch_threads": torch.get_num_threads()}
    if evaluate:
        s = cfg["sample"]
        report, images, labels, seconds = evaluate_pipeline(result.model, noise_scheduler, train_set.name,
                                                            s["sampler"], s["steps"], cfg["eval_per_class"],
                                                            source=source, data_path=data_path)
        per_row = min(10, cfg["eval_per_class"])  # samples come class by class: a row of each class
        grid = images.view(train_set.num_classes, cfg["eval_per_class"], *images.shape[1:])[:, :per_row]
        save_images(grid.flatten(0, 1), out_dir / "samples.png", nrow=per_row)
        metrics.update(report.to_dict())
        metrics.update({"sampler": s["sampler"], "sampling_steps": s["steps"], "model_evals_per_sample": s["steps"],
                        "seconds_per_sample": round(seconds / len(labels), 4)})
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def evaluate_pipeline(model, noise_scheduler, dataset: str, sampler: str, steps: int, per_class: int, seed: int = 0,
                      source: str = "auto", data_path: str | Path | None = None):
    """Sample ``per_class`` images of every class and judge them with ``dataset``'s judge.
    Returns ``(report, images01, labels, seconds)``.

    Introduced in lesson 1.
    """
    judge, info = load_or_train_judge(dataset, source=source, path=data_path)
    reference = reference_images(dataset, source=source, data_path=data_path)
    labels = labels_per_class(judge.config.num_classes, per_class)
    start = time.perf_counter()
    images = to_unit_range(sample_images(model, noise_scheduler, labels, steps, sampler, seed=seed))
    seconds = time.perf_counter() - start
    report = evaluate_samples(judge, images, labels, reference, info["test_accuracy"], seed=seed)
    return report, images, labels, seconds


def reference_images(dataset: str, source: str = "auto", data_path: str | Path | None = None) -> torch.Tensor:
    """Real images (uint8) that generated samples are compared with for FID: the test split, or for Twemoji,
    whose test split has under 200 images, every real emoji (FID needs a few hundred per side).

    Introduced in lesson 2.
    """
    split = "all" if dataset.startswith("twemoji") else "test"
    return load_dataset(dataset, split, source=source, verbose=False, path=data_path).images


def compare_conditioning(task: str = "sprites", preset: str | None = None, budget_s: float | None = None,
                         source: str = "auto", data_path: str | Path | None = None, seed: int = 0,
                         progress: bool = False) -> dict[str, dict]:
    """Lesson 1's channel concatenation against lesson 2's cross-attention on the same data with the same
    training-time budget (``preset["compare_budget_s"]`` unless given), learning rate held after warm-up.
    Returns, per variant: parameters, steps, images per second, class accuracy, classifier FID (with
    real-vs-real) and milliseconds per sample.

    Introduced in lesson 2.
    """
    cfg = get_preset(task, preset)
    budget_s = budget_s or cfg["compare_budget_s"]
    data = load_dataset(task, "train", source=source, path=data_path, verbose=False)
    variants = {
        "concatenation (lesson 1)": ("concatenation", data.with_class_indices(), cfg["concat_model"]),
        "cross-attention (lesson 2)": ("cross_attention", data.one_hot(), cfg["model"]),
    }
    results = {}
    for name, (conditioning, train_set, model_cfg) in variants.items():
        torch.manual_seed(seed)
        model = build_model(conditioning, train_set, model_cfg)
        noise_scheduler = make_noise_scheduler(prediction_type=cfg.get("prediction_type", "epsilon"))
        train_cfg = train_config_from_preset(cfg, len(train_set))
        train_cfg.max_steps, train_cfg.time_limit_s = 10**6, budget_s
        train_cfg.lr_schedule, train_cfg.checkpoint_every = "constant_with_warmup", 0
        result = train_diffusion(model, noise_scheduler, train_set, train_cfg, progress=progress)
        s = cfg["sample"]
        report, _, labels, seconds = evaluate_pipeline(result.model, noise_scheduler, data.name, s["sampler"],
                                                       s["steps"], cfg["eval_per_class"], seed=seed, source=source,
                                                       data_path=data_path)
        results[name] = {"parameters": count_parameters(model), "steps": result.step,
                         "train_seconds": round(result.train_seconds, 1),
                         "images_per_second": round(result.step * train_cfg.batch_size / result.train_seconds, 1),
                         "class_accuracy": report.class_accuracy, "fid": report.fid,
                         "fid_real_vs_real": report.fid_real_vs_real,
                         "judge_test_accuracy": report.judge_test_accuracy,
                         "ms_per_sample": round(1000 * seconds / len(labels), 2)}
    return results


def mixed_label_shares(model, noise_scheduler, judge, class_a: int, class_b: int,
                       weights=(0.0, 0.25, 0.5, 0.75, 1.0), per_weight: int = 20, steps: int = 20,
                       sampler: str = "dpm", seed: int = 0):
    """Condition on a mix of two classes, ``(1 - w) * onehot(a) + w * onehot(b)``, for each ``w``, and report
    the share of samples the judge assigns to ``a``, to ``b`` and to neither. Returns ``(shares, images01)``
    where ``shares`` is a list of ``{"w", "a", "b", "other"}`` and ``images01`` has ``per_weight`` images per w.

    Introduced in lesson 2 (its exercise).
    """
    from .metrics import judge_predict
    k = judge.config.num_classes
    eye = torch.eye(k)
    labels = torch.cat([((1 - w) * eye[class_a] + w * eye[class_b]).expand(per_weight, k) for w in weights])
    images = to_unit_range(sample_images(model, noise_scheduler, labels, steps, sampler, seed=seed))
    predicted = judge_predict(judge, images)[0].argmax(1).view(len(weights), per_weight)
    shares = [{"w": float(w), "a": (p == class_a).float().mean().item(), "b": (p == class_b).float().mean().item(),
               "other": ((p != class_a) & (p != class_b)).float().mean().item()} for w, p in zip(weights, predicted)]
    return shares, images


def sample_to_file(checkpoint: str | Path, out: str | Path, per_class: int = 10, steps: int = 20,
                   sampler: str = "dpm", seed: int = 0, dataset: str | None = None,
                   prompts: list[str] | None = None, guidance_scale: float | None = None) -> Path:
    """Load a saved pipeline, draw samples and write them as an ``.npz``.

    A class-conditioned pipeline (lessons 1 and 2) draws ``per_class`` samples of each class. A text-to-image
    pipeline (lesson 3) draws ``per_class`` samples of each of ``prompts`` with classifier-free guidance at
    ``guidance_scale`` (default 3.0); the file's ``labels`` then index its ``prompts``.
    Introduced in lesson 1; prompts in lesson 3.
    """
    if per_class < 1:
        raise ValueError(f"--per-class must be at least 1, got {per_class}")
    pipe = load_pipeline(checkpoint, expected_model=None)
    make_sampler(sampler, pipe.scheduler)  # fail early on an unknown sampler name
    dataset = dataset or _dataset_of(checkpoint) or ""
    if not isinstance(pipe, ConditionalDDPMPipeline):
        if not prompts:
            raise ValueError(f"{checkpoint} is a text-to-image pipeline (lesson 3): pass the prompts to draw, e.g. "
                             '--prompt "red apple" --prompt "dog face" (--per-class images of each)')
        return _sample_prompts_to_file(pipe, out, list(prompts), per_class, steps, sampler, seed,
                                       3.0 if guidance_scale is None else guidance_scale, dataset)
    if prompts:
        raise ValueError(f"{checkpoint} is a class-conditioned pipeline (lesson 1 or 2): it takes class labels, not "
                         f"--prompt; leave --prompt out to draw --per-class samples of each of its "
                         f"{pipe.num_classes} classes. --prompt is for text-to-image pipelines (`train captions`).")
    if guidance_scale is not None:
        raise ValueError(f"{checkpoint} is a class-conditioned pipeline (lesson 1 or 2), which samples without "
                         "guidance; --guidance-scale is for text-to-image pipelines (`train captions`).")
    labels = labels_per_class(pipe.num_classes, per_class)
    start = time.perf_counter()
    images = to_unit_range(sample_images(pipe.denoiser, pipe.scheduler, labels, steps, sampler, seed=seed,
                                         progress=True))
    seconds = time.perf_counter() - start
    return save_samples_npz(out, images, labels, dataset=dataset, sampler=sampler, steps=steps, seed=seed,
                            seconds_per_sample=seconds / len(labels))


def _sample_prompts_to_file(pipe, out, prompts: list[str], per_class: int, steps: int, sampler: str, seed: int,
                            guidance_scale: float, dataset: str, batch_size: int = 256) -> Path:
    """Lesson 3's half of :func:`sample_to_file`: ``per_class`` images of each prompt, prompt by prompt."""
    if not all(isinstance(p, str) for p in prompts):
        raise TypeError("prompts must be strings")
    pipe.scheduler = make_sampler(sampler, pipe.scheduler)
    wanted = [p for p in prompts for _ in range(per_class)]
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    images = torch.cat([pipe(wanted[i:i + batch_size], guidance_scale=guidance_scale, num_inference_steps=steps,
                             generator=generator, output_type="pt").images
                        for i in range(0, len(wanted), batch_size)])
    seconds = time.perf_counter() - start
    return save_samples_npz(out, images, labels_per_class(len(prompts), per_class), dataset=dataset,
                            prompts=prompts, guidance_scale=float(guidance_scale), sampler=sampler, steps=steps,
                            seed=seed, seconds_per_sample=seconds / len(wanted))


def _dataset_of(checkpoint: str | Path) -> str | None:
    """The data set a training run used, read from its ``metrics.json`` if it is there."""
    for d in (Path(checkpoint), Path(checkpoint).parent):
        if (d / "metrics.json").exists():
            m = json.loads((d / "metrics.json").read_text())
            return m.get("dataset") or m.get("task")
    return None


def evaluate_file(path: str | Path, dataset: str | None = None, source: str = "auto",
                  data_path: str | Path | None = None) -> dict:
    """Judge a samples file: class accuracy and classifier FID (with real-vs-real beside it). A file drawn
    for prompts (lesson 3) gets :func:`evaluate_prompt_samples` instead.

    Introduced in lesson 1.
    """
    images, labels, meta = load_samples_npz(path)
    if "prompts" in meta:  # written from a text-to-image pipeline (lesson 3)
        return evaluate_prompt_samples(images, labels, [str(p) for p in meta["prompts"]], meta, source=source)
    dataset = dataset or meta.get("dataset") or None
    if not dataset:
        raise ValueError(f"{path} does not say which data set it imitates; pass --dataset (mnist, fashion_mnist, "
                         "twemoji16 or sprites)")
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
    for k in ("sampler", "steps", "seconds_per_sample"):
        if k in meta:
            out[k] = meta[k].item() if hasattr(meta[k], "item") else meta[k]
    return out


# ---------------------------------------------------------------- lesson 3: text

def prompt_hits(judge, images01: torch.Tensor, categories: torch.Tensor, own_images: torch.Tensor,
                reference_feats: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image drawn for an emoji caption, whether it follows its prompt (the measures of
    :func:`guidance_sweep` and of ``evaluate`` on a prompts file):
    * ``category_accuracy``: the judge assigns the image to ``categories[i]``, its emoji's category;
    * ``prompt_top1`` / ``prompt_top5``: row ``own_images[i]`` of ``reference_feats`` (the prompt's own training
      image, in the judge's feature space) is the nearest / among the 5 nearest to the image.
    Returns boolean tensors; their means are the rates. Introduced in lesson 3.
    """
    from .metrics import judge_predict
    logits, feats = judge_predict(judge, images01)
    nearest = torch.cdist(feats, reference_feats).topk(min(5, len(reference_feats)), largest=False).indices
    return {"category_accuracy": logits.argmax(1) == categories,
            "prompt_top1": nearest[:, 0] == own_images,
            "prompt_top5": (nearest == own_images[:, None]).any(1)}


def evaluate_prompt_samples(images01: torch.Tensor, labels: torch.Tensor, prompts: list[str], meta: dict | None = None,
                            source: str = "auto") -> dict:
    """Judge images drawn for ``prompts`` (``labels[i]`` indexes the prompt of image ``i``) with the Twemoji judge
    at the images' size. For prompts that are emoji names: category accuracy; for names of training emoji also
    prompt fidelity top-1 / top-5 against the training images, as in :func:`guidance_sweep`. Other prompts (a
    COCO caption, free text) have no known category or image: they are listed under ``unknown_prompts``, left
    out of the measures, and ``note`` says so.

    Introduced in lesson 3.
    """
    from .data import TWEMOJI_CATEGORIES
    from .metrics import judge_predict
    from .text import load_emoji_captions
    meta = meta or {}
    out = {"samples": "text-to-image", "num_samples": len(images01), "num_prompts": len(prompts)}
    for k in ("dataset", "guidance_scale", "sampler", "steps", "seconds_per_sample"):
        if k in meta and meta[k] != "":
            out[k] = meta[k].item() if hasattr(meta[k], "item") else meta[k]
    if labels.numel() and (labels.min() < 0 or labels.max() >= len(prompts)):
        raise ValueError(f"labels must index the file's {len(prompts)} prompts, found {labels.min().item()} .. "
                         f"{labels.max().item()}")
    c, h, w = images01.shape[1:]
    if c != 3 or h != w:
        out["note"] = (f"images of shape {(c, h, w)}: the emoji judge needs square RGB images, so nothing "
                       "was measured")
        return out
    everything = load_emoji_captions(h, "all", verbose=False)
    train = load_emoji_captions(h, "train", verbose=False)
    where = [everything.index_of_caption(p) for p in prompts]
    prompt_category = torch.tensor([int(everything.categories[i]) if i >= 0 else -1 for i in where])
    prompt_own = torch.tensor([train.index_of_caption(p) for p in prompts])
    unknown = [p for p, i in zip(prompts, where) if i < 0]
    held_out = [p for p, i, j in zip(prompts, where, prompt_own.tolist()) if i >= 0 and j < 0]
    notes = []
    shown = ", ".join(map(repr, unknown[:3])) + (", ..." if len(unknown) > 3 else "")
    if unknown and len(unknown) == len(prompts):
        what = ("the prompt is not an emoji name" if len(prompts) == 1
                else f"none of the {len(prompts)} prompts is an emoji name")
        notes.append(f"{what} ({shown}): category accuracy and prompt fidelity need the emoji's category and "
                     "training image, so they were not measured")
    elif unknown:
        verb = "is not an emoji name" if len(unknown) == 1 else "are not emoji names"
        notes.append(f"{len(unknown)} of {len(prompts)} prompts {verb} ({shown}): category and own image unknown, "
                     "so their images are left out of every measure")
    if held_out:
        verb = "names an emoji" if len(held_out) == 1 else "name emoji"
        notes.append(f"{len(held_out)} of {len(prompts)} prompts {verb} of the held-out split, which has no "
                     "training image: counted for category accuracy, not for prompt fidelity")
    out.update(unknown_prompts=unknown, held_out_prompts=held_out)
    if notes:
        out["note"] = "; ".join(notes)
    if len(unknown) == len(prompts):
        return out
    judge_name = f"twemoji{h}"
    judge, info = load_or_train_judge(judge_name, source=source, verbose=False)
    categories, own = prompt_category[labels], prompt_own[labels]
    _, train_feats = judge_predict(judge, train.images.float() / 255.0)
    hits = prompt_hits(judge, images01, categories, own, train_feats)
    known = {"category_accuracy": categories >= 0, "prompt_top1": own >= 0, "prompt_top5": own >= 0}

    def rate(key, rows=slice(None)):
        k = known[key][rows]
        return round(hits[key][rows][k].float().mean().item(), 4) if k.any() else None

    out.update({key: rate(key) for key in hits})
    out.update(judge=judge_name, judge_test_accuracy=info["test_accuracy"],
               category_measured_on=int(known["category_accuracy"].sum()),
               fidelity_measured_on=int(known["prompt_top1"].sum()))
    out["per_prompt"] = [{"prompt": p, "category": TWEMOJI_CATEGORIES[cat] if cat >= 0 else None,
                          "images": int((labels == i).sum()),
                          "category_accuracy": rate("category_accuracy", labels == i),
                          "prompt_top5": rate("prompt_top5", labels == i)}
                         for i, (p, cat) in enumerate(zip(prompts, prompt_category.tolist()))]
    return out


def guidance_sweep(model, noise_scheduler, data, judge, scales, num_prompts: int, steps: int = 20,
                   sampler: str = "dpm", seed: int = 0) -> tuple[list[dict], dict]:
    """For ``num_prompts`` training captions (one per emoji, a fixed random choice) and each guidance scale:
    generate one image per prompt and measure
    * **category accuracy**: the judge assigns the image to the emoji's category;
    * **prompt fidelity top-1 / top-5**: the prompt's own training image is the nearest (or among the 5 nearest)
      training image in the judge's feature space.
    ``data`` is a :class:`CaptionedImages` with cached embeddings and ``categories``. Returns the rows and the
    images of each scale. Introduced in lesson 3.
    """
    from .metrics import judge_predict
    from .sampling import denoise
    from .text import guided_prediction
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data), generator=g)[:num_prompts]
    first = data._offsets[idx]                        # the first caption of each chosen image
    cond = {"hidden": data.hidden[first], "mask": data.mask[first]}
    null = {"hidden": data.null_hidden.expand_as(cond["hidden"]), "mask": data.null_mask.expand_as(cond["mask"])}
    _, train_feats = judge_predict(judge, data.images.float() / 255.0)
    cfg = model.config
    rows, images = [], {}
    model.eval()
    for scale in scales:
        sched = make_sampler(sampler, noise_scheduler)
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn((len(idx), cfg.in_channels, cfg.sample_size, cfg.sample_size), generator=gen)
        with torch.no_grad():
            out, _ = denoise(lambda xt, t: guided_prediction(model, xt, t, cond, null, scale), sched, x, steps,
                             generator=gen)
        imgs = to_unit_range(out)
        hits = prompt_hits(judge, imgs, data.categories[idx], idx, train_feats)
        rows.append({"guidance_scale": scale, **{k: v.float().mean().item() for k, v in hits.items()}})
        images[scale] = imgs
    return rows, images


def train_captions(preset: str | None = None, out_dir: str | Path = "runs/captions", coco: str | Path | None = None,
                   backend: str | None = None, resume: bool = True, progress: bool = True, evaluate: bool = True,
                   overrides: dict | None = None) -> dict:
    """Lesson 3's main job: a text-conditioned UNet with label dropout on emoji names (or COCO captions with
    ``coco=ROOT``), then a guidance sweep. Writes ``pipeline/``, ``loss.png``, ``guidance.png`` and
    ``metrics.json`` into ``out_dir``; returns the metrics.

    Introduced in lesson 3.
    """
    from accelerate import PartialState

    from .metrics import load_or_train_judge
    from .models import TextConditionedUnet
    from .pipelines import TextToImagePipeline
    from .text import load_coco_captions, load_emoji_captions, load_text_encoder, null_condition_fn
    cfg = get_preset("captions", preset)
    cfg["train"].update(overrides or {})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder = load_text_encoder(backend or cfg["text_backend"], max_length=cfg["text_max_length"])
    size = cfg["image_size"]
    data = (load_coco_captions(coco, "train", size=size) if coco else load_emoji_captions(size, "train"))
    data.cache_embeddings(encoder)
    model = TextConditionedUnet(text_dim=encoder.hidden_size, sample_size=size, text_backend=encoder.backend,
                                text_max_length=encoder.max_length, **cfg["model"])
    noise_scheduler = make_noise_scheduler(prediction_type=cfg["prediction_type"])
    train_cfg = train_config_from_preset(cfg, len(data))
    result = train_diffusion(model, noise_scheduler, data, train_cfg, out_dir=out_dir, resume=resume,
                             null_condition=null_condition_fn(data.null_hidden, data.null_mask), progress=progress)
    metrics = {"task": "captions", "dataset": data.name, "preset": preset, "text_encoder": encoder.backend,
               "parameters": count_parameters(model), "steps": result.step, "batch_size": train_cfg.batch_size,
               "train_seconds": round(result.train_seconds, 1), "cond_drop_prob": train_cfg.cond_drop_prob,
               "data_source": data.source, "num_train": len(data)}
    if not PartialState().is_main_process:
        return metrics
    save_pipeline_atomically(TextToImagePipeline(unet=result.model, scheduler=noise_scheduler), out_dir / "pipeline")
    ax = plot_losses(result.losses, title="captions: training loss", path=out_dir / "loss.png")
    ax.figure.clear()
    if evaluate and not coco:
        judge, info = load_or_train_judge(f"twemoji{size}")
        s = cfg["sample"]
        rows, images = guidance_sweep(result.model, noise_scheduler, data, judge, cfg["guidance_scales"],
                                      cfg["eval_prompts"], steps=max(s["steps"], 2), sampler="dpm")
        metrics.update(guidance=rows, judge_test_accuracy=info["test_accuracy"])
        k = min(10, cfg["eval_prompts"])
        save_images(torch.cat([images[sc][:k] for sc in cfg["guidance_scales"]]), out_dir / "guidance.png", nrow=k)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics

"""Measured quality: a judge classifier trained on the real data, class accuracy of generated samples, FID
computed in the judge's feature space (with the real-vs-real figure beside it), and for text prompts how often
a sample is nearest its own prompt's image.

Introduced in lesson 1; prompt fidelity in lesson 3.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn
from tqdm.auto import tqdm

from .data import (
    TWEMOJI_CATEGORIES,
    DatasetUnavailableError,
    data_root,
    load_dataset,
    load_emoji_captions,
    to_unit_range,
)
from .files import atomic_path, pretrained_dir
from .sampling import labels_per_class, sample_images


class JudgeClassifier(ModelMixin, ConfigMixin):
    """A small CNN that classifies real images; its penultimate layer is the feature space for FID.

    Takes images in [0, 1]. Introduced in lesson 1.
    """

    @register_to_config
    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28, width: int = 32,
                 feature_dim: int = 128):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.MaxPool2d(2))

        self.body = nn.Sequential(block(in_channels, width), block(width, 2 * width),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(2 * width, feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(feature_dim, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.sub(0.5).div(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _batches(n, batch_size):
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


def random_shift(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Shift each image by its own random offset of up to ``max_shift`` pixels (zero padding).

    Introduced in lesson 1.
    """
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, b, 1))
    rows = (torch.arange(h) + dy)[:, :, None]  # (B, H, 1)
    cols = (torch.arange(w) + dx)[:, None, :]  # (B, 1, W)
    return padded[torch.arange(b)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)


def train_judge(train_images_uint8: torch.Tensor, train_labels: torch.Tensor, num_classes: int,
                epochs: int = 3, batch_size: int = 128, lr: float = 3e-3, seed: int = 0,
                progress: bool = True, max_steps: int | None = None, min_steps: int = 0,
                flip: bool = False) -> JudgeClassifier:
    """Train the judge on real images (uint8) with light shift augmentation (and horizontal flips if
    ``flip``); OneCycle schedule. A small data set gets at least ``min_steps`` steps.

    Introduced in lesson 1; ``min_steps`` and ``flip`` in lesson 2 (a few hundred emoji).
    """
    torch.manual_seed(seed)
    c, h, _ = train_images_uint8.shape[1:]
    judge = JudgeClassifier(in_channels=c, num_classes=num_classes, image_size=h)
    n = len(train_labels)
    batch_size = min(batch_size, n)
    steps = max(epochs * (n // batch_size), min_steps)
    if max_steps is not None:
        steps = min(steps, max_steps)
    opt = torch.optim.AdamW(judge.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1))
    judge.train()
    step = 0
    bar = tqdm(total=steps, desc="judge", disable=not progress)
    while step < steps:
        perm = torch.randperm(n)
        for sl in _batches(n - n % batch_size, batch_size):
            idx = perm[sl]
            x = random_shift(train_images_uint8[idx].float() / 255.0, 2 if h >= 28 else 1)
            if flip:
                x = torch.where(torch.rand(len(x), 1, 1, 1) < 0.5, x.flip(-1), x)
            loss = F.cross_entropy(judge(x), train_labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
            if step >= steps:
                break
    bar.close()
    judge.eval()
    return judge


@torch.no_grad()
def judge_predict(judge: JudgeClassifier, images01: torch.Tensor, batch_size: int = 512):
    """Logits and features of images in [0, 1].

    Introduced in lesson 1.
    """
    judge.eval()
    logits, feats = [], []
    for sl in _batches(len(images01), batch_size):
        f = judge.features(images01[sl].float())
        feats.append(f)
        logits.append(judge.head(f))
    if not feats:
        return torch.empty(0, judge.config.num_classes), torch.empty(0, judge.config.feature_dim)
    return torch.cat(logits), torch.cat(feats)


def class_accuracy(judge: JudgeClassifier, images01: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of images that the judge assigns to the requested class.

    Introduced in lesson 1.
    """
    if len(labels) == 0:
        raise ValueError("class_accuracy needs at least one image")
    logits, _ = judge_predict(judge, images01)
    return (logits.argmax(1) == torch.as_tensor(labels)).float().mean().item()


def per_class_accuracy(judge: JudgeClassifier, images01: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Class accuracy for each class separately (NaN for a class with no image).

    Introduced in lesson 1.
    """
    logits, _ = judge_predict(judge, images01)
    hit = (logits.argmax(1) == labels).float()
    return [hit[labels == c].mean().item() if (labels == c).any() else float("nan")
            for c in range(judge.config.num_classes)]


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets:
    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2).

    Introduced in lesson 1.
    """
    if len(feats_a) < 2 or len(feats_b) < 2:
        raise ValueError("FID needs at least two images on each side")
    a, b = feats_a.double(), feats_b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)

    def sqrtm_psd(m):
        vals, vecs = torch.linalg.eigh((m + m.T) / 2)
        return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T

    root_a = sqrtm_psd(cov_a)
    cross = sqrtm_psd(root_a @ cov_b @ root_a)
    fid = (mu_a - mu_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * torch.trace(cross)
    return float(fid.clamp(min=0))


def classifier_fid(judge: JudgeClassifier, images_a01: torch.Tensor, images_b01: torch.Tensor) -> float:
    """FID in the judge's feature space (as fastai's course does), between two sets of images in [0, 1].

    Introduced in lesson 1.
    """
    _, fa = judge_predict(judge, images_a01)
    _, fb = judge_predict(judge, images_b01)
    return frechet_distance(fa, fb)


@dataclass
class QualityReport:
    """Class accuracy and classifier FID of generated samples, with the real-data references.

    Introduced in lesson 1.
    """

    class_accuracy: float
    per_class_accuracy: list[float]
    fid: float
    fid_real_vs_real: float
    judge_test_accuracy: float
    num_samples: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def __str__(self) -> str:
        return (f"class accuracy {self.class_accuracy:.1%} (judge on real test images: "
                f"{self.judge_test_accuracy:.1%}); classifier FID {self.fid:.2f} "
                f"(real vs real: {self.fid_real_vs_real:.2f}); {self.num_samples} samples")


def evaluate_samples(judge: JudgeClassifier, images01: torch.Tensor, labels: torch.Tensor,
                     real_test_uint8: torch.Tensor, judge_test_accuracy: float, seed: int = 0) -> QualityReport:
    """Judge generated images (in [0, 1]) against real test images.

    FID compares the samples with as many real test images; real-vs-real compares two disjoint sets of
    real test images of that size, the floor that the samples' FID should be read against.
    Introduced in lesson 1.
    """
    n = len(labels)
    if n < 2:
        raise ValueError("evaluate_samples needs at least two generated images")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(real_test_uint8), generator=g)
    m = min(n, len(perm) // 2)
    real_a = real_test_uint8[perm[:m]].float() / 255.0
    real_b = real_test_uint8[perm[m:2 * m]].float() / 255.0
    return QualityReport(
        class_accuracy=class_accuracy(judge, images01, labels),
        per_class_accuracy=per_class_accuracy(judge, images01, labels),
        fid=classifier_fid(judge, images01, real_a),
        fid_real_vs_real=classifier_fid(judge, real_b, real_a),
        judge_test_accuracy=judge_test_accuracy,
        num_samples=n,
    )


# --------------------------------------------------------------------------- cached judges

def judge_dirs(dataset_name: str) -> list[Path]:
    """Where a judge is looked for: the user cache, then the copy shipped in ``data/pretrained/judges``.

    Introduced in lesson 1.
    """
    dirs = [data_root() / "judges" / dataset_name]
    try:
        dirs.append(pretrained_dir("judges") / dataset_name)
    except FileNotFoundError:  # installed without the repository: judges are trained and cached
        pass
    return dirs


def load_or_train_judge(dataset_name: str, epochs: int = 3, progress: bool = True, source: str = "auto",
                        verbose: bool = True, path: str | Path | None = None) -> tuple[JudgeClassifier, dict]:
    """The judge for a data set: loaded from the cache (or ``data/pretrained``) if there, else trained on the
    real training set, scored on the real test set, and cached. Returns ``(judge, info)`` where ``info``
    holds its test accuracy and how it was made.

    Introduced in lesson 1.
    """
    for d in judge_dirs(dataset_name):
        if (d / "judge_info.json").exists():
            judge = JudgeClassifier.from_pretrained(d)
            judge.eval()
            info = json.loads((d / "judge_info.json").read_text())
            if verbose:
                print(f"[judge] {dataset_name}: loaded from {d} (test accuracy {info['test_accuracy']:.2%})",
                      file=sys.stderr)
            return judge, info
    train = load_dataset(dataset_name, "train", source=source, verbose=verbose, path=path)
    if train.smoke_only:  # a judge of 20 images would be cached and later trusted on real samples
        raise DatasetUnavailableError(
            f"no {dataset_name} judge can be trained on {train.source}: class accuracy and classifier FID need the "
            f"real training data. Pass its folder (--data DIR) or let torchvision download it, then run "
            f"`python -m course_utils judge {dataset_name}`.")
    test = load_dataset(dataset_name, "test", source=source, verbose=verbose, path=path)
    rgb = train.image_shape[0] == 3  # emoji and sprites: few images, and a mirrored one is the same class
    start = time.perf_counter()
    judge = train_judge(train.images, train.class_indices, train.num_classes, epochs=epochs, progress=progress,
                        min_steps=1500 if rgb else 0, flip=rgb)
    seconds = time.perf_counter() - start
    acc = class_accuracy(judge, test.images.float() / 255.0, test.class_indices)
    info = {"dataset": dataset_name, "test_accuracy": acc, "epochs": epochs, "train_seconds": round(seconds, 1),
            "train_source": train.source, "num_train": len(train), "num_test": len(test)}
    out = judge_dirs(dataset_name)[0]
    with atomic_path(out) as tmp:
        judge.save_pretrained(tmp)
        (tmp / "judge_info.json").write_text(json.dumps(info, indent=2))
    if verbose:
        print(f"[judge] {dataset_name}: trained in {seconds:.0f} s, test accuracy {acc:.2%}; cached in {out}",
              file=sys.stderr)
    return judge, info


def reference_images(dataset: str, source: str = "auto", data_path: str | os.PathLike | None = None) -> torch.Tensor:
    """Real images (uint8) that generated samples are compared with for FID: the test split, or for Twemoji,
    whose test split has under 200 images, every real emoji (FID needs a few hundred per side).

    Introduced in lesson 2.
    """
    split = "all" if dataset.startswith("twemoji") else "test"
    return load_dataset(dataset, split, source=source, verbose=False, path=data_path).images


@dataclass
class Evaluation:
    """A model's samples and their judgement: the :class:`QualityReport`, the images (in [0, 1]), the labels
    they were asked for, and the sampling time per image.

    Introduced in lesson 1.
    """

    report: QualityReport
    images: torch.Tensor
    labels: torch.Tensor
    seconds_per_sample: float

    def to_dict(self) -> dict:
        return {**self.report.to_dict(), "seconds_per_sample": round(self.seconds_per_sample, 4)}


def evaluate_models(models: dict, noise_scheduler, dataset: str, sampler: str = "ddpm", steps: int = 25,
                    per_class: int = 100, seed: int = 0, source: str = "auto",
                    data_path: str | os.PathLike | None = None, guidance_scale: float | None = None,
                    null_condition=None, guidance_interval=None, progress: bool = False) -> dict[str, Evaluation]:
    """Sample ``per_class`` images of every class with each model (for example ``{"EMA": ..., "raw": ...}``),
    from the same labels and the same noise, and judge them with ``dataset``'s judge against its real images
    (from ``data_path`` when given). Returns an :class:`Evaluation` per model.

    Introduced in lesson 1; several models in lesson 4.
    """
    judge, info = load_or_train_judge(dataset, source=source, path=data_path)
    reference = reference_images(dataset, source=source, data_path=data_path)
    labels = labels_per_class(judge.config.num_classes, per_class)
    out = {}
    for name, model in models.items():
        start = time.perf_counter()
        images = to_unit_range(sample_images(model, noise_scheduler, labels, steps, sampler, seed=seed,
                                             guidance_scale=guidance_scale, null_condition=null_condition,
                                             guidance_interval=guidance_interval,
                                             progress=progress))
        seconds = time.perf_counter() - start
        report = evaluate_samples(judge, images, labels, reference, info["test_accuracy"], seed=seed)
        out[name] = Evaluation(report, images, labels, seconds / len(labels))
    return out


def evaluate_model(model, noise_scheduler, dataset: str, sampler: str = "ddpm", steps: int = 25,
                   per_class: int = 100, seed: int = 0, **kwargs) -> Evaluation:
    """:func:`evaluate_models` for one model.

    Introduced in lesson 1.
    """
    return evaluate_models({"model": model}, noise_scheduler, dataset, sampler, steps, per_class, seed,
                           **kwargs)["model"]


# --------------------------------------------------------------------------- text prompts (lesson 3)

def prompt_hits(judge, images01: torch.Tensor, categories: torch.Tensor | None, own_images: torch.Tensor,
                reference_feats: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per image drawn for a training caption, whether it follows its prompt:

    * ``prompt_top1`` / ``prompt_top5``: row ``own_images[i]`` of ``reference_feats`` (the prompt's own training
      image, in the judge's feature space) is the nearest / among the 5 nearest to the image;
    * ``category_accuracy`` (when ``categories`` is given, as for emoji): the judge assigns the image to
      ``categories[i]``, its emoji's category. COCO captions have no category, so only fidelity is measured.

    Returns boolean tensors; their means are the rates. Introduced in lesson 3.
    """
    logits, feats = judge_predict(judge, images01)
    nearest = torch.cdist(feats, reference_feats).topk(min(5, len(reference_feats)), largest=False).indices
    hits = {"prompt_top1": nearest[:, 0] == own_images, "prompt_top5": (nearest == own_images[:, None]).any(1)}
    if categories is not None:
        hits = {"category_accuracy": logits.argmax(1) == categories, **hits}
    return hits


def evaluate_prompt_samples(images01: torch.Tensor, labels: torch.Tensor, prompts: list[str], meta: dict | None = None,
                            source: str = "auto") -> dict:
    """Judge images drawn for ``prompts`` (``labels[i]`` indexes the prompt of image ``i``) with the Twemoji judge
    at the images' size. For prompts that are emoji names: category accuracy; for names of training emoji also
    prompt fidelity top-1 / top-5 against the training images, as in :func:`guidance_sweep`. Other prompts (a
    COCO caption, free text) have no known category or image: they are listed under ``unknown_prompts``, left
    out of the measures, and ``note`` says so.

    Introduced in lesson 3.
    """
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
    """For ``num_prompts`` training captions (the first caption of a fixed random choice of images) and each
    guidance scale: one image per prompt, from the same noise at every scale, measured by
    * **prompt fidelity top-1 / top-5**: the prompt's own training image is the nearest (or among the 5 nearest)
      training image in the judge's feature space;
    * **category accuracy** where the images have categories (emoji): the judge assigns the image to the emoji's
      category. COCO captions have none, so there only fidelity is measured.
    ``data`` is a :class:`~course_utils.data.CaptionedImages` with cached embeddings. Returns the rows and the
    images (in [0, 1]) of each scale. Introduced in lesson 3.
    """
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:num_prompts]
    cond = data.conditions(idx)
    categories = data.categories[idx] if data.categories is not None else None
    _, train_feats = judge_predict(judge, data.images.float() / 255.0)
    rows, images = [], {}
    for scale in scales:
        imgs = to_unit_range(sample_images(model, noise_scheduler, cond, steps, sampler, seed=seed,
                                           guidance_scale=scale, null_condition=data.null_condition()))
        hits = prompt_hits(judge, imgs, categories, idx, train_feats)
        rows.append({"guidance_scale": scale, **{k: v.float().mean().item() for k, v in hits.items()}})
        images[scale] = imgs
    return rows, images


def guidance_accuracy(model, noise_scheduler, judge_name: str, scales, per_class: int, steps: int = 25,
                      sampler: str = "dpm", seed: int = 0, null_condition=torch.zeros_like,
                      data_path: str | os.PathLike | None = None) -> dict[float, float]:
    """Class accuracy (judged) of guided samples at each guidance scale, the same labels and noise for each.
    The null condition defaults to the all-zero label vector, lesson 4's "no label".

    Introduced in lesson 4.
    """
    judge, _ = load_or_train_judge(judge_name, path=data_path)
    labels = torch.eye(judge.config.num_classes)[labels_per_class(judge.config.num_classes, per_class)]
    return {s: class_accuracy(judge, to_unit_range(sample_images(model, noise_scheduler, labels, steps, sampler,
                                                                 seed=seed, guidance_scale=s,
                                                                 null_condition=null_condition)),
                              labels.argmax(1)) for s in scales}

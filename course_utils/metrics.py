"""Measured quality: a judge classifier trained on the real data, class accuracy of generated
samples, and FID computed in the judge's feature space (with the real-vs-real figure beside it).

Introduced in lesson 1.
"""
from __future__ import annotations

import json
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
    """Where a judge is looked for: the user cache, then the copy shipped in ``data/pretrained``.

    Introduced in lesson 1.
    """
    from .data import data_root
    repo_pretrained = Path(__file__).resolve().parents[1] / "data" / "pretrained" / "judges" / dataset_name
    return [data_root() / "judges" / dataset_name, repo_pretrained]


def load_or_train_judge(dataset_name: str, epochs: int = 3, progress: bool = True, source: str = "auto",
                        verbose: bool = True, path: str | Path | None = None) -> tuple[JudgeClassifier, dict]:
    """The judge for a data set: loaded from the cache (or ``data/pretrained``) if there, else trained on the
    real training set, scored on the real test set, and cached. Returns ``(judge, info)`` where ``info``
    holds its test accuracy and how it was made.

    Introduced in lesson 1.
    """
    from .data import DatasetUnavailableError, load_dataset
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
    tmp = out.with_name(out.name + ".tmp")
    judge.save_pretrained(tmp)
    (tmp / "judge_info.json").write_text(json.dumps(info, indent=2))
    if out.exists():
        import shutil
        shutil.rmtree(out)
    tmp.replace(out)
    if verbose:
        print(f"[judge] {dataset_name}: trained in {seconds:.0f} s, test accuracy {acc:.2%}; cached in {out}",
              file=sys.stderr)
    return judge, info

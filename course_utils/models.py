"""Conditional denoisers used in the lessons.

Models are diffusers-style (``ModelMixin`` + ``ConfigMixin``) so ``save_pretrained`` /
``from_pretrained`` round-trip in safetensors and a checkpoint says what it is.
"""
from __future__ import annotations

import contextlib

import torch
from diffusers import ModelMixin, UNet2DConditionModel, UNet2DModel
from diffusers.models.attention_processor import AttnProcessor
from diffusers.configuration_utils import ConfigMixin, FrozenDict, register_to_config
import torch.nn.functional as F
from torch import nn


def check_images(x: torch.Tensor, channels: int, size: int, model_name: str) -> None:
    """Raise a clear error when a batch is not ``(B, channels, size, size)``.

    Introduced in lesson 1.
    """
    if x.ndim != 4 or x.shape[1] != channels or x.shape[2] != size or x.shape[3] != size:
        raise ValueError(
            f"{model_name} expects images of shape (B, {channels}, {size}, {size}), got {tuple(x.shape)}. "
            f"Resize the data to {size}x{size} or build the model with sample_size={x.shape[-1]}.")


def check_class_labels(labels: torch.Tensor, num_classes: int, batch: int | None = None) -> torch.Tensor:
    """Validate integer class labels: integer dtype, one per image, each in ``[0, num_classes)``.

    Introduced in lesson 1.
    """
    labels = torch.as_tensor(labels)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"class labels must be integers (got {labels.dtype}); "
                        "one-hot or multi-hot vectors need a cross-attention model (LabelConditionedUnet, lesson 2)")
    if labels.ndim != 1 or (batch is not None and labels.shape[0] != batch):
        raise ValueError(f"expected one class label per image ({batch}), got shape {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0].item()
        raise ValueError(f"class label {bad} is out of range: this model knows {num_classes} classes, "
                         f"labelled 0..{num_classes - 1}")
    return labels.long()


class ClassConditionedUnet(ModelMixin, ConfigMixin):
    """Class conditioning by channel concatenation.

    ``nn.Embedding(num_classes, class_emb_size)`` turns each label into a vector, which is broadcast
    over the image to ``(B, class_emb_size, H, W)`` and concatenated with the noisy image as extra
    input channels of a diffusers ``UNet2DModel``. With ``null_class`` the embedding has one more row, label
    ``num_classes``, meaning "no class": label dropout trains it, and classifier-free guidance samples with it.
    Introduced in lesson 1.
    """

    @register_to_config
    def __init__(
        self,
        num_classes: int = 10,
        class_emb_size: int = 4,
        sample_size: int = 28,
        in_channels: int = 1,
        block_out_channels: tuple[int, ...] = (32, 64, 64),
        layers_per_block: int = 2,
        down_block_types: tuple[str, ...] = ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        up_block_types: tuple[str, ...] = ("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups: int = 32,
        attention_head_dim: int | None = 8,
        null_class: bool = False,
        patch_size: int = 1,
    ):
        super().__init__()
        self.class_emb = nn.Embedding(num_classes + int(null_class), class_emb_size)
        folded = in_channels * patch_size ** 2  # each patch_size x patch_size block of pixels folded into channels
        self.unet = UNet2DModel(
            sample_size=sample_size // patch_size,
            in_channels=folded + class_emb_size,  # image channels + class-embedding channels
            out_channels=folded,
            layers_per_block=layers_per_block,
            block_out_channels=tuple(block_out_channels),
            down_block_types=tuple(down_block_types),
            up_block_types=tuple(up_block_types),
            norm_num_groups=norm_num_groups,
            attention_head_dim=attention_head_dim,
        )

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | int, class_labels: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        check_images(sample, cfg.in_channels, cfg.sample_size, type(self).__name__)
        labels = check_class_labels(class_labels, cfg.num_classes + int(cfg.null_class), sample.shape[0])
        labels = labels.to(sample.device)
        x = F.pixel_unshuffle(sample, cfg.patch_size)             # (B, C p^2, H/p, W/p); p = 1 changes nothing
        b, _, h, w = x.shape
        emb = self.class_emb(labels).to(sample.dtype)              # (B, E)
        emb = emb.view(b, -1, 1, 1).expand(b, emb.shape[1], h, w)  # (B, E, H/p, W/p)
        out = self.unet(torch.cat([x, emb], dim=1), timestep).sample
        return F.pixel_shuffle(out, cfg.patch_size)


class NullClass:
    """The null condition of a :class:`ClassConditionedUnet` with ``null_class``: every label becomes the extra
    "no class" label ``index`` (= ``num_classes``). Called like ``torch.zeros_like`` is for label vectors.

    Introduced in lesson 1.
    """

    def __init__(self, index: int):
        self.index = index

    def __call__(self, labels: torch.Tensor) -> torch.Tensor:
        return torch.full_like(labels, self.index)

    def __repr__(self) -> str:
        return f"NullClass({self.index})"


def null_condition_for(model) -> "NullClass | callable | None":
    """What "no condition" is for ``model`` (or a pipeline's UNet): the extra class of a
    :class:`ClassConditionedUnet` built with ``null_class``, the all-zero vector for a model that takes label
    vectors, ``None`` for a model with no such input.

    Introduced in lesson 1.
    """
    cfg = getattr(model, "config", None)
    if cfg is not None and "null_class" in cfg:
        return NullClass(cfg.num_classes) if cfg.null_class else None
    if label_count(model) is not None:
        return torch.zeros_like
    return None


def label_count(model) -> int | None:
    """The length of the label vectors ``model`` takes (lesson 2's :class:`LabelConditionedUnet`, lesson 4's
    ``ScratchUNet``), or ``None`` for a model that takes integer classes or no labels. Such a model also takes
    integer classes, as one-hot vectors; guidance must give it vectors, since the all-zero "no label" of an
    integer class would be class 0 (:func:`course_utils.sampling.sample_images`).

    Introduced in lesson 2.
    """
    if isinstance(model, LabelConditionedUnet):
        return model.num_classes
    cfg = getattr(model, "config", None)
    return cfg.num_labels if cfg is not None and "num_labels" in cfg else None


def label_vectors(labels, num_classes: int, batch: int | None = None) -> torch.Tensor:
    """Labels as float vectors ``(B, num_classes)``: integer classes become one-hot; one-hot or multi-hot
    vectors are checked (right length, entries in [0, 1]) and passed through.

    Introduced in lesson 2.
    """
    labels = torch.as_tensor(labels)
    if not labels.dtype.is_floating_point and labels.dtype != torch.bool:
        labels = check_class_labels(labels, num_classes, batch)
        return nn.functional.one_hot(labels, num_classes).float()
    labels = labels.float()
    if labels.ndim == 1 and num_classes > 1:
        labels = labels.unsqueeze(0)
    if labels.ndim != 2 or labels.shape[1] != num_classes:
        raise ValueError(f"label vectors must have shape (B, {num_classes}), one entry per class; "
                         f"got {tuple(labels.shape)}")
    if batch is not None and labels.shape[0] != batch:
        raise ValueError(f"expected {batch} label vectors (one per image), got {labels.shape[0]}")
    if labels.numel() and (labels.min() < 0 or labels.max() > 1):
        raise ValueError("one-hot / multi-hot label entries must lie in [0, 1]")
    return labels


class LabelEncoder(ModelMixin, ConfigMixin):
    """One-hot or multi-hot labels ``(B, K)`` -> a small MLP -> ``num_tokens`` tokens ``(B, num_tokens, D)``:
    the ``encoder_hidden_states`` that cross-attention layers attend to.

    Integer class labels are accepted too and turned into one-hot vectors. ``class_names`` is kept in the
    config so that a saved pipeline says what its classes are. Introduced in lesson 2.
    """

    @register_to_config
    def __init__(self, num_classes: int = 5, embed_dim: int = 64, hidden_dim: int | None = None,
                 num_tokens: int = 1, class_names: list[str] | None = None):
        super().__init__()
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        hidden = hidden_dim or embed_dim
        self.mlp = nn.Sequential(nn.Linear(num_classes, hidden), nn.SiLU(), nn.Linear(hidden, num_tokens * embed_dim))

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        vectors = label_vectors(labels, cfg.num_classes).to(self.mlp[0].weight.device, self.mlp[0].weight.dtype)
        return self.mlp(vectors).view(len(vectors), cfg.num_tokens, cfg.embed_dim)


def cross_attention_unet(in_channels, sample_size, block_out_channels, layers_per_block, down_block_types,
                         up_block_types, cross_attention_dim, attention_head_dim,
                         norm_num_groups) -> UNet2DConditionModel:
    """A diffusers ``UNet2DConditionModel`` predicting an image-shaped output, whose cross-attention blocks read
    tokens of size ``cross_attention_dim``.

    Introduced in lesson 2; lesson 3 feeds it text.
    """
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=in_channels, out_channels=in_channels,
        block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
        down_block_types=tuple(down_block_types), up_block_types=tuple(up_block_types),
        cross_attention_dim=cross_attention_dim, attention_head_dim=attention_head_dim,
        norm_num_groups=norm_num_groups)


class LabelConditionedUnet(nn.Module):
    """Lesson 2's denoiser: labels -> :class:`LabelEncoder` tokens -> cross-attention in a diffusers
    ``UNet2DConditionModel``. Called like lesson 1's model, ``model(x_t, t, labels)``, so the same training
    loop and samplers serve both; the two parts are saved as separate pipeline components.

    Introduced in lesson 2.
    """

    def __init__(self, unet: UNet2DConditionModel, label_encoder: LabelEncoder, patch_size: int = 1):
        super().__init__()
        if unet.config.cross_attention_dim != label_encoder.config.embed_dim:
            raise ValueError(f"the UNet attends to tokens of size {unet.config.cross_attention_dim} but the label "
                             f"encoder makes tokens of size {label_encoder.config.embed_dim}")
        if patch_size < 1 or unet.config.in_channels % patch_size ** 2:
            raise ValueError(f"patch_size {patch_size} does not fit a UNet of {unet.config.in_channels} input "
                             "channels (image channels x patch_size^2)")
        self.unet = unet
        self.label_encoder = label_encoder
        self.patch_size = patch_size  # each patch_size x patch_size block of pixels folded into channels (lesson 1)

    @property
    def config(self):
        """The UNet's config with the image's size and channels (the UNet sees them folded when ``patch_size`` >
        1), so samplers treat this like any denoiser."""
        cfg, p = self.unet.config, self.patch_size
        return FrozenDict({**cfg, "in_channels": cfg.in_channels // p ** 2, "sample_size": cfg.sample_size * p,
                           "out_channels": cfg.out_channels // p ** 2, "patch_size": p})

    @property
    def num_classes(self) -> int:
        return self.label_encoder.config.num_classes

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | int, labels: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        check_images(sample, cfg.in_channels, cfg.sample_size, "LabelConditionedUnet")
        vectors = label_vectors(labels, self.num_classes, sample.shape[0]).to(sample.device)
        tokens = self.label_encoder(vectors).to(sample.dtype)  # (B, num_tokens, D)
        x = F.pixel_unshuffle(sample, self.patch_size)  # (B, C p^2, H/p, W/p); p = 1 changes nothing
        return F.pixel_shuffle(self.unet(x, timestep, encoder_hidden_states=tokens).sample, self.patch_size)

    @classmethod
    def build(cls, num_classes: int = 5, in_channels: int = 3, sample_size: int = 16,
              block_out_channels: tuple[int, ...] = (32, 64, 128), layers_per_block: int = 1,
              down_block_types: tuple[str, ...] = ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
              up_block_types: tuple[str, ...] = ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
              cross_attention_dim: int = 64, attention_head_dim: int = 8, norm_num_groups: int = 8,
              label_hidden_dim: int | None = None, num_tokens: int = 1,
              class_names: list[str] | None = None, patch_size: int = 1) -> "LabelConditionedUnet":
        """A ``UNet2DConditionModel`` with cross-attention blocks and a matching :class:`LabelEncoder`; with
        ``patch_size`` p > 1 the UNet works on the image folded to ``(C p^2, H/p, W/p)``, as lesson 1's does."""
        if sample_size % patch_size:
            raise ValueError(f"patch_size {patch_size} does not divide the image size {sample_size}")
        unet = cross_attention_unet(in_channels * patch_size ** 2, sample_size // patch_size, block_out_channels,
                                    layers_per_block, down_block_types, up_block_types, cross_attention_dim,
                                    attention_head_dim, norm_num_groups)
        encoder = LabelEncoder(num_classes=num_classes, embed_dim=cross_attention_dim, hidden_dim=label_hidden_dim,
                               num_tokens=num_tokens, class_names=class_names)
        return cls(unet, encoder, patch_size)


class TextConditionedUnet(ModelMixin, ConfigMixin):
    """Lesson 3's denoiser: a ``UNet2DConditionModel`` whose cross-attention reads a frozen text encoder's
    token hidden states, with the attention mask so that padding tokens are ignored. ``text_dim`` is the
    encoder's hidden size; a linear projection maps it to ``cross_attention_dim``.

    Called as ``model(x_t, t, {"hidden": (B, T, text_dim), "mask": (B, T)})``. Introduced in lesson 3.
    """

    @register_to_config
    def __init__(self, text_dim: int = 384, sample_size: int = 16, in_channels: int = 3,
                 block_out_channels: tuple[int, ...] = (32, 64, 64), layers_per_block: int = 1,
                 down_block_types: tuple[str, ...] = ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types: tuple[str, ...] = ("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
                 cross_attention_dim: int = 64, attention_head_dim: int = 8, norm_num_groups: int = 8,
                 text_backend: str = "minilm", text_max_length: int = 16):
        super().__init__()
        # text_backend / text_max_length name the frozen encoder the model was trained with (not saved with it)
        self.text_proj = nn.Linear(text_dim, cross_attention_dim)
        self.unet = cross_attention_unet(in_channels, sample_size, block_out_channels, layers_per_block,
                                         down_block_types, up_block_types, cross_attention_dim, attention_head_dim,
                                         norm_num_groups)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | int, cond: dict) -> torch.Tensor:
        cfg = self.config
        check_images(sample, cfg.in_channels, cfg.sample_size, type(self).__name__)
        if not isinstance(cond, dict) or "hidden" not in cond or "mask" not in cond:
            raise TypeError("the condition must be a dict with 'hidden' (B, T, D) and 'mask' (B, T), as a "
                            "TextEncoder returns them")
        hidden = cond["hidden"]
        if hidden.ndim != 3 or hidden.shape[-1] != cfg.text_dim or hidden.shape[0] != sample.shape[0]:
            raise ValueError(f"text hidden states must be (B={sample.shape[0]}, T, {cfg.text_dim}), got "
                             f"{tuple(hidden.shape)}: was the model built for another text encoder?")
        tokens = self.text_proj(hidden.to(sample.dtype))
        return self.unet(sample, timestep, encoder_hidden_states=tokens,
                         encoder_attention_mask=cond["mask"].to(sample.device)).sample


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters.

    Introduced in lesson 1.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class _RecordingProcessor(AttnProcessor):
    """diffusers' plain attention processor, keeping the attention weights it computes."""

    def __init__(self, name: str, store: list):
        super().__init__()
        self.name, self.store = name, store

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        original = attn.get_attention_scores

        def scores(query, key, mask=None):
            probs = original(query, key, mask)  # (batch * heads, pixels, tokens)
            self.store.append((self.name, probs.detach().float().cpu()))
            return probs

        attn.get_attention_scores = scores
        try:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)
        finally:
            del attn.get_attention_scores  # back to the class's own method


@contextlib.contextmanager
def recording_cross_attention(unet: UNet2DConditionModel):
    """Inside the block, every cross-attention layer (``attn2``) of ``unet`` records its attention weights, the
    softmax over the condition's tokens for every pixel: ``(layer name, (batch * heads, pixels, tokens))`` pairs
    appended to the yielded list. The UNet's own processors come back afterwards.

    Introduced in lesson 3 (where each word's tokens are attended to).
    """
    store: list = []
    before = unet.attn_processors
    unet.set_attn_processor({name: _RecordingProcessor(name, store) if ".attn2." in name else proc
                             for name, proc in before.items()})
    try:
        yield store
    finally:
        unet.set_attn_processor(before)


def token_attention_maps(store: list, batch: int, size: int) -> torch.Tensor:
    """The recorded cross-attention weights as one map per token: averaged over layers, heads and sampling steps
    and upsampled to ``size`` x ``size``. Returns ``(batch, tokens, size, size)``, each pixel's weights summing to 1
    over the tokens.

    Introduced in lesson 3.
    """
    if not store:
        raise ValueError("no cross-attention was recorded: sample inside `with recording_cross_attention(unet)`")
    maps = []
    for _, probs in store:
        heads = probs.shape[0] // batch
        p = probs.view(batch, heads, *probs.shape[1:]).mean(1)  # (batch, pixels, tokens)
        side = int(round(p.shape[1] ** 0.5))
        p = p.transpose(1, 2).reshape(batch, -1, side, side)
        maps.append(F.interpolate(p, size=(size, size), mode="nearest"))
    return torch.stack(maps).mean(0)

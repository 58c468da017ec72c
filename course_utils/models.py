"""Conditional denoisers used in the lessons.

Models are diffusers-style (``ModelMixin`` + ``ConfigMixin``) so ``save_pretrained`` /
``from_pretrained`` round-trip in safetensors and a checkpoint says what it is.
"""
from __future__ import annotations

import torch
from diffusers import ModelMixin, UNet2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
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
                        "one-hot or multi-hot vectors need a cross-attention model (lesson 2)")
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
    input channels of a diffusers ``UNet2DModel``. Introduced in lesson 1.
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
    ):
        super().__init__()
        self.class_emb = nn.Embedding(num_classes, class_emb_size)
        self.unet = UNet2DModel(
            sample_size=sample_size,
            in_channels=in_channels + class_emb_size,  # image channels + class-embedding channels
            out_channels=in_channels,
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
        labels = check_class_labels(class_labels, cfg.num_classes, sample.shape[0]).to(sample.device)
        b, _, h, w = sample.shape
        emb = self.class_emb(labels).to(sample.dtype)              # (B, E)
        emb = emb.view(b, -1, 1, 1).expand(b, emb.shape[1], h, w)  # (B, E, H, W)
        return self.unet(torch.cat([sample, emb], dim=1), timestep).sample


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters.

    Introduced in lesson 1.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

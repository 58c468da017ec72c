"""Lesson 4: a class-conditional UNet and the DDPM equations written by hand, one small named module at a time.

Lessons 1-3 took the UNet and the scheduler from diffusers. Here every piece is short enough to read, and the
tests check the hand-written schedule and sampling step against diffusers' on the same inputs:

* :func:`sinusoidal_embedding` + :class:`TimeEmbedding`: the timestep as a vector, projected once per forward
  pass and shared by every residual block;
* :class:`FiLM`: each block's own scale and shift of its normalised features, read from that shared vector;
* :class:`ResBlock`, :class:`SelfAttention`, :class:`CrossAttention`, :class:`Downsample` (strided convolution),
  :class:`Upsample` (nearest neighbour, then a convolution);
* :class:`LabelTokens`: one token per label (a learned "present" and "absent" vector), so one-hot classes and
  multi-hot attributes are both a set of tokens to attend to;
* :class:`ScratchUNet`: the network, diffusers-style (``save_pretrained`` / ``from_pretrained``);
* :func:`cosine_betas` and :class:`CosineDDPM`: the cosine noise schedule (Nichol & Dhariwal 2021), the forward
  process q(x_t | x_0), the training target and one reverse (sampling) step.

Introduced in lesson 4.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from .models import check_images, label_vectors

# --------------------------------------------------------------------------- time

def sinusoidal_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """``(B,)`` timesteps -> ``(B, dim)``: ``[sin(t w_0), ..., sin(t w_{d/2-1}), cos(t w_0), ...]`` with
    frequencies ``w_i = max_period^(-i / (d/2))``, from one turn per step down to one per ``max_period`` steps
    (the Transformer's positional encoding, used by DDPM for t).

    Introduced in lesson 4.
    """
    if dim % 2:
        raise ValueError(f"the sinusoidal embedding needs an even dimension, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=timesteps.device, dtype=torch.float32) / half)
    angles = timesteps.float().reshape(-1, 1) * freqs.reshape(1, -1)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class TimeEmbedding(nn.Module):
    """Sinusoid -> Linear -> SiLU -> Linear: computed once per forward pass and shared by every block.

    Introduced in lesson 4.
    """

    def __init__(self, sinusoid_dim: int, dim: int):
        super().__init__()
        self.sinusoid_dim = sinusoid_dim
        self.mlp = nn.Sequential(nn.Linear(sinusoid_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(timesteps, self.sinusoid_dim))


class FiLM(nn.Module):
    """Feature-wise linear modulation: ``h * (1 + scale(t)) + shift(t)``, one scale and shift per channel, read
    from the shared time vector by this block's own linear layer.

    Introduced in lesson 4.
    """

    def __init__(self, emb_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(emb_dim, 2 * channels)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(F.silu(emb)).chunk(2, dim=1)
        return h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]


# --------------------------------------------------------------------------- blocks

def _groups(channels: int, groups: int) -> int:
    """The largest group count <= ``groups`` that divides ``channels`` (GroupNorm needs a divisor)."""
    return math.gcd(channels, groups)


class ResBlock(nn.Module):
    """``x + conv(SiLU(FiLM(norm(conv(SiLU(norm(x)))), t)))``, with a 1x1 convolution on the skip path when the
    channel count changes. The time embedding enters through :class:`FiLM` after the second normalisation.

    Introduced in lesson 4.
    """

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int, groups: int = 8, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(in_channels, groups), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(_groups(out_channels, groups), out_channels)
        self.film = FiLM(emb_dim, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = F.silu(self.film(self.norm2(h), emb))
        return self.skip(x) + self.conv2(self.dropout(h))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head ``softmax(Q K^T / sqrt(d)) V`` for ``(B, N, C)`` queries and ``(B, M, C)`` keys / values: the
    channels are split into ``heads`` groups that attend independently. PyTorch's fused kernel computes it.

    Introduced in lesson 4.
    """
    b, n, c = q.shape

    def split(x):  # (B, L, C) -> (B, heads, L, C / heads)
        return x.reshape(b, x.shape[1], heads, c // heads).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return out.transpose(1, 2).reshape(b, n, c)


class SelfAttention(nn.Module):
    """Every pixel attends to every other: the feature map ``(B, C, H, W)`` as ``H*W`` tokens of ``C`` channels.

    Introduced in lesson 4.
    """

    def __init__(self, channels: int, heads: int = 4, groups: int = 8):
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels cannot be split into {heads} attention heads")
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(channels, groups), channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, H*W, C)
        q, k, v = self.qkv(tokens).chunk(3, dim=2)
        out = self.out(attention(q, k, v, self.heads))
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class CrossAttention(nn.Module):
    """The pixels ask, the condition answers: queries from the feature map, keys and values from the condition's
    tokens ``(B, L, cond_dim)``. This is how the label reaches the image.

    Introduced in lesson 4.
    """

    def __init__(self, channels: int, cond_dim: int, heads: int = 4, groups: int = 8):
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels cannot be split into {heads} attention heads")
        self.heads = heads
        self.norm = nn.GroupNorm(_groups(channels, groups), channels)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(cond_dim, 2 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, cond_tokens: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.q(self.norm(x).flatten(2).transpose(1, 2))  # (B, H*W, C)
        k, v = self.kv(cond_tokens).chunk(2, dim=2)          # (B, L, C) each
        out = self.out(attention(q, k, v, self.heads))
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class Downsample(nn.Module):
    """Halve the resolution with a learned 3x3 convolution of stride 2.

    Introduced in lesson 4.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour copy, then a 3x3 convolution (no checkerboard artefacts of a
    transposed convolution).

    Introduced in lesson 4.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class LabelTokens(nn.Module):
    """Labels ``(B, K)`` -> ``K`` tokens ``(B, K, dim)``: token k is a learned "label k present" vector where the
    label is 1 and a learned "label k absent" vector where it is 0 (values in between mix the two). A one-hot
    class and a multi-hot attribute set are handled alike, and the all-zero vector (no label) is the null
    condition that label dropout trains for classifier-free guidance.

    Introduced in lesson 4.
    """

    def __init__(self, num_labels: int, dim: int):
        super().__init__()
        self.present = nn.Parameter(torch.randn(num_labels, dim) * 0.02)
        self.absent = nn.Parameter(torch.randn(num_labels, dim) * 0.02)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        y = labels.to(self.present.dtype).unsqueeze(-1)  # (B, K, 1)
        return y * self.present + (1 - y) * self.absent


# --------------------------------------------------------------------------- the UNet

class ScratchUNet(ModelMixin, ConfigMixin):
    """A class-conditional UNet written by hand: ``model(x_t, t, labels)`` predicts the noise (or v).

    ``channels[i]`` is the width at resolution ``sample_size / (patch_size * 2^i)``. Each level has ``num_res_blocks``
    :class:`ResBlock` (plus :class:`SelfAttention` at the resolutions in ``attention_resolutions``), then a
    strided-convolution :class:`Downsample`. The bottleneck is ResBlock -> SelfAttention -> CrossAttention to
    the :class:`LabelTokens` -> ResBlock. The up path mirrors it, concatenating the skip connections and
    upsampling by nearest neighbour + convolution. Labels are integers (one-hot) or ``(B, num_labels)``
    multi-hot vectors. With ``labels_in_film`` the label vector also goes, through one linear layer, into the
    shared time vector (as ADM does with classes), so that every block's FiLM is label-aware. With
    ``patch_size`` p > 1 each p x p block of pixels is folded into channels first (``fold``, a
    ``PixelUnshuffle``, as lesson 1's ``ClassConditionedUnet`` does), so the first level works at
    ``sample_size / p`` and ``attention_resolutions`` count in that folded grid; the output is unfolded again
    (``unfold``, a ``PixelShuffle``).
    Introduced in lesson 4.
    """

    @register_to_config
    def __init__(
        self,
        sample_size: int = 32,
        in_channels: int = 3,
        num_labels: int = 10,
        channels: tuple[int, ...] = (64, 128, 256),
        num_res_blocks: int = 2,
        attention_resolutions: tuple[int, ...] = (16,),
        heads: int = 4,
        groups: int = 8,
        label_dim: int = 64,
        dropout: float = 0.0,
        label_names: list[str] | None = None,
        labels_in_film: bool = False,
        patch_size: int = 1,
    ):
        super().__init__()
        depth = len(channels) - 1
        if patch_size < 1 or sample_size % (patch_size * 2 ** depth):
            raise ValueError(f"an image of {sample_size}x{sample_size} cannot be folded by patch_size={patch_size} "
                             f"and halved {depth} times (channels={tuple(channels)}): use a size divisible by "
                             f"{max(patch_size, 1) * 2 ** depth}, a smaller patch_size or fewer levels")
        if label_names is not None and len(label_names) != num_labels:
            raise ValueError(f"{len(label_names)} label names for {num_labels} labels")
        emb_dim = 4 * channels[0]
        self.time_embedding = TimeEmbedding(channels[0], emb_dim)
        self.label_tokens = LabelTokens(num_labels, label_dim)
        # optional second path for the label: added to the time vector, so every block's FiLM also knows it
        self.label_embedding = nn.Linear(num_labels, emb_dim) if labels_in_film else None
        # p x p pixels -> p^2 channels and back (no weights; identities when patch_size is 1)
        self.fold = nn.PixelUnshuffle(patch_size) if patch_size > 1 else nn.Identity()
        self.unfold = nn.PixelShuffle(patch_size) if patch_size > 1 else nn.Identity()
        self.conv_in = nn.Conv2d(in_channels * patch_size ** 2, channels[0], 3, padding=1)

        self.down = nn.ModuleList()
        skips, width, res = [channels[0]], channels[0], sample_size // patch_size
        for level, ch in enumerate(channels):
            for _ in range(num_res_blocks):
                self.down.append(ResBlock(width, ch, emb_dim, groups, dropout))
                width = ch
                if res in attention_resolutions:
                    self.down.append(SelfAttention(width, heads, groups))
                skips.append(width)
            if level < depth:
                self.down.append(Downsample(width))
                skips.append(width)
                res //= 2

        self.mid = nn.ModuleList([ResBlock(width, width, emb_dim, groups, dropout), SelfAttention(width, heads, groups),
                                  CrossAttention(width, label_dim, heads, groups),
                                  ResBlock(width, width, emb_dim, groups, dropout)])

        self.up = nn.ModuleList()
        for level, ch in reversed(list(enumerate(channels))):
            for _ in range(num_res_blocks + 1):
                self.up.append(ResBlock(width + skips.pop(), ch, emb_dim, groups, dropout))
                width = ch
                if res in attention_resolutions:
                    self.up.append(SelfAttention(width, heads, groups))
            if level > 0:
                self.up.append(Upsample(width))
                res *= 2

        self.norm_out = nn.GroupNorm(_groups(width, groups), width)
        self.conv_out = nn.Conv2d(width, in_channels * patch_size ** 2, 3, padding=1)

    @property
    def num_classes(self) -> int:  # the pipeline's name for the label count
        return self.config.num_labels

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | int, labels: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        check_images(sample, cfg.in_channels, cfg.sample_size, type(self).__name__)
        b = sample.shape[0]
        t = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(b)
        y = label_vectors(labels, cfg.num_labels, b).to(sample.device)
        emb = self.time_embedding(t)
        if self.label_embedding is not None:
            emb = emb + self.label_embedding(y.to(emb.dtype))
        tokens = self.label_tokens(y)

        h = self.conv_in(self.fold(sample))
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            if not isinstance(layer, SelfAttention):
                skips.append(h)
            else:
                skips[-1] = h  # the skip leaves after the attention that follows its block
        for layer in self.mid:
            if isinstance(layer, ResBlock):
                h = layer(h, emb)
            elif isinstance(layer, CrossAttention):
                h = layer(h, tokens)
            else:
                h = layer(h)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = layer(h)
        out = self.conv_out(F.silu(self.norm_out(h)))
        return self.unfold(out)


def shape_trace(model: ScratchUNet, batch: int = 1) -> list[tuple[str, tuple[int, ...]]]:
    """The output shape of every named block for a ``batch`` of noise (forward hooks): how the resolution
    halves on the way down and doubles on the way up while the channels grow and shrink.

    Introduced in lesson 4.
    """
    cfg = model.config
    rows, hooks = [], []
    for name, module in model.named_modules():
        if isinstance(module, (ResBlock, SelfAttention, CrossAttention, Downsample, Upsample, nn.PixelUnshuffle,
                               nn.PixelShuffle)) or name in ("conv_in", "conv_out"):
            hooks.append(module.register_forward_hook(
                lambda m, args, out, name=name: rows.append((f"{name} ({type(m).__name__})", tuple(out.shape)))))
    try:
        x = torch.randn(batch, cfg.in_channels, cfg.sample_size, cfg.sample_size, device=model.device)
        with torch.no_grad():
            model(x, torch.zeros(batch, dtype=torch.long, device=model.device),
                  torch.zeros(batch, cfg.num_labels, device=model.device))
    finally:
        for h in hooks:
            h.remove()
    return rows


# --------------------------------------------------------------------------- the schedule, by hand

def cosine_alpha_bar(s: torch.Tensor | float, offset: float = 0.008) -> torch.Tensor:
    """``alpha_bar(s) = cos^2(pi/2 * (s + offset) / (1 + offset))`` for ``s = t / T`` in [0, 1]: the share of the
    signal's variance left at time t. The small offset keeps the first steps from being too small.

    Introduced in lesson 4.
    """
    s = torch.as_tensor(s, dtype=torch.float64)
    return torch.cos((s + offset) / (1 + offset) * math.pi / 2) ** 2


def cosine_betas(num_steps: int = 1000, max_beta: float = 0.999) -> torch.Tensor:
    """``beta_t = min(1 - alpha_bar((t+1)/T) / alpha_bar(t/T), max_beta)``: the cosine schedule of Nichol &
    Dhariwal (2021), capped so the last step does not destroy everything at once. Equal to diffusers'
    ``squaredcos_cap_v2``.

    Introduced in lesson 4.
    """
    s = torch.arange(num_steps, dtype=torch.float64) / num_steps
    betas = 1 - cosine_alpha_bar(s + 1 / num_steps) / cosine_alpha_bar(s)
    return betas.clamp(max=max_beta).float()


class CosineDDPM:
    """DDPM by hand on the cosine schedule: ``add_noise`` (the forward process q(x_t | x_0)), ``target`` (what the
    network learns: the noise for L_simple, or v) and ``step`` (one reverse step, ancestral sampling).

    It has the few attributes the shared training loop reads (``config.num_train_timesteps``,
    ``config.prediction_type``, ``alphas_cumprod``), so lesson 4 trains with these equations, and
    :meth:`to_diffusers` gives the equal diffusers scheduler to save in a pipeline.
    Introduced in lesson 4.
    """

    def __init__(self, num_train_timesteps: int = 1000, prediction_type: str = "epsilon"):
        if prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', got {prediction_type!r}")
        self.config = SimpleNamespace(num_train_timesteps=num_train_timesteps, prediction_type=prediction_type)
        self.betas = cosine_betas(num_train_timesteps)
        self.alphas = 1 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)

    def _abar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """alpha_bar_t for each image, shaped to broadcast over ``like``."""
        abar = self.alphas_cumprod.to(like.device)[torch.as_tensor(t, device=like.device).long()]
        return abar.to(like.dtype).reshape(-1, *[1] * (like.ndim - 1))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``: jump straight to step t."""
        abar = self._abar(t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def get_velocity(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0`` (Salimans & Ho 2022)."""
        abar = self._abar(t, x0)
        return abar.sqrt() * noise - (1 - abar).sqrt() * x0

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the network learns to predict: eps for L_simple = E ||eps - eps_theta(x_t, t)||^2, or v."""
        return noise if self.config.prediction_type == "epsilon" else self.get_velocity(x0, noise, t)

    def l_simple(self, model, x0: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None):
        """One Monte-Carlo estimate of the DDPM loss: random t, random noise, mean squared error."""
        t = torch.randint(0, self.config.num_train_timesteps, (len(x0),), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        return F.mse_loss(model(self.add_noise(x0, noise, t), t, labels), self.target(x0, noise, t))

    def timesteps(self, num_inference_steps: int) -> list[int]:
        """Evenly spaced timesteps, from the noisiest down to 0 (diffusers' "leading" spacing)."""
        ratio = self.config.num_train_timesteps // num_inference_steps
        return [i * ratio for i in reversed(range(num_inference_steps))]

    def step(self, model_output: torch.Tensor, t: int, x_t: torch.Tensor, noise: torch.Tensor | None = None,
             prev_t: int | None = None, clip: bool = True) -> torch.Tensor:
        """One reverse step x_t -> x_{prev_t} (prev_t = t - 1 unless skipping steps):

        1. the clean image the model implies: ``x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``
           (or ``sqrt(abar_t) x_t - sqrt(1 - abar_t) v``), clipped to [-1, 1];
        2. the mean of q(x_prev | x_t, x0): ``sqrt(abar_prev) beta / (1 - abar_t) x0 + sqrt(alpha) (1 - abar_prev)
           / (1 - abar_t) x_t`` with ``alpha = abar_t / abar_prev`` and ``beta = 1 - alpha``;
        3. plus ``sigma z`` with ``sigma^2 = (1 - abar_prev) / (1 - abar_t) beta``, except at the last step.
        """
        prev_t = t - 1 if prev_t is None else prev_t
        abar_t = self.alphas_cumprod[t]
        abar_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else torch.tensor(1.0)
        alpha = abar_t / abar_prev
        beta = 1 - alpha
        if self.config.prediction_type == "epsilon":
            x0 = (x_t - (1 - abar_t).sqrt() * model_output) / abar_t.sqrt()
        else:
            x0 = abar_t.sqrt() * x_t - (1 - abar_t).sqrt() * model_output
        if clip:
            x0 = x0.clamp(-1, 1)
        mean = (abar_prev.sqrt() * beta / (1 - abar_t)) * x0 + (alpha.sqrt() * (1 - abar_prev) / (1 - abar_t)) * x_t
        if t == 0:
            return mean
        if noise is None:
            noise = torch.randn_like(x_t)
        variance = ((1 - abar_prev) / (1 - abar_t) * beta).clamp(min=1e-20)
        return mean + variance.sqrt() * noise

    @torch.no_grad()
    def sample(self, model, labels: torch.Tensor, num_inference_steps: int = 1000,
               generator: torch.Generator | None = None,
               keep_every: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Ancestral sampling with :meth:`step` from pure noise, one image per label. Returns the images in
        [-1, 1] and, if ``keep_every`` > 0, every ``keep_every``-th intermediate (for the GIF)."""
        cfg = model.config
        device = next(model.parameters()).device
        x = torch.randn((len(labels), cfg.in_channels, cfg.sample_size, cfg.sample_size), generator=generator)
        x = x.to(device)
        labels = torch.as_tensor(labels).to(device)
        steps, frames = self.timesteps(num_inference_steps), []
        for i, t in enumerate(steps):
            prev_t = steps[i + 1] if i + 1 < len(steps) else -1
            pred = model(x, torch.full((len(x),), t, device=device), labels)
            z = torch.randn(x.shape, generator=generator).to(device) if t > 0 else None
            x = self.step(pred, t, x, z, prev_t=prev_t)
            if keep_every and ((i + 1) % keep_every == 0 or i == len(steps) - 1):
                frames.append(x.cpu())
        return x, frames

    def to_diffusers(self) -> DDPMScheduler:
        """The diffusers scheduler with the same equations, for saving in a pipeline and for fast samplers."""
        return DDPMScheduler(num_train_timesteps=self.config.num_train_timesteps, beta_schedule="squaredcos_cap_v2",
                             prediction_type=self.config.prediction_type)

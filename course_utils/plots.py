"""Pictures: image grids, loss curves and denoising strips. Labels are in English in every language.

Introduced in lesson 1.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

if not matplotlib.get_backend().lower().startswith(("module://", "nbagg", "ipympl", "widget", "qt", "tk", "macosx")):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402

from .data import to_unit_range  # noqa: E402


def _as_unit(images: torch.Tensor) -> torch.Tensor:
    images = images.detach().cpu()
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    if images.min() < 0:  # model range [-1, 1]
        return to_unit_range(images)
    return images.clamp(0, 1)


def smoothed(values: list[float], window: int = 50) -> list[float]:
    """Running mean of a loss history (for plots and logs).

    Introduced in lesson 1.
    """
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def image_grid(images: torch.Tensor, nrow: int = 10, padding: int = 2) -> torch.Tensor:
    """A (C, H, W) grid in [0, 1] from uint8, [0, 1] or [-1, 1] images.

    Introduced in lesson 1.
    """
    return torchvision.utils.make_grid(_as_unit(images), nrow=nrow, padding=padding, pad_value=1.0)


def show_images(images: torch.Tensor, nrow: int = 10, title: str | None = None, row_labels=None,
                scale: float = 0.6, ax=None):
    """Show images as a grid (``nrow`` per row), optionally with a label at the start of each row.

    Introduced in lesson 1.
    """
    grid = image_grid(images, nrow=nrow)
    rows = (len(images) + nrow - 1) // nrow
    if ax is None:
        _, ax = plt.subplots(figsize=(max(3.0, nrow * scale), max(1.5, rows * scale)))
    ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray" if grid.shape[0] == 1 else None)
    ax.set_xticks([])
    if row_labels is not None:
        h = images.shape[-2] + 2
        ax.set_yticks([2 + h * i + h / 2 - 1 for i in range(rows)])
        ax.set_yticklabels([str(r) for r in row_labels][:rows])
    else:
        ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 10, row_labels=None, title: str | None = None,
              scale: float = 0.5, dpi: int = 100) -> Path:
    """Write a grid of images as a PNG figure with a label at the start of each row (class names, guidance
    scales) and a title: the picture a training run leaves beside its metrics.

    Introduced in lesson 1.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ax = show_images(images, nrow=nrow, title=title, row_labels=row_labels, scale=scale)
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=dpi)
    plt.close(ax.figure)
    return path


def save_images(images: torch.Tensor, path: str | Path, nrow: int = 10) -> Path:
    """Write a grid of images as a PNG.

    Introduced in lesson 1.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torchvision.utils.save_image(image_grid(images, nrow=nrow), path)
    return path


def plot_losses(losses, title: str = "Training loss", window: int = 50, ax=None, path: str | Path | None = None):
    """The loss per step (faint) and its running mean.

    Introduced in lesson 1.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    ax.plot(losses, alpha=0.3, label="per step")
    ax.plot(smoothed(list(losses), window), label=f"mean of {window}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    if path is not None:
        ax.figure.tight_layout()
        ax.figure.savefig(path, dpi=100)
    return ax


def show_denoising(trajectory: list[torch.Tensor], rows: int = 4, title: str = "Denoising, left to right", ax=None):
    """Intermediate images of the reverse process: one row per sample, one column per kept step.

    Introduced in lesson 1.
    """
    steps = len(trajectory)
    rows = min(rows, trajectory[0].shape[0])
    frames = torch.stack([t[:rows] for t in trajectory], dim=1).flatten(0, 1)  # row-major: sample, then step
    return show_images(frames, nrow=steps, title=title, ax=ax)


def save_gif(frames: list[torch.Tensor], path: str | Path, nrow: int = 8, seconds: float = 4.0,
             hold_last: float = 1.5, scale: int = 2) -> Path:
    """An animated GIF of the generation process: each frame (a batch in the model's range [-1, 1], noisier
    frames clipped) becomes an image grid; the last frame stays on screen for ``hold_last`` seconds. Pixels are
    enlarged ``scale`` times.

    Introduced in lesson 4.
    """
    if not frames:
        raise ValueError("no frames to animate: sample with keep_every > 0")
    pictures = []
    for frame in frames:
        grid = image_grid(to_unit_range(frame.float()), nrow=nrow)
        array = grid.mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
        img = Image.fromarray(array)
        pictures.append(img.resize((img.width * scale, img.height * scale), Image.NEAREST))
    step_ms = max(20, int(1000 * seconds / len(pictures)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pictures[0].save(path, save_all=True, append_images=pictures[1:], loop=0,
                     duration=[step_ms] * (len(pictures) - 1) + [int(1000 * hold_last)])
    return path

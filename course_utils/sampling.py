"""Sampling: one loop for every scheduler, conditioned on labels, seeded and reproducible.

Introduced in lesson 1.
"""
from __future__ import annotations

import inspect
from typing import Callable

import torch
from tqdm.auto import tqdm

from .schedulers import make_sampler


def denoise(model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], scheduler, x: torch.Tensor,
            num_inference_steps: int, generator: torch.Generator | None = None,
            keep_every: int = 0, progress: bool = False,
            on_step: Callable[[int], None] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run the reverse process from pure noise ``x``: at each timestep predict with ``model_fn(x, t)`` and let
    the scheduler take one step. Returns the final sample and, if ``keep_every`` > 0, every
    ``keep_every``-th intermediate (the last one always included) for a picture of the process.

    Introduced in lesson 1.
    """
    scheduler.set_timesteps(num_inference_steps, device=x.device)
    x = x * scheduler.init_noise_sigma
    trajectory = []
    timesteps = scheduler.timesteps
    for i, t in enumerate(tqdm(timesteps, desc="sample", disable=not progress, leave=False)):
        model_input = scheduler.scale_model_input(x, t)
        pred = model_fn(model_input, t)
        kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
        x = scheduler.step(pred, t, x, **kwargs).prev_sample
        if keep_every and ((i + 1) % keep_every == 0 or i == len(timesteps) - 1):
            trajectory.append(x.detach().cpu())
        if on_step is not None:
            on_step(i)
    return x, trajectory


@torch.no_grad()
def sample_images(model, noise_scheduler, class_labels, num_inference_steps: int = 20, sampler: str = "dpm",
                  seed: int = 0, batch_size: int = 256, keep_every: int = 0, progress: bool = False,
                  device: torch.device | str | None = None):
    """Generate one image per entry of ``class_labels`` (an integer class, or from lesson 2 a one-hot /
    multi-hot vector) with a class-conditioned model.

    ``sampler`` is ``ddpm``, ``ddim`` or ``dpm`` (DPM-Solver++); the training scheduler's config
    (beta schedule, prediction type) carries over. The same ``seed`` gives the same images. Images are
    returned in [-1, 1], with the trajectory of the first batch if ``keep_every`` > 0.
    Introduced in lesson 1.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    labels = torch.as_tensor(class_labels)  # integer classes, or one-hot / multi-hot vectors (lesson 2)
    cfg = model.config
    shape = (cfg.in_channels, cfg.sample_size, cfg.sample_size)
    was_training = model.training
    model.eval()
    generator = torch.Generator(device="cpu").manual_seed(seed)
    outputs, trajectory = [], []
    for start in range(0, len(labels), batch_size):
        y = labels[start:start + batch_size].to(device)
        scheduler = make_sampler(sampler, noise_scheduler)
        x = torch.randn((len(y), *shape), generator=generator).to(device)
        out, traj = denoise(lambda xt, t: model(xt, t, y), scheduler, x, num_inference_steps,
                            generator=generator if device.type == "cpu" else None,
                            keep_every=keep_every if start == 0 else 0, progress=progress)
        outputs.append(out.cpu())
        if start == 0:
            trajectory = traj
    model.train(was_training)
    images = torch.cat(outputs) if outputs else torch.empty((0, *shape))
    return (images, trajectory) if keep_every else images


def labels_per_class(num_classes: int, per_class: int) -> torch.Tensor:
    """``[0]*per_class + [1]*per_class + ...``: a row per class in a grid of ``per_class`` columns.

    Introduced in lesson 1.
    """
    return torch.arange(num_classes).repeat_interleave(per_class)

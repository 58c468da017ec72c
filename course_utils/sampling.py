"""Sampling, one loop for every lesson: from pure noise, step by step, with any scheduler (DDPM, DDIM,
DPM-Solver++), conditioned on labels, label vectors or text, with classifier-free guidance, seeded and
reproducible on every device.

Introduced in lesson 1; guidance in lesson 3.
"""
from __future__ import annotations

import inspect
from typing import Callable

import torch
from tqdm.auto import tqdm

from .models import label_count, label_vectors
from .schedulers import make_sampler

# The guidance scale when none is given: measured best of 0 / 1 / 3 / 7 for lesson 3's captions (README).
DEFAULT_GUIDANCE_SCALE = 3.0



def denoise(model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], scheduler, x: torch.Tensor,
            num_inference_steps: int, generator: torch.Generator | None = None,
            keep_every: int = 0, progress: bool = False,
            on_step: Callable[[int], None] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run the reverse process from pure noise ``x``: at each timestep predict with ``model_fn(x, t)`` and let
    the scheduler take one step. Returns the final sample and, if ``keep_every`` > 0, every
    ``keep_every``-th intermediate (the last one always included) for a picture of the process.

    ``generator`` seeds the noise a stochastic scheduler (DDPM) adds at each step; a CPU generator works with a
    model on any device (the noise is drawn on the CPU and moved), so a seed gives the same images everywhere.
    Introduced in lesson 1.
    """
    if num_inference_steps < 1:
        raise ValueError(f"the number of sampling steps must be at least 1, got {num_inference_steps}")
    scheduler.set_timesteps(num_inference_steps, device=x.device)
    x = x * scheduler.init_noise_sigma
    trajectory = []
    timesteps = scheduler.timesteps
    takes_generator = "generator" in inspect.signature(scheduler.step).parameters
    for i, t in enumerate(tqdm(timesteps, desc="sample", disable=not progress, leave=False)):
        model_input = scheduler.scale_model_input(x, t)
        pred = model_fn(model_input, t)
        x = scheduler.step(pred, t, x, **({"generator": generator} if takes_generator else {})).prev_sample
        if keep_every and ((i + 1) % keep_every == 0 or i == len(timesteps) - 1):
            trajectory.append(x.detach().cpu())
        if on_step is not None:
            on_step(i)
    return x, trajectory


def concat_conditions(a, b):
    """Two batches of conditions (tensors, or dicts of tensors such as text states and masks) as one."""
    if isinstance(a, dict):
        return {k: torch.cat([a[k], b[k]]) for k in a}
    return torch.cat([a, b])


def guided_prediction(model, x: torch.Tensor, t, cond, uncond, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022): ``uncond + s * (cond - uncond)``, both predictions from
    one forward pass over a doubled batch. The mix is linear, so it holds for whatever the model predicts
    (noise, v or the clean image). ``s = 1``: the conditional model; ``s = 0``: the unconditional one.

    Introduced in lesson 3.
    """
    pred_uncond, pred_cond = model(torch.cat([x, x]), t, concat_conditions(uncond, cond)).chunk(2)
    return pred_uncond + guidance_scale * (pred_cond - pred_uncond)


def linear_guidance(at_lo: float, at_hi: float, interval: tuple[float, float]) -> Callable[[float], float]:
    """A guidance scale that changes with the timestep: ``at_lo`` at the interval's lower end, ``at_hi`` at its
    upper end, in a straight line between (held at the ends outside it). Pass it as ``guidance_scale`` of
    :func:`conditioned` or :func:`sample_images`. Wang et al. (2024, "Analysis of classifier-free guidance
    weight schedulers") compare such schedules with a constant scale.

    Used by ``bench/bench_lesson1.py interval --ramps`` (README); no lesson uses it yet.
    """
    lo, hi = check_interval(interval)
    check_scale(at_lo), check_scale(at_hi)
    span = max(hi - lo, 1e-9)
    return lambda t: at_lo + (at_hi - at_lo) * min(1.0, max(0.0, (float(t) - lo) / span))


def conditioned(model, cond, guidance_scale: float | Callable[[float], float] | None = None,
                null_condition: Callable | None = None, guidance_interval: tuple[float, float] | None = None
                ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``model_fn(x, t)`` for :func:`denoise`: the model with its condition, guided when ``guidance_scale`` is
    given and not 1. ``null_condition`` maps a batch of conditions to the "no condition" one (the all-zero
    label vector, the empty prompt), the same function label dropout used in training.

    ``guidance_interval=(lo, hi)`` guides only the steps whose timestep lies in it and lets the others use the
    plain conditional model, at one model evaluation instead of two (Kynkaanniemi et al. 2024 guide only the
    middle noise levels). ``guidance_scale`` may also be a function of the timestep (:func:`linear_guidance`).
    Introduced in lesson 3.
    """
    scheduled = callable(guidance_scale)
    if not scheduled and (guidance_scale is None or guidance_scale == 1):
        return lambda x, t: model(x, t, cond)
    if not scheduled:
        check_scale(guidance_scale)
    if null_condition is None:
        raise ValueError("classifier-free guidance needs the null condition the model was trained with (label "
                         "dropout): pass null_condition=, or guidance_scale=None for the plain conditional model")
    uncond = null_condition(cond)
    if scheduled:
        inside = lambda x, t: guided_prediction(model, x, t, cond, uncond, guidance_scale(float(t)))  # noqa: E731
    elif guidance_scale == 0:
        inside = lambda x, t: model(x, t, uncond)  # noqa: E731
    else:
        inside = lambda x, t: guided_prediction(model, x, t, cond, uncond, guidance_scale)  # noqa: E731
    if guidance_interval is None:
        return inside
    lo, hi = check_interval(guidance_interval)
    return lambda x, t: inside(x, t) if lo <= float(t) <= hi else model(x, t, cond)


def check_scale(scale: float) -> None:
    """A guidance scale below 0 is refused with a clear error."""
    if scale < 0:
        raise ValueError(f"the guidance scale must be >= 0 (0: unconditional, 1: conditional), got {scale}")


def check_interval(interval) -> tuple[float, float]:
    """A guidance interval as ``(lo, hi)`` timesteps, or a clear error."""
    try:
        lo, hi = (float(v) for v in interval)
    except (TypeError, ValueError):
        raise ValueError(f"a guidance interval is two timesteps [lo, hi], got {interval!r}") from None
    if lo > hi:
        raise ValueError(f"a guidance interval [lo, hi] needs lo <= hi, got {interval!r}")
    return lo, hi


def model_evaluations(scheduler, steps: int, guidance_scale: float | Callable[[float], float] | None = None,
                      guidance_interval: tuple[float, float] | None = None) -> int:
    """Model evaluations per sample: one per step, two for each guided step (the budget lesson 1 counts)."""
    if guidance_scale is None or (not callable(guidance_scale) and guidance_scale == 1):
        return steps
    if guidance_interval is None:
        return 2 * steps
    lo, hi = check_interval(guidance_interval)
    scheduler.set_timesteps(steps)  # the timesteps this sampler visits decide which steps are guided
    return sum(2 if lo <= float(t) <= hi else 1 for t in scheduler.timesteps)


def _rows(cond, sl: slice):
    return {k: v[sl] for k, v in cond.items()} if isinstance(cond, dict) else cond[sl]


def _count(cond) -> int:
    return len(next(iter(cond.values()))) if isinstance(cond, dict) else len(cond)


def _to(cond, device):
    return {k: v.to(device) for k, v in cond.items()} if isinstance(cond, dict) else cond.to(device)


@torch.no_grad()
def sample_images(model, noise_scheduler, conditions, num_inference_steps: int = 20, sampler="dpm",
                  seed: int = 0, guidance_scale: float | None = None, null_condition: Callable | None = None,
                  guidance_interval: tuple[float, float] | None = None, batch_size: int = 256,
                  keep_every: int = 0, progress: bool = False,
                  device: torch.device | str | None = None, generator: torch.Generator | None = None,
                  on_step: Callable[[int], None] | None = None):
    """Generate one image per condition with a conditional denoiser ``model(x_t, t, cond)``.

    ``conditions``: integer classes (lesson 1), one-hot / multi-hot vectors (lessons 2 and 4), or a dict of
    tensors with one row per image (lesson 3's text states and mask). ``sampler`` is ``ddpm``, ``ddim`` or
    ``dpm`` (DPM-Solver++), built from the training scheduler's config (beta schedule, prediction type), or a
    scheduler to use as it is. With ``guidance_scale`` (and the model's ``null_condition``) every step is
    guided (or only those in ``guidance_interval``, see :func:`conditioned`). The same ``seed`` (or ``generator``)
    gives the same images on any device. Images are returned in [-1, 1], with the trajectory of the first batch
    if ``keep_every`` > 0.
    Introduced in lesson 1; guidance in lesson 3.
    """
    if num_inference_steps < 1:
        raise ValueError(f"the number of sampling steps must be at least 1, got {num_inference_steps}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if not isinstance(conditions, dict):
        conditions = torch.as_tensor(conditions)  # integer classes, or one-hot / multi-hot vectors
        if (count := label_count(model)) is not None:
            # a model of label vectors gets integer classes as one-hot vectors, so that the null condition of
            # guidance, torch.zeros_like, is the all-zero vector "no label" and not class 0
            conditions = label_vectors(conditions, count)
    cfg = model.config
    shape = (cfg.in_channels, cfg.sample_size, cfg.sample_size)
    dtype = next(model.parameters()).dtype
    was_training = model.training
    model.eval()
    generator = generator if generator is not None else torch.Generator(device="cpu").manual_seed(seed)
    outputs, trajectory = [], []
    n = _count(conditions)
    for start in range(0, n, batch_size):
        cond = _to(_rows(conditions, slice(start, start + batch_size)), device)
        scheduler = make_sampler(sampler, noise_scheduler) if isinstance(sampler, str) else sampler
        x = torch.randn((_count(cond), *shape), generator=generator, device=generator.device).to(device, dtype)
        out, traj = denoise(conditioned(model, cond, guidance_scale, null_condition, guidance_interval), scheduler, x,
                            num_inference_steps, generator=generator, keep_every=keep_every if start == 0 else 0,
                            progress=progress, on_step=on_step)
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

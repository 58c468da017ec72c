"""Noise schedulers: the DDPM one a lesson trains with, and fast samplers built from its config.

Introduced in lesson 1.
"""
from __future__ import annotations

from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, SchedulerMixin

from .configs import SAMPLERS


def make_noise_scheduler(num_train_timesteps: int = 1000, beta_schedule: str = "squaredcos_cap_v2",
                         prediction_type: str = "epsilon") -> DDPMScheduler:
    """The DDPM noise scheduler used for training (lesson 1: 1000 steps, cosine ``squaredcos_cap_v2``).

    Introduced in lesson 1.
    """
    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule,
                         prediction_type=prediction_type)


def make_sampler(name: str, scheduler_or_config) -> SchedulerMixin:
    """A sampling scheduler built from a training scheduler (or its config).

    ``ddpm``: ancestral DDPM, the sampler the lesson derives (fresh noise at every step);
    ``ddim``: deterministic DDIM with ``trailing`` timestep spacing;
    ``dpm``: DPM-Solver++ (2nd order, multistep, deterministic), ``trailing`` spacing;
    ``dpm-sde``: SDE-DPM-Solver++ (2nd order, multistep), which adds fresh noise at every step as DDPM does.
    Lesson 4's hand-written ``CosineDDPM`` is turned into the diffusers scheduler with the same equations first.
    Introduced in lesson 1.
    """
    if hasattr(scheduler_or_config, "to_diffusers"):  # lesson 4's CosineDDPM
        scheduler_or_config = scheduler_or_config.to_diffusers()
    config = getattr(scheduler_or_config, "config", scheduler_or_config)
    if name == "ddpm":
        return DDPMScheduler.from_config(config)
    if name == "ddim":
        return DDIMScheduler.from_config(config, timestep_spacing="trailing", clip_sample=False)
    if name in ("dpm", "dpm-sde"):
        return DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++" if name == "dpm" else "sde-dpmsolver++", solver_order=2,
            timestep_spacing="trailing")
    raise ValueError(f"unknown sampler {name!r}; choose one of {SAMPLERS}")

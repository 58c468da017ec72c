"""One training loop for every lesson, built on Accelerate.

The same code runs on a CPU, one GPU or ``accelerate launch`` on many. It has mixed precision where the
device supports it, EMA weights (diffusers' ``EMAModel``), optional condition dropout for classifier-free
guidance, gradient accumulation, warm-up and a cosine learning-rate schedule, min-SNR loss weighting, a
tqdm bar with the loss, checkpoints written atomically (keep the last N), and resume.

Introduced in lesson 1.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel, compute_snr
from tqdm.auto import tqdm

CHECKPOINT_RE = re.compile(r"^step-(\d+)$")


@dataclass
class TrainConfig:
    """Hyper-parameters of a training run (a preset fills them; see ``course_utils.presets``).

    Introduced in lesson 1.
    """

    max_steps: int = 1000
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: str = "constant"          # any of diffusers' get_scheduler names: constant, cosine, ...
    warmup_steps: int = 0
    grad_accum_steps: int = 1
    max_grad_norm: float | None = 1.0
    ema_decay: float | None = 0.999        # None: no EMA
    ema_warmup: bool = True                # EMA decay grows from 0 towards ema_decay (diffusers' warm-up)
    ema_power: float = 0.75
    snr_gamma: float | None = None         # cap of the SNR loss weighting; None: plain MSE
    loss_weighting: str = "min_snr"        # "min_snr" | "clipped_snr" (see diffusion_loss)
    cond_drop_prob: float = 0.0            # probability of replacing the condition by the null one (CFG)
    mixed_precision: str = "auto"          # "auto" | "no" | "fp16" | "bf16"
    checkpoint_every: int = 0              # steps; 0: only at the end
    keep_last: int = 2
    log_every: int = 25
    seed: int = 0
    time_limit_s: float | None = None      # stop early (and checkpoint) after this much training time

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def resolve_mixed_precision(requested: str, device_type: str) -> str:
    """Pick the autocast dtype. ``auto`` means bf16 on a GPU that supports it, else fp16 on CUDA, and
    float32 ("no") on the CPU, where bf16 autocast was measured slower (see ``bench/``).

    Introduced in lesson 1.
    """
    if requested not in ("auto", "no", "fp16", "bf16"):
        raise ValueError(f"mixed_precision must be auto, no, fp16 or bf16, got {requested!r}")
    if requested != "auto":
        return requested
    if device_type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def diffusion_loss(model_output: torch.Tensor, target: torch.Tensor, noise_scheduler, timesteps: torch.Tensor,
                   snr_gamma: float | None = None, loss_weighting: str = "min_snr") -> torch.Tensor:
    """L_simple = E ||target - model(x_t, t)||^2, optionally weighted per sample by the signal-to-noise ratio.

    Weights are chosen as a weight on the error of the implied clean image x0, then converted to the
    prediction's space (divide by SNR for epsilon, by SNR + 1 for v):

    * ``min_snr``: min(SNR, gamma) (Hang et al. 2023): the easy low-noise steps stop dominating;
    * ``clipped_snr``: clamp(SNR, 1, gamma): the same cap, and high-noise steps keep the full weight they have
      in the plain v loss. Those steps decide *which* digit appears, so a conditional model learns its
      condition sooner.

    ``snr_gamma=None`` gives the plain, unweighted loss. Introduced in lesson 1.
    """
    loss = F.mse_loss(model_output.float(), target.float(), reduction="none").mean(dim=list(range(1, target.ndim)))
    if snr_gamma is None:
        return loss.mean()
    snr = compute_snr(noise_scheduler, timesteps).to(loss.device)
    if loss_weighting == "min_snr":
        x0_weight = snr.clamp(max=snr_gamma)
    elif loss_weighting == "clipped_snr":
        x0_weight = snr.clamp(min=1.0, max=snr_gamma)
    else:
        raise ValueError(f"loss_weighting must be 'min_snr' or 'clipped_snr', got {loss_weighting!r}")
    kind = noise_scheduler.config.prediction_type
    if kind == "epsilon":
        weight = x0_weight / snr
    elif kind == "v_prediction":
        weight = x0_weight / (snr + 1)
    else:  # "sample": the loss already is on x0
        weight = x0_weight
    return (loss * weight).mean()


def training_target(noise_scheduler, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the network learns to predict: the noise (epsilon) or the velocity v.

    Introduced in lesson 1.
    """
    kind = noise_scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return noise_scheduler.get_velocity(x0, noise, timesteps)
    if kind == "sample":
        return x0
    raise ValueError(f"unsupported prediction_type {kind!r}")


@dataclass
class TrainResult:
    """What a training run returns: the (EMA) model, the loss history and timings.

    Introduced in lesson 1.
    """

    model: torch.nn.Module
    raw_model: torch.nn.Module
    losses: list[float]
    step: int
    train_seconds: float
    stopped_early: bool
    out_dir: Path | None


# --------------------------------------------------------------------------- checkpoints

def drop_condition(cond, null, drop: torch.Tensor):
    """Replace the condition of the images where ``drop`` is True by the null condition (label dropout for
    classifier-free guidance). ``cond`` / ``null`` are tensors or dicts of tensors with one row per image.

    Introduced in lesson 1; dicts (hidden states and mask) in lesson 3.
    """
    if isinstance(cond, dict):
        return {k: drop_condition(cond[k], null[k], drop) for k in cond}
    return torch.where(drop.view(-1, *[1] * (cond.ndim - 1)), null.to(cond.dtype), cond)


def list_checkpoints(ckpt_dir: Path) -> list[Path]:
    """Complete checkpoints in ``ckpt_dir``, oldest first (half-written ``*.tmp`` ones are ignored).

    Introduced in lesson 1.
    """
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir()
             if (m := CHECKPOINT_RE.match(p.name)) and (p / "trainer_state.json").exists()]
    return [p for _, p in sorted(found)]


def _save_checkpoint(accelerator: Accelerator, ckpt_dir: Path, step: int, state: dict, keep_last: int) -> Path:
    """Write the whole training state to ``step-N.tmp``, then rename it: a crash leaves no half checkpoint."""
    final = ckpt_dir / f"step-{step:07d}"
    tmp = ckpt_dir / f"step-{step:07d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        (tmp / "trainer_state.json").write_text(json.dumps(state))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in list_checkpoints(ckpt_dir)[:-keep_last] if keep_last > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


# --------------------------------------------------------------------------- the loop

def train_diffusion(
    model: torch.nn.Module,
    noise_scheduler,
    dataset: torch.utils.data.Dataset,
    config: TrainConfig,
    out_dir: str | os.PathLike | None = None,
    resume: bool = True,
    null_condition: Callable[[torch.Tensor], torch.Tensor] | None = None,
    on_step: Callable[[int, float], None] | None = None,
    progress: bool = True,
    accelerator: Accelerator | None = None,
) -> TrainResult:
    """Train a conditional denoiser ``model(x_t, t, cond)`` on ``(image, cond)`` pairs.

    ``out_dir/checkpoints/step-N`` holds resumable states; with ``resume=True`` the run continues from the
    newest one with the same step count, optimizer, LR schedule, EMA and random state. ``null_condition``
    maps a batch of conditions to the "no condition" value used for classifier-free guidance when
    ``config.cond_drop_prob > 0``. ``on_step(step, loss)`` is called after each optimizer step.
    Introduced in lesson 1.
    """
    if config.cond_drop_prob > 0 and null_condition is None:
        raise ValueError("cond_drop_prob > 0 needs a null_condition function (lesson 3)")
    out_dir = Path(out_dir) if out_dir is not None else None
    ckpt_dir = out_dir / "checkpoints" if out_dir is not None else None

    if accelerator is None:
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
        accelerator = Accelerator(
            mixed_precision=resolve_mixed_precision(config.mixed_precision, device_type),
            gradient_accumulation_steps=config.grad_accum_steps,
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        )
    set_seed(config.seed)

    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True)
    if len(loader) == 0:
        raise ValueError(f"the data set has {len(dataset)} items, fewer than one batch of {config.batch_size}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=config.adam_betas,
                                  weight_decay=config.weight_decay)
    # Accelerate steps a prepared scheduler once per process at each optimizer step, so count in those units
    # (as diffusers' training scripts do) to keep the warm-up and decay over max_steps with any number of processes.
    n = accelerator.num_processes
    lr_scheduler = get_scheduler(config.lr_schedule, optimizer, num_warmup_steps=config.warmup_steps * n,
                                 num_training_steps=config.max_steps * n)
    model, optimizer, loader, lr_scheduler = accelerator.prepare(model, optimizer, loader, lr_scheduler)
    unwrapped = accelerator.unwrap_model(model)

    ema = None
    if config.ema_decay is not None:
        ema = EMAModel(unwrapped.parameters(), decay=config.ema_decay, use_ema_warmup=config.ema_warmup,
                       power=config.ema_power, model_cls=type(unwrapped),
                       model_config=getattr(unwrapped, "config", None))
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)

    step, losses, train_seconds = 0, [], 0.0
    if resume and ckpt_dir is not None and (existing := list_checkpoints(ckpt_dir)):
        accelerator.load_state(str(existing[-1]))
        state = json.loads((existing[-1] / "trainer_state.json").read_text())
        step, losses, train_seconds = state["step"], state["losses"], state["train_seconds"]
        if state.get("model_class") not in (None, type(unwrapped).__name__):
            raise ValueError(f"{existing[-1]} is a checkpoint of {state['model_class']}, not "
                             f"{type(unwrapped).__name__}; use another --out directory")
        accelerator.print(f"[train] resumed from {existing[-1].name} at step {step}")

    def save(at_step):
        if ckpt_dir is None:
            return
        state = {"step": at_step, "losses": losses, "train_seconds": train_seconds,
                 "model_class": type(unwrapped).__name__, "config": config.to_dict()}
        _save_checkpoint(accelerator, ckpt_dir, at_step, state, config.keep_last)

    steps_per_epoch = len(loader) // config.grad_accum_steps
    bar = tqdm(total=config.max_steps, initial=step, desc="train", disable=not (progress and accelerator.is_main_process),
               dynamic_ncols=True)
    model.train()
    stopped_early = False
    run_start, seconds_before = time.perf_counter(), train_seconds
    window = []
    while step < config.max_steps and not stopped_early:
        epoch, skip = divmod(step, steps_per_epoch)
        loader.set_epoch(epoch)
        batches = accelerator.skip_first_batches(loader, skip * config.grad_accum_steps) if skip else loader
        for x0, cond in batches:
            with accelerator.accumulate(model):
                noise = torch.randn_like(x0)
                timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (x0.shape[0],),
                                          device=x0.device)
                x_t = noise_scheduler.add_noise(x0, noise, timesteps)
                if config.cond_drop_prob > 0:
                    drop = torch.rand(x0.shape[0], device=x0.device) < config.cond_drop_prob
                    cond = drop_condition(cond, null_condition(cond), drop)
                with accelerator.autocast():
                    pred = model(x_t, timesteps, cond)
                loss = diffusion_loss(pred, training_target(noise_scheduler, x0, noise, timesteps),
                                      noise_scheduler, timesteps, config.snr_gamma, config.loss_weighting)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            window.append(loss.detach().float().item())
            if not accelerator.sync_gradients:
                continue
            step += 1
            if ema is not None:
                ema.step(unwrapped.parameters())
            step_loss = sum(window) / len(window)
            window.clear()
            losses.append(step_loss)
            train_seconds = seconds_before + time.perf_counter() - run_start
            bar.update(1)
            if step % config.log_every == 0 or step == config.max_steps:
                recent = losses[-config.log_every:]
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", lr=f"{lr_scheduler.get_last_lr()[0]:.2e}")
            if on_step is not None:
                on_step(step, step_loss)
            if config.time_limit_s is not None:
                over = torch.tensor([float(train_seconds >= config.time_limit_s)], device=accelerator.device)
                # every process must stop at the same step, or the others would wait for it forever
                stopped_early = bool(accelerator.reduce(over, "max").item()) if accelerator.num_processes > 1 \
                    else bool(over.item())
            if step >= config.max_steps or stopped_early:
                break
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                save(step)
    bar.close()
    save(step)

    raw = unwrapped
    final = raw
    if ema is not None:  # a copy carrying the EMA weights; the raw model stays as trained
        final = copy.deepcopy(raw)
        ema.copy_to(final.parameters())
    final.eval()
    if stopped_early:
        accelerator.print(f"[train] stopped at step {step} after the time limit of {config.time_limit_s:.0f} s")
    return TrainResult(model=final, raw_model=raw, losses=losses, step=step, train_seconds=train_seconds,
                       stopped_early=stopped_early, out_dir=out_dir)


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


def steps_for_epochs(epochs: float, dataset_size: int, batch_size: int, grad_accum_steps: int = 1) -> int:
    """Optimizer steps in ``epochs`` passes over the data (presets are written in epochs, the loop counts steps).

    Introduced in lesson 1.
    """
    return max(1, math.floor(epochs * (dataset_size // batch_size) / grad_accum_steps))


def autocast_dtypes(device_type: str) -> dict[str, torch.dtype | None]:
    """The precisions worth comparing on a device: float32 always; bf16 (and fp16 on CUDA) autocast.

    Introduced in lesson 2.
    """
    out = {"fp32": None, "bf16": torch.bfloat16}
    if device_type == "cuda":
        out["fp16"] = torch.float16
    return out


def time_mixed_precision(model: torch.nn.Module, noise_scheduler, x0: torch.Tensor, cond: torch.Tensor,
                         repeats: int = 5, dtypes: dict[str, torch.dtype | None] | None = None) -> dict[str, float]:
    """Median seconds of one training step (forward, backward, optimizer) under each autocast dtype.

    Variants are interleaved (fp32, bf16, fp32, bf16, ...) so that a machine's drift hits them alike; fp16
    uses a gradient scaler as real fp16 training must. The model's weights are restored afterwards.
    Introduced in lesson 2.
    """
    device = x0.device
    dtypes = dtypes or autocast_dtypes(device.type)
    state = copy.deepcopy(model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    times = {name: [] for name in dtypes}
    model.train()
    for r in range(repeats + 1):  # the first round warms up and is dropped
        for name, dtype in dtypes.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            noise = torch.randn_like(x0)
            t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(x0),), device=device)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                pred = model(noise_scheduler.add_noise(x0, noise, t), t, cond)
            loss = F.mse_loss(pred.float(), training_target(noise_scheduler, x0, noise, t))
            if dtype == torch.float16:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            opt.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if r:
                times[name].append(time.perf_counter() - start)
    model.load_state_dict(state)
    return {name: sorted(v)[len(v) // 2] for name, v in times.items()}

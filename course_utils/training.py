"""One training loop for every lesson, built on Accelerate.

The same code runs on a CPU, one GPU or ``accelerate launch`` on many. It has mixed precision where the
device supports it, EMA weights (diffusers' ``EMAModel``), optional condition dropout for classifier-free
guidance, gradient accumulation, warm-up and a cosine learning-rate schedule, SNR loss weighting, a
tqdm bar with the loss, checkpoints written atomically (keep the last N), and resume.

Checkpoints: Accelerate can name and prune them itself (``ProjectConfiguration(automatic_checkpoint_naming=True,
total_limit=N)``), but it writes into the final folder directly, so a run killed while saving leaves a
half-written newest checkpoint that resume would pick. The loop keeps its own scheme instead: ``save_state``
into ``step-N.tmp``, then one rename (:func:`course_utils.files.move_into_place`), then the old ones pruned.

Introduced in lesson 1.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generator

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from diffusers.training_utils import EMAModel, compute_snr
from tqdm.auto import tqdm

from .devices import default_device, resolve_mixed_precision
from .errors import ConfigError
from .files import move_into_place, remove, temporary_sibling

CHECKPOINT_RE = re.compile(r"^step-(\d+)$")


@dataclass
class TrainConfig:
    """Hyper-parameters of a training run. The defaults are the course's recipe (lesson 1 measures each part):
    AdamW at 2e-3 with 50 warm-up steps and cosine decay, EMA weights, and the loss weighted by the
    signal-to-noise ratio clamped to [1, 5]. A task's YAML config sets the rest (:meth:`from_config`).

    Introduced in lesson 1.
    """

    max_steps: int = 1000
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: str = "cosine"            # constant | constant_with_warmup | linear | cosine (lr_factor)
    warmup_steps: int = 50
    grad_accum_steps: int = 1
    max_grad_norm: float | None = 1.0
    ema_decay: float | None = 0.999        # None: no EMA
    ema_warmup: bool = True                # EMA decay grows from 0 towards ema_decay (diffusers' warm-up)
    ema_power: float = 0.75
    snr_gamma: float | None = 5.0          # cap of the SNR loss weighting; None: plain MSE (DDPM's L_simple)
    loss_weighting: str = "clipped_snr"    # "clipped_snr" | "min_snr" (see diffusion_loss)
    cond_drop_prob: float = 0.0            # probability of replacing the condition by the null one (CFG)
    mixed_precision: str = "auto"          # "auto" | "no" | "fp16" | "bf16" (course_utils.devices)
    checkpoint_every: int = 0              # steps; 0: only at the end
    keep_last: int = 2
    log_every: int = 25
    seed: int = 0
    time_limit_s: float | None = None      # stop early (and checkpoint) after this much training time
    fused_optimizer: bool = True           # AdamW's fused kernel and a foreach EMA update where torch has them
                                           # (CPU, CUDA): the same arithmetic as per-parameter loops, fewer kernels
    random_flip: bool = False              # mirror each training image left-right with probability 1/2 (data
                                           # augmentation, as DDPM's CIFAR-10 recipe; not for digits or text)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, cfg: dict, dataset_size: int, section: str | None = None) -> "TrainConfig":
        """The ``train`` section of a task's config (:func:`course_utils.configs.load_config`) as a TrainConfig,
        with ``cfg[section]["train"]`` put over it (a notebook's shorter ``exercise`` or ``multi_hot`` run).
        ``epochs`` becomes ``max_steps`` for ``dataset_size`` items, at least ``min_steps`` (a small data set
        such as the offline emoji gets more epochs). Unknown settings are refused by name.

        Introduced in lesson 1.
        """
        kw = dict(cfg["train"])
        if section:
            kw.update((cfg.get(section) or {}).get("train") or {})
        where = cfg.get("config_file", "the config")
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(kw) - set(types) - {"epochs", "min_steps"})
        if unknown:
            raise ConfigError(f"unknown train setting(s) {', '.join(unknown)} in {where}"
                              f"; the known ones are epochs, min_steps, {', '.join(sorted(types))}")
        types.update(epochs="float", min_steps="int | None")
        kw = {k: _setting(f"train.{k}", v, types[k], where) for k, v in kw.items()}
        min_steps = kw.pop("min_steps", 0) or 0
        if "epochs" in kw:
            kw["max_steps"] = steps_for_epochs(kw.pop("epochs"), dataset_size, kw.get("batch_size", cls.batch_size),
                                               kw.get("grad_accum_steps", 1))
        kw["max_steps"] = max(kw.get("max_steps", cls.max_steps), min_steps)
        return cls(**kw)


def _setting(name: str, value, type_name: str, where: str):
    """A train setting read from YAML, as its field's type wants it: YAML reads ``4e-3`` (no dot) as a string and
    ``[0.9, 0.99]`` as a list, so numbers are parsed and lists become tuples; a value of the wrong kind is refused
    by name."""
    if value is None and "None" in type_name:
        return None
    kind = type_name.split(" |")[0]
    try:
        if kind == "float" and not isinstance(value, bool):
            return float(value)
        if kind == "int" and not isinstance(value, bool) and float(value) == int(float(value)):
            return int(float(value))
        if kind == "bool" and isinstance(value, bool) or kind == "str" and isinstance(value, str):
            return value
        if kind.startswith("tuple") and isinstance(value, (list, tuple)) and len(value) == 2:
            return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{name} in {where} must be {_KINDS.get(kind, kind)}"
                      f"{' or null' if 'None' in type_name else ''}, got {value!r}")


_KINDS = {"float": "a number", "int": "a whole number", "bool": "true or false", "str": "a string",
          "tuple[float, float]": "a list of two numbers"}


def diffusion_loss(model_output: torch.Tensor, target: torch.Tensor, noise_scheduler, timesteps: torch.Tensor,
                   snr_gamma: float | None = None, loss_weighting: str = "min_snr") -> torch.Tensor:
    """The mean squared error ||target - model(x_t, t)||^2, optionally weighted per sample by the signal-to-noise
    ratio (unweighted, with epsilon as the target, it is DDPM's L_simple).

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


def training_loss(model, noise_scheduler, x0: torch.Tensor, cond, config: TrainConfig,
                  null_condition: Callable | None = None) -> torch.Tensor:
    """One training step's loss: a random timestep per image, the images noised to it (the forward process),
    a tenth of the labels dropped if the config asks (label dropout), the model's prediction, and its weighted
    squared error to the target. The training loop calls this at every step, then backpropagates.

    Introduced in lesson 1.
    """
    noise = torch.randn_like(x0)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
    x_t = noise_scheduler.add_noise(x0, noise, timesteps)  # sqrt(abar_t) x0 + sqrt(1 - abar_t) noise
    if config.cond_drop_prob > 0:  # classifier-free guidance needs the model to know "no label" too
        drop = torch.rand(x0.shape[0], device=x0.device) < config.cond_drop_prob
        cond = drop_condition(cond, null_condition(cond), drop)
    prediction = model(x_t, timesteps, cond)
    target = training_target(noise_scheduler, x0, noise, timesteps)  # the noise, or v
    return diffusion_loss(prediction, target, noise_scheduler, timesteps, config.snr_gamma, config.loss_weighting)


def random_flip(images: torch.Tensor) -> torch.Tensor:
    """The batch with each image mirrored left-right with probability 1/2: a small data set seen as twice as many
    images (``TrainConfig.random_flip``). Introduced in lesson 4.
    """
    flip = torch.rand(images.shape[0], device=images.device) < 0.5
    return torch.where(flip.view(-1, *[1] * (images.ndim - 1)), images.flip(-1), images)


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
    """Write the whole training state to ``step-N.tmp``, then rename it: a crash leaves no half checkpoint.
    Every process writes its part (its random state) before the main process renames and prunes."""
    final = ckpt_dir / f"step-{step:07d}"
    tmp = temporary_sibling(final)
    if accelerator.is_main_process:
        remove(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / "trainer_state.json").write_text(json.dumps(state))
        move_into_place(tmp, final)
        for old in list_checkpoints(ckpt_dir)[:-keep_last] if keep_last > 0 else []:
            remove(old)
    accelerator.wait_for_everyone()
    return final


# --------------------------------------------------------------------------- the learning rate

LR_SCHEDULES = ("constant", "constant_with_warmup", "cosine", "linear")


def lr_factor(schedule: str, step: int, warmup_steps: int, total_steps: int, time_fraction: float = 0.0) -> float:
    """The learning rate at optimizer step ``step`` (0 for the first), as a fraction of the configured one:
    a linear warm-up over ``warmup_steps``, then ``constant``, ``linear`` or ``cosine`` decay (the shapes of
    diffusers' ``get_scheduler``) towards 0 at ``total_steps``.

    The decay follows the larger of two fractions: steps done out of ``total_steps``, and ``time_fraction``,
    training time used out of the run's time limit. A run stopped by its time limit therefore ends its schedule
    on time whatever the machine's speed, instead of stopping with the learning rate still high.
    Introduced in lesson 1.
    """
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {schedule!r}")
    if schedule == "constant":
        return 1.0
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    if schedule == "constant_with_warmup":
        return 1.0
    progress = max((step - warmup_steps) / max(1, total_steps - warmup_steps), time_fraction)
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


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
    loss_fn: Callable = training_loss,
) -> TrainResult:
    """Train a conditional denoiser ``model(x_t, t, cond)`` on ``(image, cond)`` pairs.

    ``out_dir/checkpoints/step-N`` holds resumable states; with ``resume=True`` the run continues from the
    newest one with the same step count, optimizer, learning rate, EMA and random state. ``null_condition``
    maps a batch of conditions to the "no condition" value used for classifier-free guidance when
    ``config.cond_drop_prob > 0``. ``on_step(step, loss)`` is called after each optimizer step. ``loss_fn`` is
    the step's loss (:func:`training_loss` unless a lesson passes its own, edited copy).
    Introduced in lesson 1.
    """
    run = training_run(model, noise_scheduler, dataset, config, out_dir, resume, null_condition, on_step, progress,
                       accelerator, loss_fn)
    while True:
        try:
            next(run)
        except StopIteration as done:
            return done.value


def train_interleaved(runs: dict[str, Generator]) -> dict[str, TrainResult]:
    """Advance several :func:`training_run` s one optimizer step each in turn until all have finished. Each run
    counts only its own steps' time, so runs compared at the same time budget share the machine's drift alike.

    Introduced in lesson 1 (its bench).
    """
    results, active = {}, dict(runs)
    while active:
        for name, run in list(active.items()):
            try:
                next(run)
            except StopIteration as done:
                results[name] = done.value
                del active[name]
    return {name: results[name] for name in runs}


def training_run(
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
    loss_fn: Callable = training_loss,
) -> Generator[int, None, TrainResult]:
    """:func:`train_diffusion` one optimizer step at a time: a generator that yields the step number after each
    step and returns the :class:`TrainResult`. ``train_seconds`` counts only the time spent inside its own steps,
    so several runs can be interleaved (:func:`train_interleaved`) and each still stops at its own time limit.

    Introduced in lesson 1.
    """
    if config.cond_drop_prob > 0 and null_condition is None:
        raise ValueError("cond_drop_prob > 0 needs a null_condition function (lesson 3)")
    out_dir = Path(out_dir) if out_dir is not None else None
    ckpt_dir = out_dir / "checkpoints" if out_dir is not None else None

    if accelerator is None:
        device = default_device(verbose=False)
        accelerator = Accelerator(
            cpu=device.type == "cpu",  # also when MPS is present but lacks an operation (course_utils.devices)
            mixed_precision=resolve_mixed_precision(config.mixed_precision, device),
            gradient_accumulation_steps=config.grad_accum_steps,
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        )
    set_seed(config.seed)
    lr_factor(config.lr_schedule, 0, config.warmup_steps, config.max_steps)  # an unknown schedule fails here

    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True)
    if len(loader) == 0:
        raise ValueError(f"the data set has {len(dataset)} items, fewer than one batch of {config.batch_size}")
    fused = config.fused_optimizer and accelerator.device.type in ("cpu", "cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=config.adam_betas,
                                  weight_decay=config.weight_decay, fused=fused)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    unwrapped = accelerator.unwrap_model(model)

    ema = None
    if config.ema_decay is not None:
        ema = EMAModel(unwrapped.parameters(), decay=config.ema_decay, use_ema_warmup=config.ema_warmup,
                       power=config.ema_power, foreach=config.fused_optimizer, model_cls=type(unwrapped),
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

    def set_learning_rate():
        fraction = train_seconds / config.time_limit_s if config.time_limit_s else 0.0
        lr = config.learning_rate * lr_factor(config.lr_schedule, step, config.warmup_steps, config.max_steps,
                                              fraction)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    steps_per_epoch = len(loader) // config.grad_accum_steps
    bar = tqdm(total=config.max_steps, initial=step, desc="train", dynamic_ncols=True,
               disable=not (progress and accelerator.is_main_process))
    model.train()
    def out_of_time():
        return config.time_limit_s is not None and train_seconds >= config.time_limit_s

    stopped_early = step > 0 and out_of_time()  # resumed after its time limit: nothing left (raise time_limit_s)
    window = []
    lr = set_learning_rate()
    started = time.perf_counter()  # this step's start: the time between yields belongs to other runs
    while step < config.max_steps and not stopped_early:
        epoch, skip = divmod(step, steps_per_epoch)
        loader.set_epoch(epoch)
        batches = accelerator.skip_first_batches(loader, skip * config.grad_accum_steps) if skip else loader
        for x0, cond in batches:
            if config.random_flip:
                x0 = random_flip(x0)
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    loss = loss_fn(model, noise_scheduler, x0, cond, config, null_condition)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
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
            train_seconds += time.perf_counter() - started
            if accelerator.num_processes > 1:  # one clock for all: the same learning rate and the same last step
                train_seconds = accelerator.reduce(torch.tensor([train_seconds], device=accelerator.device),
                                                   "max").item()
            bar.update(1)
            if step % config.log_every == 0 or step == config.max_steps:
                recent = losses[-config.log_every:]
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", lr=f"{lr:.2e}")
            if on_step is not None:
                on_step(step, step_loss)
            stopped_early = out_of_time()
            if step >= config.max_steps or stopped_early:
                break
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                step_start = time.perf_counter()
                save(step)
                train_seconds += time.perf_counter() - step_start
            lr = set_learning_rate()
            yield step
            started = time.perf_counter()
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

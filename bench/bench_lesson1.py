"""Lesson 1 benchmarks. Prints measured figures (and writes them as JSON next to the run).

  python bench/bench_lesson1.py throughput   # seed recipe vs cpu preset, fp32 vs bf16 autocast: ms per step
  python bench/bench_lesson1.py speedups --rounds 20   # the cpu model: 1 thread, channels_last, torch.compile
  python bench/bench_lesson1.py step-parts --rounds 100   # where one cpu training step spends its time
  python bench/bench_lesson1.py recipe       # train mnist on the cpu preset and judge it (about 7 minutes)
  python bench/bench_lesson1.py side-by-side # the source recipe and the cpu preset, same budget, interleaved,
                                             # two seeds each (4 x 300 s of training: about 25 minutes)
  python bench/bench_lesson1.py side-by-side --recipes cpu --candidate train.batch_size=16 --also-scales 1.5 2 2.5
                                             # the preset against a change of it, each model judged at more scales
  python bench/bench_lesson1.py side-by-side --recipes cpu --candidate train.learning_rate=4.0e-3 \
      --candidate 'train.adam_betas=[0.9,0.99]' train.ema_decay=0.999   # several candidates in one interleaved run
  python bench/bench_lesson1.py timesteps    # uniform against logit-normal timesteps in training, side by side
  python bench/bench_lesson1.py budgets --seeds 0   # the cpu preset trained for 300, 600 and 1200 s, interleaved:
                                                   # how accuracy and FID move with the training budget (about 40 min)
  python bench/bench_lesson1.py samplers     # every sampler, with and without guidance, on one trained model
  python bench/bench_lesson1.py why        # why deterministic samplers lose: spacing, order, thresholding, eta
  python bench/bench_lesson1.py interval   # guidance on some steps only, more steps for the same 25 evaluations
  python bench/bench_lesson1.py interval --intervals 350-1000 --scales 2 2.5 --ramps 1.5-3   # and a scale that
                                             # grows with the noise level, from 1.5 at t = 350 to 3 at t = 1000
  python bench/bench_lesson1.py embedding    # exercise 2: class-embedding sizes at the exercise's budget
  python bench/bench_lesson1.py fashion      # exercise 1: the cpu recipe on Fashion-MNIST, the exercise's steps
  python bench/bench_lesson1.py variants --set batch   # the searches behind the cpu recipe: variants of the earlier
  python bench/bench_lesson1.py variants --set patch   # recipe interleaved, judged at 50 per class (about 20 min)
  python bench/bench_lesson1.py ablation     # what each change of the earlier cpu recipe bought, same budget

Timings on a shared machine drift: variants are interleaved in one process and medians and ratios quoted.
"""
from __future__ import annotations

import argparse
import inspect
import statistics
import time
from pathlib import Path

import torch

import course_utils as cu
from course_utils.configs import merge
from course_utils.evaluation import reference_images
from course_utils.jobs import guidance_of
from course_utils.models import ClassConditionedUnet, count_parameters, null_condition_for
from course_utils.sampling import linear_guidance, model_evaluations
from course_utils.schedulers import make_sampler
from course_utils.training import train_interleaved, training_run

from common import (add_recipe_arguments, announce, budgets, judged_figures, parse_intervals, preset_recipes, report,
                    side_by_side, speedups, steps_within)


def time_steps(variants: dict, batch: int, rounds: int) -> dict:
    """Interleave one training step of each variant per round; return the median seconds of each."""
    times = {k: [] for k in variants}
    opts = {k: torch.optim.AdamW(m.parameters(), 1e-3) for k, (m, _) in variants.items()}
    x, y, t = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,)), torch.randint(0, 1000, (batch,))
    for r in range(rounds + 1):
        for k, (m, dtype) in variants.items():
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                loss = (m(x, t, y).float() - x).pow(2).mean()
            loss.backward()
            opts[k].step()
            opts[k].zero_grad()
            if r:  # round 0 warms up
                times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def throughput(rounds: int, batch: int = 32) -> dict:
    """Milliseconds per training step at the cpu preset's batch size: the source recipe's model, the earlier cpu
    model (three levels, no folding) and the cpu preset's (2x2 pixels folded into channels), fp32 and bf16."""
    seed = cu.load_config("mnist", "gpu")["model"]
    cpu = cu.load_config("mnist", "cpu")
    earlier = merge(cpu, EARLIER_CPU)
    variants = {
        "source recipe model, fp32": (ClassConditionedUnet(**seed), None),
        "earlier cpu model (16, 32, 64), fp32": (ClassConditionedUnet(**earlier["model"]), None),
        "cpu preset model, patch 2, (32, 64), fp32": (ClassConditionedUnet(**cpu["model"]), None),
        "cpu preset model, bf16 autocast": (ClassConditionedUnet(**cpu["model"]), torch.bfloat16),
    }
    med = time_steps(variants, batch, rounds)
    out = {"batch": batch}
    for k, s in med.items():
        out[k] = {"ms_per_step": round(s * 1000), "images_per_s": round(batch / s),
                  "parameters": count_parameters(variants[k][0])}
    base = med["cpu preset model, patch 2, (32, 64), fp32"]
    out["ratio source/cpu-preset"] = round(med["source recipe model, fp32"] / base, 2)
    out["ratio earlier/cpu-preset"] = round(med["earlier cpu model (16, 32, 64), fp32"] / base, 2)
    out["ratio bf16/fp32 (cpu preset)"] = round(med["cpu preset model, bf16 autocast"] / base, 2)
    return out


def step_parts(steps: int) -> dict:
    """Where one training step of the cpu preset spends its time: the batch from the data loader, the forward pass
    with its loss, the backward pass, gradient clipping, the optimizer, the EMA update and reading the loss (the
    loop's ``.item()``), each timed apart over the same steps, with the preset's own data, model, loss, optimizer
    and EMA (the loop of ``training_run`` without Accelerate, which on a CPU in fp32 adds no work of its own)."""
    from diffusers.training_utils import EMAModel

    from course_utils.training import training_loss

    cfg = cu.load_config("mnist", "cpu")
    data = cu.build_dataset(cfg, "train", verbose=False)
    config = cu.TrainConfig.from_config(cfg, len(data))
    torch.manual_seed(0)
    model = cu.build_model(cfg, data)
    sched = cu.build_noise_scheduler(cfg)
    null = null_condition_for(model)
    loader = torch.utils.data.DataLoader(data, batch_size=config.batch_size, shuffle=True, drop_last=True)
    opt = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=config.adam_betas,
                            weight_decay=config.weight_decay)
    ema = EMAModel(model.parameters(), decay=config.ema_decay, use_ema_warmup=config.ema_warmup,
                   power=config.ema_power)
    names = ["data", "forward and loss", "backward", "gradient clipping", "optimizer", "EMA", "loss.item()"]
    times = {k: [] for k in names}
    batches = iter(loader)
    model.train()
    for i in range(steps + 3):  # the first 3 warm up
        marks = [time.perf_counter()]
        x0, cond = next(batches)
        marks.append(time.perf_counter())
        loss = training_loss(model, sched, x0, cond, config, null)
        marks.append(time.perf_counter())
        loss.backward()
        marks.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        marks.append(time.perf_counter())
        opt.step()
        opt.zero_grad(set_to_none=True)
        marks.append(time.perf_counter())
        ema.step(model.parameters())
        marks.append(time.perf_counter())
        loss.detach().float().item()
        marks.append(time.perf_counter())
        if i >= 3:
            for k, a, b in zip(names, marks, marks[1:]):
                times[k].append(b - a)
    med = {k: statistics.median(v) for k, v in times.items()}
    total = sum(med.values())
    out = {"steps": steps, "batch": config.batch_size, "ms_per_step": round(total * 1000, 1)}
    for k in names:
        out[k] = {"ms": round(med[k] * 1000, 2), "share": round(med[k] / total, 3)}
    return out


def recipe(out_dir: Path) -> dict:
    start = time.perf_counter()
    metrics = cu.train("mnist", "cpu", out_dir, resume=False, progress=False)
    metrics["wall_seconds_total"] = round(time.perf_counter() - start, 1)
    return metrics


def judged(model, noise_scheduler, sampler: str, steps: int, per_class: int, scale=None, seed: int = 0,
           interval=None) -> dict:
    """One model judged with a sampler, guided at ``scale`` (on the steps in ``interval`` only, if given)."""
    interval = tuple(interval) if interval is not None and scale else None
    ev = cu.evaluate_model(model, noise_scheduler, "mnist", sampler, steps, per_class, seed=seed,
                           guidance_scale=scale, null_condition=null_condition_for(model) if scale else None,
                           guidance_interval=interval)
    evals = model_evaluations(make_sampler(sampler, noise_scheduler), steps, scale, interval)
    return {"class_accuracy": round(ev.report.class_accuracy, 4), "fid": round(ev.report.fid, 2),
            "fid_real_vs_real": round(ev.report.fid_real_vs_real, 2),
            "per_class_accuracy": [round(a, 3) for a in ev.report.per_class_accuracy],
            "model_evals_per_sample": evals,
            "ms_per_sample": round(ev.seconds_per_sample * 1000, 1)}


# (sampler, steps, guidance scale or None): 20-25 model evaluations each
SAMPLERS = [("ddpm", 25, None), ("ddim", 25, None), ("dpm", 20, None), ("dpm", 25, None), ("dpm-sde", 20, None),
            ("dpm-sde", 25, None), ("ddpm", 12, 2.0), ("ddim", 12, 2.0), ("dpm", 12, 2.0), ("dpm-sde", 12, 2.0),
            ("dpm-sde", 12, 2.5), ("ddim", 10, 2.0), ("dpm", 10, 2.0)]  # the last two: 20 evaluations, guided


def samplers(checkpoint: Path, per_class: int) -> dict:
    """Judge one trained model with each sampler, from the same labels and noise."""
    pipe = cu.load_pipeline(checkpoint)
    out = {}
    for name, steps, scale in SAMPLERS:
        if scale and pipe.null_condition is None:
            continue
        key = f"{name} {steps} steps" + (f", guidance {scale:g}" if scale else "")
        out[key] = judged(pipe.unet, pipe.scheduler, name, steps, per_class, scale)
        print(key, {k: v for k, v in out[key].items() if k != "per_class_accuracy"}, flush=True)
    return out


def why(checkpoint: Path, per_class: int) -> dict:
    """Unguided, 20-25 steps, same labels and noise: each suspect for the gap between DDPM and the deterministic
    solvers changed alone (timestep spacing, solver order, thresholding, DDIM's eta, other solvers)."""
    from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler,
                           EulerAncestralDiscreteScheduler, UniPCMultistepScheduler)
    pipe = cu.load_pipeline(checkpoint)
    model, cfg = pipe.unet, pipe.scheduler.config
    dpm = dict(algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="trailing")

    def solver(**change):
        return DPMSolverMultistepScheduler.from_config(cfg, **{**dpm, **change})

    ddim = DDIMScheduler.from_config(cfg, timestep_spacing="trailing", clip_sample=False)
    variants = {  # name: (scheduler, steps, extra step() arguments)
        "DDPM 25": (DDPMScheduler.from_config(cfg), 25, {}),
        "DPM-Solver++ 20, trailing (the course's)": (solver(), 20, {}),
        "DPM-Solver++ 20, leading": (solver(timestep_spacing="leading"), 20, {}),
        "DPM-Solver++ 20, linspace": (solver(timestep_spacing="linspace"), 20, {}),
        "DPM-Solver++ 20, order 1": (solver(solver_order=1), 20, {}),
        "DPM-Solver++ 20, thresholding": (solver(thresholding=True), 20, {}),
        "DPM-Solver++ 20, no lower_order_final": (solver(lower_order_final=False), 20, {}),
        "SDE-DPM-Solver++ 20": (solver(algorithm_type="sde-dpmsolver++"), 20, {}),
        "DDIM 20, eta 0": (ddim, 20, {}),
        "DDIM 20, eta 1 (stochastic)": (ddim, 20, {"eta": 1.0}),
        "UniPC 20": (UniPCMultistepScheduler.from_config(cfg, timestep_spacing="trailing"), 20, {}),
        "Euler ancestral 20 (stochastic)": (
            EulerAncestralDiscreteScheduler.from_config(cfg, timestep_spacing="trailing"), 20, {}),
    }
    judge, info = cu.load_or_train_judge("mnist", verbose=False)
    reference = reference_images("mnist")
    labels = cu.labels_per_class(10, per_class)
    out = {}
    for name, (sched, steps, extra) in variants.items():
        generator = torch.Generator().manual_seed(0)
        x = torch.randn((len(labels), 1, 28, 28), generator=generator)
        start = time.perf_counter()
        with torch.no_grad():
            sched.set_timesteps(steps)
            x = x * sched.init_noise_sigma
            for t in sched.timesteps:
                pred = model(sched.scale_model_input(x, t), t, labels)
                kw = {"generator": generator} if "generator" in inspect.signature(sched.step).parameters else {}
                x = sched.step(pred, t, x, **kw, **extra).prev_sample
        seconds = time.perf_counter() - start
        q = cu.evaluate_samples(judge, cu.to_unit_range(x), labels, reference, info["test_accuracy"])
        out[name] = {"class_accuracy": round(q.class_accuracy, 4), "fid": round(q.fid, 2),
                     "fid_real_vs_real": round(q.fid_real_vs_real, 2), "seconds": round(seconds, 1)}
        print(name, out[name], flush=True)
    return out




def logit_normal_loss(mean: float):
    """The training loss with its timesteps drawn from a logit-normal law instead of uniformly: t / T = sigmoid(mean +
    N(0, 1)) (Esser et al. 2024, for rectified flows). Mean 0 favours the middle noise levels; a positive mean the
    noisy ones, where guidance found the digit decided (``interval``). Everything else as ``training_loss``."""
    from course_utils.training import diffusion_loss, drop_condition, training_target

    def loss_fn(model, noise_scheduler, x0, cond, config, null_condition=None):
        steps = noise_scheduler.config.num_train_timesteps
        u = torch.sigmoid(mean + torch.randn(x0.shape[0], device=x0.device))
        timesteps = (u * steps).long().clamp(max=steps - 1)
        noise = torch.randn_like(x0)
        if config.cond_drop_prob > 0:
            drop = torch.rand(x0.shape[0], device=x0.device) < config.cond_drop_prob
            cond = drop_condition(cond, null_condition(cond), drop)
        prediction = model(noise_scheduler.add_noise(x0, noise, timesteps), timesteps, cond)
        return diffusion_loss(prediction, training_target(noise_scheduler, x0, noise, timesteps), noise_scheduler,
                              timesteps, config.snr_gamma, config.loss_weighting)
    return loss_fn


def timestep_laws(budget_s: float, seeds: list[int], per_class: int, means: list[float],
                  also_scales: list[float] | None = None) -> dict:
    """The cpu preset trained with uniform timesteps (as shipped) and with logit-normal ones of each mean, the same
    budget and seeds, interleaved (common.side_by_side); each judged with the preset's guided sampler."""
    cpu = cu.load_config("mnist", "cpu")
    recipes = {"cpu preset (uniform timesteps)": cpu}
    losses = {}
    for mean in means:
        label = f"logit-normal timesteps, mean {mean:g}"
        recipes[label], losses[label] = cpu, logit_normal_loss(mean)
    return side_by_side("mnist", recipes, budget_s, seeds, per_class, loss_fns=losses, also_scales=also_scales)


def embedding(per_class: int | None) -> dict:
    """Exercise 2's runs: the cpu preset's model with class embeddings of 1, 4 and 16 channels and a fixed one-hot
    code, each trained for the exercise's steps from the same seed; judged class accuracy. The exercise's
    reference ranges in mnist.yaml come from this."""
    cfg = cu.load_config("mnist", "cpu")
    data = cu.load_dataset("mnist", "train", verbose=False)
    per_class = per_class or cfg["embedding"]["per_class"]
    s = cfg["sample"]
    out = {}
    for size in (1, 4, 16, "one-hot"):
        torch.manual_seed(0)
        model = ClassConditionedUnet(**{**cfg["model"], "class_emb_size": 10 if size == "one-hot" else size})
        if size == "one-hot":
            with torch.no_grad():
                model.class_emb.weight.copy_(torch.eye(model.class_emb.num_embeddings, 10))
            model.class_emb.weight.requires_grad_(False)
        config = cu.TrainConfig.from_config(cfg, len(data), "embedding")
        sched = cu.build_noise_scheduler(cfg)
        start = time.perf_counter()
        res = cu.train_diffusion(model, sched, data, config, null_condition=null_condition_for(model), progress=False)
        seconds = time.perf_counter() - start
        out[str(size)] = judged(res.model, sched, s["sampler"], s["steps"], per_class, s.get("guidance_scale"),
                                interval=s.get("guidance_interval"))
        out[str(size)].update(steps=res.step, train_seconds=round(seconds, 1))
        print(size, out[str(size)]["class_accuracy"], flush=True)
    return out


# the cpu preset before the current recipe (README: "what each change bought"); the ablation varies this one
EARLIER_CPU = {"model": dict(class_emb_size=16, patch_size=1, null_class=False, block_out_channels=(16, 32, 64),
                             down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                             up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D")),
               "train": dict(max_steps=1500, batch_size=64, ema_decay=0.999, cond_drop_prob=0.0)}
def fashion(per_class: int | None) -> dict:
    """Exercise 1's run: the cpu preset's model and recipe on Fashion-MNIST for the exercise's steps, judged per
    class by a Fashion-MNIST judge. The exercise's reference range in fashion_mnist.yaml comes from this."""
    cfg = cu.load_config("fashion_mnist", "cpu")
    data = cu.build_dataset(cfg, "train")
    config = cu.TrainConfig.from_config(cfg, len(data), "exercise")
    torch.manual_seed(0)
    model = cu.build_model(cfg, data)
    sched = cu.build_noise_scheduler(cfg)
    start = time.perf_counter()
    res = cu.train_diffusion(model, sched, data, config, null_condition=null_condition_for(model), progress=False)
    seconds = time.perf_counter() - start
    s = cfg["sample"]
    guidance = guidance_of(cfg, res.model)
    ev = cu.evaluate_model(res.model, sched, "fashion_mnist", s["sampler"], s["steps"],
                           per_class or cfg["eval_per_class"], seed=0, **guidance)
    evals = model_evaluations(make_sampler(s["sampler"], sched), s["steps"], guidance["guidance_scale"],
                              guidance["guidance_interval"])
    names = cu.data.FASHION_CLASSES
    out = {"steps": res.step, "train_seconds": round(seconds, 1),
           "class_accuracy": round(ev.report.class_accuracy, 4), "fid": round(ev.report.fid, 2),
           "fid_real_vs_real": round(ev.report.fid_real_vs_real, 2),
           "judge_test_accuracy": round(ev.report.judge_test_accuracy, 4), "model_evals_per_sample": evals,
           "per_class_accuracy": {n: round(a, 3) for n, a in zip(names, ev.report.per_class_accuracy)}}
    # the same model sampled as MNIST's preset samples: guided from its interval only, and on every one of its steps
    m = cu.load_config("mnist", "cpu")["sample"]
    if m.get("guidance_scale") is None or guidance["null_condition"] is None:
        return out
    for label, interval in (("MNIST's sampling", m.get("guidance_interval")), ("MNIST's, every step guided", None)):
        other = cu.evaluate_model(res.model, sched, "fashion_mnist", m["sampler"], m["steps"],
                                  per_class or cfg["eval_per_class"], seed=0,
                                  **{**guidance, "guidance_scale": m["guidance_scale"], "guidance_interval": interval})
        out[label] = {**judged_figures(other), "guidance_scale": m["guidance_scale"], "steps": m["steps"],
                      "guidance_interval": interval,
                      "model_evals_per_sample": model_evaluations(make_sampler(m["sampler"], sched), m["steps"],
                                                                  m["guidance_scale"], interval)}
        print(label, {k: v for k, v in out[label].items() if k != "per_class_accuracy"}, flush=True)
    return out


CFG = {"model": {"null_class": True}, "train": {"cond_drop_prob": 0.1}}
PATCH2 = {"model": {"patch_size": 2, "block_out_channels": (32, 64),
                    "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
                    "up_block_types": ("AttnUpBlock2D", "UpBlock2D")}}
# name: (changes to the earlier cpu recipe, fixed steps or None for the time budget)
VARIANT_SETS = {
    "batch": {"batch 64": ({}, None), "batch 32": ({"train": {"batch_size": 32}}, None),
              "batch 32, label dropout": (merge(CFG, {"train": {"batch_size": 32}}), None)},
    "patch": {"batch 32, dropout, EMA 0.99": (merge(CFG, {"train": {"batch_size": 32, "ema_decay": 0.99}}), 900),
              "patch 2, (32, 64), batch 32, dropout, EMA 0.99": (
                  merge(merge(CFG, PATCH2), {"train": {"batch_size": 32, "ema_decay": 0.99}}), 1350)},
}
VARIANT_EVALS = [("ddpm", 25, None), ("dpm-sde", 20, None), ("dpm-sde", 12, 2.0), ("dpm-sde", 12, 2.5)]


def variants(which: str, budget_s: float, per_class: int) -> dict:
    """Variants of the earlier cpu recipe trained interleaved (each for the budget, or for its fixed steps, which
    were chosen to take about the same time), then judged with and without guidance."""
    data = cu.load_dataset("mnist", "train", verbose=False)
    runs, setups = {}, {}
    for name, (change, steps) in VARIANT_SETS[which].items():
        cfg = merge(merge(cu.load_config("mnist", "cpu"), EARLIER_CPU), change)
        cfg["train"].update(checkpoint_every=0, time_limit_s=None if steps else budget_s,
                            max_steps=steps or 1500)  # the learning rate decays over the budget
        config = cu.TrainConfig.from_config(cfg, len(data))
        torch.manual_seed(0)
        model = cu.build_model(cfg, data)
        null = null_condition_for(model) if config.cond_drop_prob > 0 else None
        runs[name] = training_run(model, cu.build_noise_scheduler(cfg), data, config, null_condition=null,
                                  progress=False)
        setups[name] = cu.build_noise_scheduler(cfg)
    out = {}
    for name, res in train_interleaved(runs).items():
        out[name] = {"steps": res.step, "train_seconds": round(res.train_seconds, 1)}
        for sampler, steps, scale in VARIANT_EVALS:
            if scale and null_condition_for(res.model) is None:
                continue
            key = f"{sampler} {steps}" + (f" s={scale:g}" if scale else "")
            out[name][key] = judged(res.model, setups[name], sampler, steps, per_class, scale)
            print(name, res.step, key, out[name][key]["class_accuracy"], out[name][key]["fid"], flush=True)
    return out


# (lo, hi) timesteps of the guided steps; the others use the conditional model alone, at one evaluation
INTERVALS = [(0, 1000), (150, 1000), (250, 1000), (350, 1000), (0, 900), (0, 800), (150, 900), (250, 900),
             (350, 900), (250, 800)]


def interval(checkpoint: Path, per_class: int, scales: list[float], intervals=INTERVALS, budget: int = 25,
             ramps=()) -> dict:
    """SDE-DPM-Solver++ guided only on the steps whose timestep lies in an interval, each interval with as many
    steps as fit in ``budget`` model evaluations (a guided step costs two), judged at each guidance scale on the
    same labels and noise. The first interval guides every step: the earlier preset's way. Each ``(a, b)`` of
    ``ramps`` is judged too: a scale that goes from ``a`` at the interval's lower end to ``b`` at its upper end."""
    pipe = cu.load_pipeline(checkpoint)
    sampler = make_sampler("dpm-sde", pipe.scheduler)
    out = {}
    for lo, hi in intervals:
        steps = steps_within(sampler, budget, (lo, hi))
        evals = model_evaluations(sampler, steps, 2.0, (lo, hi))
        settings = [(f"s={scale:g}", scale, scale) for scale in scales]
        settings += [(f"s from {a:g} at t={lo} to {b:g} at t={hi}", linear_guidance(a, b, (lo, hi)), [a, b])
                     for a, b in ramps]
        for name, scale, recorded in settings:
            ev = cu.evaluate_model(pipe.unet, pipe.scheduler, "mnist", "dpm-sde", steps, per_class, seed=0,
                                   guidance_scale=scale, null_condition=pipe.null_condition,
                                   guidance_interval=(lo, hi))
            key = f"t in [{lo}, {hi}], {steps} steps, {evals} evaluations, {name}"
            out[key] = {"class_accuracy": round(ev.report.class_accuracy, 4), "fid": round(ev.report.fid, 2),
                        "fid_real_vs_real": round(ev.report.fid_real_vs_real, 2),
                        "per_class_accuracy": [round(a, 3) for a in ev.report.per_class_accuracy],
                        "steps": steps, "model_evals_per_sample": evals, "interval": [lo, hi],
                        "guidance_scale": recorded, "ms_per_sample": round(ev.seconds_per_sample * 1000, 1)}
            print(key, out[key]["class_accuracy"], out[key]["fid"], flush=True)
    return out


E4 = dict(class_emb_size=4)
ABLATION = {
    # name: changes to the cpu preset's model, train and prediction settings
    "eps + min-SNR, (32,64,64) UNet, emb 4": dict(
        model=dict(E4, block_out_channels=(32, 64, 64), norm_num_groups=32), prediction_type="epsilon",
        train=dict(loss_weighting="min_snr")),
    "v + min-SNR, (32,64,64) UNet, emb 4": dict(
        model=dict(E4, block_out_channels=(32, 64, 64), norm_num_groups=32), train=dict(loss_weighting="min_snr")),
    "v + min-SNR, (16,32,64) UNet, emb 4": dict(model=E4, train=dict(loss_weighting="min_snr")),
    "v + plain MSE, (16,32,64) UNet, emb 4": dict(model=E4, train=dict(snr_gamma=None)),
    "v + clipped SNR, (16,32,64) UNet, emb 4": dict(model=E4),
    "v + clipped SNR, (16,32,64) UNet, emb 16 (cpu preset)": dict(),
}


def ablation(budget_s: float, per_class: int) -> dict:
    """Train each variant for the same wall-clock budget, then judge DPM-Solver++ 20-step samples."""
    train_set = cu.load_dataset("mnist", "train", verbose=False)
    test_set = cu.load_dataset("mnist", "test", verbose=False)
    judge, info = cu.load_or_train_judge("mnist", verbose=False)
    out = {}
    for name, change in ABLATION.items():
        preset = merge(cu.load_config("mnist", "cpu"), EARLIER_CPU)
        preset["model"].update(change.get("model", {}))
        preset["train"].update(change.get("train", {}))
        # cosine decay over what the budget allows (about 1500 steps of the thin UNet in 540 s here)
        preset["train"].update(time_limit_s=budget_s, checkpoint_every=0,
                               max_steps=int(preset["train"]["max_steps"] * budget_s / 540))
        torch.manual_seed(0)
        model = ClassConditionedUnet(**preset["model"])
        sched = cu.make_noise_scheduler(prediction_type=change.get("prediction_type", preset["prediction_type"]))
        res = cu.train_diffusion(model, sched, train_set, cu.TrainConfig.from_config(preset, len(train_set)),
                                 progress=False)
        labels = cu.labels_per_class(10, per_class)
        images = cu.to_unit_range(cu.sample_images(res.model, sched, labels, 20, "dpm", seed=1))
        quality = cu.evaluate_samples(judge, images, labels, test_set.images, info["test_accuracy"])
        out[name] = {"steps": res.step, "train_seconds": round(res.train_seconds),
                     "class_accuracy": round(quality.class_accuracy, 3), "fid": round(quality.fid, 2),
                     "fid_real_vs_real": round(quality.fid_real_vs_real, 2)}
        print(name, out[name], flush=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["throughput", "speedups", "step-parts", "recipe", "side-by-side", "timesteps",
                                    "samplers", "embedding", "fashion", "variants", "why", "ablation", "interval",
                                    "budgets"])
    p.add_argument("--set", default="patch", choices=sorted(VARIANT_SETS), help="variants: which search")
    p.add_argument("--budget", type=float, default=None,
                   help="training seconds per run (ablation: 240; side-by-side: the cpu preset's time limit)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="side-by-side: the seeds")
    p.add_argument("--scales", type=float, nargs="+", default=[2.5, 3.0, 3.5], help="interval: guidance scales")
    add_recipe_arguments(p, ["source", "cpu"])
    p.add_argument("--intervals", nargs="+", metavar="LO-HI", default=None,
                   help="interval: the intervals, e.g. 0-1000 350-1000 (default: the ten of INTERVALS)")
    p.add_argument("--ramps", nargs="+", metavar="A-B", default=None,
                   help="interval: also a scale that goes from A at each interval's lower end to B at its upper end")
    p.add_argument("--means", type=float, nargs="+", default=[0.0, 0.5],
                   help="timesteps: the logit-normal laws' means (t / T = sigmoid(mean + N(0, 1)))")
    p.add_argument("--factors", type=float, nargs="+", default=[1.0, 2.0, 4.0],
                   help="budgets: training budgets as multiples of the cpu preset's time limit")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default="runs/bench-mnist-cpu")
    p.add_argument("--checkpoint", default="data/pretrained/mnist-cpu")
    p.add_argument("--per-class", type=int, default=None,
                   help="samples per class to judge (samplers: 100, side-by-side and ablation: 50 and 20)")
    args = p.parse_args()
    announce("bench_lesson1.py")
    if args.part == "throughput":
        result = throughput(args.rounds)
    elif args.part == "speedups":
        result = speedups("mnist", args.rounds)
    elif args.part == "step-parts":
        result = step_parts(args.rounds)
    elif args.part == "recipe":
        result = recipe(Path(args.out))
    elif args.part == "ablation":
        result = ablation(args.budget or 240, args.per_class or 20)
    elif args.part == "side-by-side":
        budget = args.budget or cu.load_config("mnist", "cpu")["train"]["time_limit_s"]
        result = side_by_side("mnist", preset_recipes("mnist", args.recipes, args.candidate), budget, args.seeds,
                              args.per_class or 50, also_scales=args.also_scales,
                              also_intervals=parse_intervals(args.also_intervals))
    elif args.part == "timesteps":
        budget = args.budget or cu.load_config("mnist", "cpu")["train"]["time_limit_s"]
        result = timestep_laws(budget, args.seeds, args.per_class or 50, args.means, args.also_scales)
    elif args.part == "budgets":
        result = budgets("mnist", args.factors, args.seeds, args.per_class or 100)
    elif args.part == "embedding":
        result = embedding(args.per_class)
    elif args.part == "why":
        result = why(Path(args.checkpoint), args.per_class or 100)
    elif args.part == "variants":
        result = variants(args.set, args.budget or 300, args.per_class or 50)
    elif args.part == "interval":
        intervals = parse_intervals(args.intervals) or INTERVALS
        result = interval(Path(args.checkpoint), args.per_class or 100, args.scales, intervals,
                          ramps=parse_intervals(args.ramps, float))
    elif args.part == "fashion":
        result = fashion(args.per_class)
    else:
        result = samplers(Path(args.checkpoint), args.per_class or 100)
    report("lesson1", args.part, result)


if __name__ == "__main__":
    main()

"""Lesson 2 benchmarks. Prints measured figures (and writes them as JSON under runs/).

  python bench/bench_lesson2.py throughput   # concatenation vs cross-attention UNet, fp32 vs bf16 autocast
  python bench/bench_lesson2.py speedups     # one training step: 1 thread, channels_last, torch.compile vs as it is
  python bench/bench_lesson2.py recipe       # train sprites on the cpu preset and judge it (about 10 minutes)
  python bench/bench_lesson2.py compare      # concatenation vs cross-attention: same data, same time budget
  python bench/bench_lesson2.py layout       # where cross-attention goes: same time budget per layout
  python bench/bench_lesson2.py mix          # the exercise: judged shares when mixing two labels (pretrained)
  python bench/bench_lesson2.py scales       # a checkpoint judged at guidance scales 1 to 5 (the preset's 2)
  python bench/bench_lesson2.py side-by-side # the cpu preset with and without label dropout + guidance, same budget,
                                             # interleaved, two seeds (--recipes source unguided cpu adds the gpu one)
  python bench/bench_lesson2.py budgets --seeds 0   # the cpu preset trained for its 540 s and for twice that,
                                                    # interleaved: what more training time buys (about 30 minutes)

Timings on a shared machine drift: variants are interleaved in one process and medians and ratios quoted.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import course_utils as cu
from course_utils.data import load_dataset
from course_utils.jobs import build_model
from course_utils.models import count_parameters
from course_utils.schedulers import make_noise_scheduler
from course_utils.training import time_mixed_precision

from common import (add_guidance_arguments, announce, budgets, guidance_scales, parse_intervals, preset_recipes,
                    report, side_by_side, speedups)

TASK = "sprites"


def throughput(rounds: int, batch: int = 64) -> dict:
    """Milliseconds per training step of the cpu preset's two models, in fp32 and under bf16 autocast."""
    preset = cu.load_config("sprites", "cpu")
    data = load_dataset("sprites", "train", verbose=False)
    x0 = torch.stack([data[i][0] for i in range(batch)])
    sched = make_noise_scheduler(prediction_type=preset["prediction_type"])
    out = {}
    for name, model_class, labels, model_cfg in (
            ("concatenation", "ClassConditionedUnet", data.class_indices[:batch], preset["concat_model"]),
            ("cross-attention", "LabelConditionedUnet", data.labels[:batch], preset["model"])):
        torch.manual_seed(0)
        model = build_model({"model_class": model_class, "model": model_cfg},
                            data if model_class == "LabelConditionedUnet" else data.with_class_indices())
        times = time_mixed_precision(model, sched, x0, labels, repeats=rounds)
        out[name] = {"parameters": count_parameters(model),
                     **{f"ms_per_step_{k}": round(v * 1000, 1) for k, v in times.items()},
                     "images_per_s_fp32": round(batch / times["fp32"], 1),
                     "ratio_bf16_over_fp32": round(times["bf16"] / times["fp32"], 2)}
        print(name, out[name], flush=True)
    return out


def recipe(out_dir: Path) -> dict:
    start = time.perf_counter()
    metrics = cu.train("sprites", "cpu", out_dir, resume=False, progress=False)
    metrics["wall_seconds_total"] = round(time.perf_counter() - start, 1)
    metrics["accuracy_over_judge"] = round(metrics["class_accuracy"] / metrics["judge_test_accuracy"], 3)
    return metrics


def compare(budget_s: float) -> dict:
    return cu.compare_conditioning("sprites", "cpu", budget_s=budget_s)


_D, _XD, _U, _XU = "DownBlock2D", "CrossAttnDownBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"
LAYOUTS = {
    # name: changes to the cpu preset's model
    "(32, 64, 64), cross-attention at 8x8, 4x4 and middle": dict(
        block_out_channels=(32, 64, 64), down_block_types=(_D, _XD, _XD), up_block_types=(_XU, _XU, _U)),
    "(32, 64, 128), cross-attention at 4x4 and middle": dict(
        block_out_channels=(32, 64, 128), down_block_types=(_D, _D, _XD), up_block_types=(_XU, _U, _U)),
    "(32, 64, 64), cross-attention at 4x4 and middle (cpu preset)": dict(),
}


def layout(budget_s: float, per_class: int) -> dict:
    """Train each layout for the same wall-clock budget (cosine decay over the steps its measured speed
    allows), then judge DDPM 25-step samples."""
    data = load_dataset("sprites", "train", verbose=False)
    x0 = torch.stack([data[i][0] for i in range(64)])
    out = {}
    for name, change in LAYOUTS.items():
        preset = cu.load_config("sprites", "cpu")
        preset["model"].update(change)
        torch.manual_seed(0)
        model = build_model(preset, data)
        sched = make_noise_scheduler(prediction_type=preset["prediction_type"])
        step_s = time_mixed_precision(model, sched, x0, data.labels[:64], repeats=3, dtypes={"fp32": None})["fp32"]
        preset["train"].update(time_limit_s=budget_s, checkpoint_every=0, max_steps=int(budget_s / step_s))
        res = cu.train_diffusion(model, sched, data, cu.TrainConfig.from_config(preset, len(data)), progress=False)
        quality = cu.evaluate_model(res.model, sched, data.name, "ddpm", 25, per_class).report
        out[name] = {"parameters": count_parameters(model), "images_per_s": round(64 / step_s, 1),
                     "steps": res.step, "train_seconds": round(res.train_seconds),
                     "class_accuracy": round(quality.class_accuracy, 3), "fid": round(quality.fid, 2),
                     "fid_real_vs_real": round(quality.fid_real_vs_real, 2)}
        print(name, out[name], flush=True)
    return out


def mix(checkpoint: Path, per_weight: int) -> dict:
    pipe = cu.load_pipeline(checkpoint, expected_model="UNet2DConditionModel")
    judge, _ = cu.load_or_train_judge("twemoji16", verbose=False)
    names = pipe.label_encoder.config.class_names
    out = {}
    start = time.perf_counter()
    for a, b in ((2, 1), (0, 4)):
        shares, _ = cu.mixed_label_shares(pipe.denoiser, pipe.scheduler, judge, a, b, per_weight=per_weight)
        out[f"{names[a]} -> {names[b]}"] = [{k: round(v, 3) for k, v in s.items()} for s in shares]
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["throughput", "speedups", "recipe", "compare", "layout", "mix", "scales",
                                    "side-by-side", "budgets"])
    p.add_argument("--budget", type=float, default=None,
                   help="training seconds per variant (compare, layout: 240; side-by-side: the cpu preset's limit)")
    p.add_argument("--per-class", type=int, default=100, help="layout, scales, side-by-side: samples judged per class")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default="runs/bench-sprites-cpu")
    p.add_argument("--checkpoint", default="data/pretrained/sprites-cpu")
    p.add_argument("--per-weight", type=int, default=100)
    add_guidance_arguments(p)
    args = p.parse_args()
    announce("bench_lesson2.py")
    if args.part == "throughput":
        result = throughput(args.rounds)
    elif args.part == "speedups":
        result = speedups(TASK, args.rounds)
    elif args.part == "recipe":
        result = recipe(Path(args.out))
    elif args.part == "compare":
        result = compare(args.budget or 240)
    elif args.part == "layout":
        result = layout(args.budget or 240, args.per_class)
    elif args.part == "budgets":
        result = budgets(TASK, args.factors, args.seeds, args.per_class)
    elif args.part == "side-by-side":
        budget = args.budget or cu.load_config(TASK, "cpu")["train"]["time_limit_s"]
        recipes = preset_recipes(TASK, args.recipes, args.candidate)
        result = side_by_side(TASK, recipes, budget, args.seeds, args.per_class, also_scales=args.also_scales,
                              also_intervals=parse_intervals(args.also_intervals))
    elif args.part == "scales":
        result = guidance_scales(Path(args.checkpoint), "twemoji16", args.scales, args.sampler, args.steps,
                                 args.per_class, args.interval, args.evaluations)
    else:
        result = mix(Path(args.checkpoint), args.per_weight)
    report("lesson2", args.part, result)


if __name__ == "__main__":
    main()

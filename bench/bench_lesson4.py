"""Lesson 4 benchmarks (the hand-written UNet). Prints measured figures (and writes them as JSON under runs/).

  python bench/bench_lesson4.py throughput   # ms per training step of candidate layouts, fp32 vs bf16 autocast
  python bench/bench_lesson4.py speedups --rounds 20   # the cpu model: 1 thread, channels_last, torch.compile
  python bench/bench_lesson4.py recipe       # train emoji32 on the cpu config, judge EMA and raw weights (~12 min)
  python bench/bench_lesson4.py guidance     # the exercise: label dropout, class accuracy per guidance scale
  python bench/bench_lesson4.py scales       # a checkpoint judged at guidance scales 1 to 5 (the config's 3)
  python bench/bench_lesson4.py recipe --task emoji32 --preset gpu    # the same on a GPU
  python bench/bench_lesson4.py side-by-side # the cpu config with and without label dropout + guidance, same budget,
                                             # interleaved, two seeds (--recipes source unguided cpu adds the gpu one)
  python bench/bench_lesson4.py budgets --seeds 0   # the cpu config trained for its 540 s and for twice that,
                                                    # interleaved: what more training time buys (about 30 minutes)
  python bench/bench_lesson4.py throughput --task cifar10 --preset gpu --config-only   # expected time of a run

Timings on a shared machine drift: variants are interleaved in one process and medians and ratios quoted.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import course_utils as cu
from course_utils.jobs import build_dataset, build_model
from course_utils.models import count_parameters
from course_utils.scratch import CosineDDPM
from course_utils.training import autocast_dtypes, time_mixed_precision

from common import (add_guidance_arguments, announce, budgets, guidance_scales, parse_intervals, preset_recipes,
                    report, side_by_side, speedups)

# Layouts compared for the cpu config at 32x32 (widths per level, blocks per level, self-attention resolutions)
LAYOUTS = {
    "32-64-128, 1 block, attention 16": dict(channels=(32, 64, 128), num_res_blocks=1, attention_resolutions=(16,)),
    "32-64-128, 1 block, bottleneck only": dict(channels=(32, 64, 128), num_res_blocks=1, attention_resolutions=()),
    "16-32-64-128, 1 block, attention 8 (cpu config)": dict(channels=(16, 32, 64, 128), num_res_blocks=1,
                                                            attention_resolutions=(8,)),
    "64-128-256, 2 blocks (gpu config)": dict(channels=(64, 128, 256), num_res_blocks=2, attention_resolutions=(16,)),
    # 2x2 pixels folded into channels (lesson 1's and lesson 2's patch_size), so the first level works at 16x16
    "2x2 folded, 32-64-128, 1 block, attention 8": dict(patch_size=2, channels=(32, 64, 128), num_res_blocks=1,
                                                        attention_resolutions=(8,)),
    "2x2 folded, 64-64-128, 1 block, attention 8": dict(patch_size=2, channels=(64, 64, 128), num_res_blocks=1,
                                                        attention_resolutions=(8,)),
}


def throughput(task: str, preset: str, rounds: int, layouts: bool = True, fp32_only: bool = False) -> dict:
    """Milliseconds per training step (forward, backward, AdamW) of each layout (or only the config's own model),
    fp32 and bf16 (and fp16 on CUDA) interleaved. With ``--preset gpu`` this gives the expected time of a run."""
    cfg = cu.load_config(task, preset)
    data = build_dataset(cfg, "train", verbose=False)
    batch = cfg["train"]["batch_size"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    idx = [i % len(data) for i in range(batch)]  # offline stand-ins can be smaller than a batch: only shapes matter
    x0 = torch.stack([data[i][0] for i in idx]).to(device)
    labels = data.labels[idx].to(device)
    ddpm = CosineDDPM(prediction_type=cfg["prediction_type"])
    out = {}
    for name, layout in (LAYOUTS if layouts else {f"{task} {preset} config": {}}).items():
        torch.manual_seed(0)
        model = build_model({**cfg, "model": {**cfg["model"], **layout}}, data).to(device)
        dtypes = {"fp32": None} if fp32_only else autocast_dtypes(device)
        times = time_mixed_precision(model, ddpm, x0, labels, repeats=rounds, dtypes=dtypes)
        out[name] = {"parameters": count_parameters(model),
                     **{f"ms_per_step_{k}": round(v * 1000, 1) for k, v in times.items()},
                     "images_per_s_fp32": round(batch / times["fp32"], 1),
                     "ratio_bf16_over_fp32": round(times["bf16"] / times["fp32"], 2) if "bf16" in times else None,
                     "minutes_for_the_config_steps_fp32":
                         round(cfg["train"].get("max_steps", 0) * times["fp32"] / 60, 1)}
        print(name, out[name], flush=True)
    return out


def recipe(task: str, preset: str, out_dir: Path, config: str | None) -> dict:
    start = time.perf_counter()
    metrics = cu.train(task, preset, out_dir, config=config, resume=False, progress=False)
    metrics["wall_seconds_total"] = round(time.perf_counter() - start, 1)
    if "class_accuracy" in metrics:
        metrics["accuracy_over_judge"] = round(metrics["class_accuracy"] / metrics["judge_test_accuracy"], 3)
    return metrics


def guidance(task: str, preset: str) -> dict:
    """The exercise: the config's exercise run (label dropout), then class accuracy at each guidance scale."""
    cfg = cu.load_config(task, preset)
    data = build_dataset(cfg, "train", verbose=False)
    ddpm = CosineDDPM(prediction_type=cfg["prediction_type"])
    out = {}
    for drop in (0.0, cfg["exercise"]["train"].get("cond_drop_prob", 0.1)):
        train_cfg = cu.TrainConfig.from_config(cfg, len(data), "exercise")
        train_cfg.cond_drop_prob = drop
        torch.manual_seed(0)
        model = build_model(cfg, data)
        result = cu.train_diffusion(model, ddpm, data, train_cfg, progress=False,
                                 null_condition=torch.zeros_like if drop > 0 else None)
        acc = cu.guidance_accuracy(result.model, ddpm.to_diffusers(), cfg["judge"], cfg["exercise"]["guidance_scales"],
                                cfg["exercise"]["per_class"], steps=cfg["sample"]["steps"])
        out[f"p={drop}"] = {"steps": result.step, "train_seconds": round(result.train_seconds, 1),
                            **{f"accuracy_at_scale_{s:g}": round(a, 4) for s, a in acc.items()}}
        print(f"p={drop}", out[f"p={drop}"], flush=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["throughput", "speedups", "recipe", "guidance", "scales", "side-by-side",
                                    "budgets"])
    p.add_argument("--task", default="emoji32", choices=["emoji32", "cifar10", "celeba"])
    p.add_argument("--preset", default="cpu")
    p.add_argument("--config", help="a YAML config (default: the shipped one for --task)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--config-only", action="store_true", help="throughput: only the config's own model")
    p.add_argument("--fp32-only", action="store_true", help="throughput: skip the (slow on CPU) autocast variants")
    p.add_argument("--out", default=None, help="recipe: output folder (default runs/bench-TASK-PRESET)")
    p.add_argument("--checkpoint", default="data/pretrained/emoji32-cpu", help="scales: the pipeline to judge")
    p.add_argument("--per-class", type=int, default=100, help="scales, side-by-side: samples judged per class")
    p.add_argument("--budget", type=float, default=None, help="side-by-side: training seconds per run (default: "
                                                              "the cpu config's limit)")
    add_guidance_arguments(p)
    args = p.parse_args()
    announce("bench_lesson4.py")
    if args.part == "throughput":
        result = throughput(args.task, args.preset, args.rounds, layouts=not args.config_only, fp32_only=args.fp32_only)
    elif args.part == "speedups":
        result = speedups(args.task, args.rounds)
    elif args.part == "recipe":
        result = recipe(args.task, args.preset, Path(args.out or f"runs/bench-{args.task}-{args.preset}"), args.config)
    elif args.part == "budgets":
        result = budgets(args.task, args.factors, args.seeds, args.per_class)
    elif args.part == "side-by-side":
        budget = args.budget or cu.load_config(args.task, "cpu")["train"]["time_limit_s"]
        recipes = preset_recipes(args.task, args.recipes, args.candidate)
        result = side_by_side(args.task, recipes, budget, args.seeds, args.per_class, also_scales=args.also_scales,
                              also_intervals=parse_intervals(args.also_intervals))
    elif args.part == "scales":
        result = guidance_scales(Path(args.checkpoint), "twemoji32", args.scales, args.sampler, args.steps,
                                 args.per_class, args.interval, args.evaluations)
    else:
        result = guidance(args.task, args.preset)
    report("lesson4", f"{args.part}-{args.task}-{args.preset}", result)


if __name__ == "__main__":
    main()

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
  python bench/bench_lesson4.py category --seeds 0   # the cpu config on five categories and on Food & Drink alone,
                                                     # interleaved: does food blur for want of training on it?
                                                     # (--repeats 4 --skip-alone: food repeated 4x instead;
                                                     # --skip-config --alone-budgets 135 270 540: food alone at
                                                     # three budgets: how many views make food recognisable?)

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

from common import (add_guidance_arguments, announce, budgets, guidance_scales, judged_figures, parse_intervals,
                    preset_recipes, report, side_by_side, speedups)

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


def one_category(category: str, seeds: list[int], per_class: int, budget: float | None = None,
                 repeats: list[int] | None = None, alone_too: bool = True, config_too: bool = True,
                 alone_budgets: list[float] | None = None) -> dict:
    """The cpu config trained for its time limit on all five categories and on ``category`` alone (so the model sees
    each of its images about five to seven times as often), interleaved, the same seeds: is the category's blur a
    matter of how often the model sees it? Each model draws ``per_class`` images of the category with the config's
    sampler and guidance (the five-category model also the others, for its usual figures). Measured: the judge's
    accuracy on them, and how far each lies from its nearest training image of the category (root mean square over
    pixels in [0, 1]), against the same distance for the category's held-out real emoji (a new emoji of the kind)
    and for each training emoji to its nearest other one. A sample at about 0 copies a training emoji. The grid
    shows each model's first samples above their nearest training emoji. ``budget``: seconds of training per run
    (the config's time limit unless given). ``repeats``: also the five categories with the category's images
    repeated that many times in the training set (the others once), so the model sees them more often at the
    others' expense; the five-category models are judged on every category too (``per_class`` of each).
    ``alone_too=False`` leaves out the model of the category alone, ``config_too=False`` the config's own;
    ``alone_budgets``: models of the category alone trained for each of these numbers of seconds instead of one for
    ``budget``, so that one run shows how many views of each image its samples need to become recognisable.
    Every model's figures give ``views_per_image``: steps times batch size over its training images."""
    import statistics

    from course_utils.configs import merge
    from course_utils.evaluation import judge_predict, load_or_train_judge, to_unit_range
    from course_utils.jobs import guidance_of
    from course_utils.models import null_condition_for
    from course_utils.plots import save_grid
    from course_utils.sampling import sample_images
    from course_utils.training import train_interleaved, training_run

    from common import slug

    cfg = cu.load_config("emoji32", "cpu")
    data, test = build_dataset(cfg, "train", verbose=False), build_dataset(cfg, "test", verbose=False)
    if category not in data.classes:
        raise SystemExit(f"--category must be one of: {', '.join(data.classes)}")
    c = data.classes.index(category)
    own = (data.class_indices == c).nonzero().flatten()
    alone = data.select(own)
    flat = lambda images: images.flatten(1).float() / (255.0 if images.dtype == torch.uint8 else 1.0)  # noqa: E731
    train_c = flat(data.images[own])
    dim = train_c.shape[1]

    def nearest(images01: torch.Tensor, exclude_self: bool = False):
        d = torch.cdist(flat(images01), train_c) / dim ** 0.5
        if exclude_self:
            d.fill_diagonal_(float("inf"))
        return d.min(1)

    held_out = flat(test.images[test.class_indices == c])
    out = {"category": category, "training_images": {"five categories": len(data), category: len(alone)},
           "median_distance_held_out_real_to_nearest_training": round(statistics.median(
               nearest(held_out).values.tolist()), 4),
           "median_distance_training_to_nearest_other_training": round(statistics.median(
               nearest(train_c, exclude_self=True).values.tolist()), 4)}
    print(out, flush=True)
    budget = budget or cfg["train"]["time_limit_s"]
    recipes = {"the config (five categories)": (data, budget)} if config_too else {}
    for k in repeats or []:
        everything_and_more = torch.cat([torch.arange(len(data))] + [own] * (k - 1))
        recipes[f"five categories, {category} x{k}"] = (data.select(everything_and_more), budget)
    if alone_too and alone_budgets:
        recipes.update({f"{category} alone, {b:g} s": (alone, b) for b in alone_budgets})
    elif alone_too:
        recipes[f"{category} alone"] = (alone, budget)
    if not recipes:
        raise SystemExit("category: nothing to train; keep the config, the category alone or --repeats")
    runs, setups = {}, {}
    for label, (d, seconds) in recipes.items():
        for seed in seeds:
            run_cfg = merge(cfg, {"train": {"max_steps": 10**6, "checkpoint_every": 0, "seed": seed,
                                            "time_limit_s": seconds}})
            config = cu.TrainConfig.from_config(run_cfg, len(d))
            torch.manual_seed(seed)
            model = build_model(run_cfg, d)
            sched = cu.build_noise_scheduler(run_cfg)
            runs[(label, seed)] = training_run(model, sched, d, config, null_condition=null_condition_for(model),
                                               progress=False)
            setups[(label, seed)] = (sched, run_cfg, len(d))
    judge, _ = load_or_train_judge("twemoji32", verbose=False)
    rows, row_labels = [], []
    for (label, seed), res in train_interleaved(runs).items():
        sched, run_cfg, num_images = setups[(label, seed)]
        s = run_cfg["sample"]
        fig = {"steps": res.step, "train_seconds": round(res.train_seconds, 1),
               "views_per_image": round(res.step * run_cfg["train"]["batch_size"] / num_images)}
        if not label.startswith(f"{category} alone"):  # judged on every category, as side-by-side does
            ev = cu.evaluate_model(res.model, sched, "twemoji32", s["sampler"], s["steps"], per_class, seed=seed,
                                   **guidance_of(run_cfg, res.model))
            fig.update(judged_figures(ev))
            images = ev.images[ev.labels == c]
        else:
            conditions = torch.nn.functional.one_hot(torch.full((per_class,), c), len(data.classes)).float()
            images = to_unit_range(sample_images(res.model, sched, conditions, s["steps"], s["sampler"], seed=seed,
                                                 **guidance_of(run_cfg, res.model)))
        logits, _ = judge_predict(judge, images)
        dist = nearest(images)
        within = (dist.values < out["median_distance_held_out_real_to_nearest_training"]).float().mean().item()
        fig.update(judged_as_category=round((logits.argmax(1) == c).float().mean().item(), 4),
                   median_distance_to_nearest_training=round(statistics.median(dist.values.tolist()), 4),
                   share_within_held_out_median=round(within, 4))
        out[f"{label}, seed {seed}"] = fig
        print(label, seed, fig, flush=True)
        rows += [images[:8], data.images[own][dist.indices[:8]].float() / 255]
        row_labels += [f"{label}, seed {seed}", "nearest training emoji"]
    name = (f"one-category-{slug(category)}{''.join(f'-x{k}' for k in repeats or [])}{'-alone' * alone_too}"
            f"{''.join(f'-{b:g}s' for b in alone_budgets or [])}{'-no-config' * (not config_too)}.png")
    path = save_grid(torch.cat(rows), Path("runs/bench-grids-emoji32") / name, nrow=8,
                     row_labels=row_labels, title=f"{category}: samples, each above its nearest training emoji",
                     scale=1.0)
    out["grid"] = str(path)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["throughput", "speedups", "recipe", "guidance", "scales", "side-by-side",
                                    "budgets", "category"])
    p.add_argument("--task", default="emoji32", choices=["emoji32", "cifar10", "celeba"])
    p.add_argument("--preset", default="cpu")
    p.add_argument("--config", help="a YAML config (default: the shipped one for --task)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--config-only", action="store_true", help="throughput: only the config's own model")
    p.add_argument("--fp32-only", action="store_true", help="throughput: skip the (slow on CPU) autocast variants")
    p.add_argument("--out", default=None, help="recipe: output folder (default runs/bench-TASK-PRESET)")
    p.add_argument("--checkpoint", default="data/pretrained/emoji32-cpu", help="scales: the pipeline to judge")
    p.add_argument("--per-class", type=int, default=100,
                   help="scales, side-by-side: samples judged per class; category: samples drawn of it")
    p.add_argument("--category", default="Food & Drink", help="category: the category trained alone")
    p.add_argument("--repeats", type=int, nargs="+", default=None,
                   help="category: also the five categories with the category's images repeated K times")
    p.add_argument("--skip-alone", action="store_true", help="category: leave out the model of the category alone")
    p.add_argument("--skip-config", action="store_true", help="category: leave out the config's own model")
    p.add_argument("--alone-budgets", type=float, nargs="+", default=None,
                   help="category: models of the category alone trained for each of these seconds")
    p.add_argument("--budget", type=float, default=None, help="side-by-side, category: training seconds per run "
                                                              "(default: the cpu config's limit)")
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
    elif args.part == "category":
        result = one_category(args.category, args.seeds, args.per_class, args.budget, args.repeats,
                              alone_too=not args.skip_alone, config_too=not args.skip_config,
                              alone_budgets=args.alone_budgets)
    elif args.part == "scales":
        result = guidance_scales(Path(args.checkpoint), "twemoji32", args.scales, args.sampler, args.steps,
                                 args.per_class, args.interval, args.evaluations)
    else:
        result = guidance(args.task, args.preset)
    report("lesson4", f"{args.part}-{args.task}-{args.preset}", result)


if __name__ == "__main__":
    main()

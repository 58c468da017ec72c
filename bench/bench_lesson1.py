"""Lesson 1 benchmarks. Prints measured figures (and writes them as JSON next to the run).

  python bench/bench_lesson1.py throughput   # seed recipe vs cpu preset, fp32 vs bf16 autocast: ms per step
  python bench/bench_lesson1.py recipe       # train mnist on the cpu preset and judge it (about 10 minutes)
  python bench/bench_lesson1.py samplers     # DDPM 1000 / DDIM 50 / DPM-Solver++ 20 on one trained model
  python bench/bench_lesson1.py ablation     # what each change of the cpu recipe buys, same time budget each

Timings on a shared machine drift: variants are interleaved in one process and medians and ratios quoted.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import course_utils as cu
from course_utils.models import ClassConditionedUnet, count_parameters

from common import announce, report


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


def throughput(rounds: int) -> dict:
    seed = cu.load_config("mnist", "gpu")["model"]
    cpu = cu.load_config("mnist", "cpu")
    variants = {
        "seed recipe model, batch 128, fp32": (ClassConditionedUnet(**seed), None),
        "cpu preset model, fp32": (ClassConditionedUnet(**cpu["model"]), None),
        "cpu preset model, bf16 autocast": (ClassConditionedUnet(**cpu["model"]), torch.bfloat16),
    }
    med = time_steps(variants, 128, rounds)
    out = {}
    for k, s in med.items():
        out[k] = {"ms_per_step_batch128": round(s * 1000), "images_per_s": round(128 / s),
                  "parameters": count_parameters(variants[k][0])}
    base = med["cpu preset model, fp32"]
    out["ratio seed/cpu-preset (per image)"] = round(med["seed recipe model, batch 128, fp32"] / base, 2)
    out["ratio bf16/fp32 (cpu preset)"] = round(med["cpu preset model, bf16 autocast"] / base, 2)
    return out


def recipe(out_dir: Path) -> dict:
    start = time.perf_counter()
    metrics = cu.train("mnist", "cpu", out_dir, resume=False, progress=False)
    metrics["wall_seconds_total"] = round(time.perf_counter() - start, 1)
    return metrics


def samplers(checkpoint: Path, per_class: int) -> dict:
    pipe = cu.load_pipeline(checkpoint)
    out = {}
    for name, steps in cu.load_config("mnist", "cpu")["compare_samplers"]:
        ev = cu.evaluate_model(pipe.unet, pipe.scheduler, "mnist", name, steps, per_class)
        out[f"{name} {steps} steps"] = {"class_accuracy": round(ev.report.class_accuracy, 4),
                                        "fid": round(ev.report.fid, 2),
                                        "fid_real_vs_real": round(ev.report.fid_real_vs_real, 2),
                                        "model_evals_per_sample": steps,
                                        "ms_per_sample": round(ev.seconds_per_sample * 1000, 1)}
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
        preset = cu.load_config("mnist", "cpu")
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
    p.add_argument("part", choices=["throughput", "recipe", "samplers", "ablation"])
    p.add_argument("--budget", type=float, default=240, help="ablation: training seconds per variant")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default="runs/bench-mnist-cpu")
    p.add_argument("--checkpoint", default="data/pretrained/mnist-cpu")
    p.add_argument("--per-class", type=int, default=20)
    args = p.parse_args()
    announce("bench_lesson1.py")
    if args.part == "throughput":
        result = throughput(args.rounds)
    elif args.part == "recipe":
        result = recipe(Path(args.out))
    elif args.part == "ablation":
        result = ablation(args.budget, args.per_class)
    else:
        result = samplers(Path(args.checkpoint), args.per_class)
    report("lesson1", args.part, result)


if __name__ == "__main__":
    main()

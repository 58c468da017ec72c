"""Every lesson's preset, one training step at a time: how long the preset's training takes on this machine, and
an estimate for a GPU that is not here (Colab's free T4). Prints measured figures (and writes them as JSON under
runs/).

  python bench/bench_presets.py steps --preset gpu   # on a GPU: ms per step (wall and GPU kernels), full time
  python bench/bench_presets.py steps --preset smoke --tasks mnist --warmup 2 --timed 3   # a quick check
  python bench/bench_presets.py fused --preset cpu   # AdamW's fused kernel + foreach EMA against per-parameter loops

Each task's model, data, noise schedule, precision and optimizer are the preset's (the same code as
`python -m course_utils train TASK --preset P`, EMA included). After ``--warmup`` steps, ``--timed`` steps are
timed on the wall clock; on a GPU, ``--profiled`` more steps run under torch's profiler, which sums the time the
GPU spent in kernels. The preset's training time is its number of steps times the wall time per step.

The T4 estimate (no T4 is lent here) rests on two measured figures and two published ratios: a step cannot take
less than its wall time here, where the host launches the kernels (Colab's host is assumed as fast), nor less than
the GPU kernel time here scaled by the H200's advantage over the T4 in memory bandwidth (4.8 against 0.32 TB/s)
and in fp16 tensor-core throughput (about 990 against 65 TFLOP/s), both about 15x; small diffusion UNets are
bound by one or the other. So: steps x max(wall, 15 x kernels).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import time

from common import announce, report  # first: it puts the repository on the path

import torch  # noqa: E402

import course_utils as cu  # noqa: E402
from course_utils.devices import resolve_mixed_precision  # noqa: E402
from course_utils.jobs import null_condition_of, training_data  # noqa: E402
from course_utils.models import count_parameters  # noqa: E402
from course_utils.training import training_run  # noqa: E402

TASKS = ["mnist", "sprites", "captions", "emoji32"]
T4_OVER_H200 = 15.0  # memory bandwidth 4.8 / 0.32 TB/s; fp16 tensor-core peak about 990 / 65 TFLOP/s


def kernel_seconds(prof) -> float:
    """The GPU time of everything a profiler saw run on the device (kernels and copies), in seconds."""
    total_us = 0.0
    for event in prof.key_averages():
        total_us += getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0.0)
    return total_us / 1e6


def preset_run(cfg: dict, data, encoder, full, steps: int, **changes):
    """The preset's model (seeded) and its training run as ``train`` would start it, long enough for a measurement
    (``steps``) and without checkpoints or a time limit; ``changes`` set other TrainConfig fields."""
    run_cfg = dataclasses.replace(full, max_steps=steps, time_limit_s=None, checkpoint_every=0, **changes)
    torch.manual_seed(0)
    model = cu.build_model(cfg, data, encoder)
    null = null_condition_of(model, data) if run_cfg.cond_drop_prob > 0 else None
    return model, training_run(model, cu.build_noise_scheduler(cfg), data, run_cfg, null_condition=null,
                               progress=False)


def preset_steps(task: str, preset: str, warmup: int, timed: int, profiled: int) -> dict:
    """One task's preset: parameters, batch, the preset's steps, ms per step (wall; GPU kernels), the full time."""
    cfg = cu.load_config(task, preset)
    data, encoder = training_data(cfg, verbose=False)
    full = cu.TrainConfig.from_config(cfg, len(data))
    model, run = preset_run(cfg, data, encoder, full, warmup + timed + profiled + 1)
    cuda = torch.cuda.is_available()

    def advance(n):
        for _ in range(n):
            next(run)
        if cuda:
            torch.cuda.synchronize()

    advance(warmup)
    start = time.perf_counter()
    advance(timed)
    wall = (time.perf_counter() - start) / timed
    kernels = None
    if cuda and profiled:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            advance(profiled)
        kernels = kernel_seconds(prof) / profiled
    out = {"parameters": count_parameters(model), "batch_size": full.batch_size, "preset_steps": full.max_steps,
           "precision": resolve_mixed_precision(full.mixed_precision, torch.device("cuda" if cuda else "cpu")),
           "ms_per_step_wall": round(1000 * wall, 2),
           "training_minutes": round(full.max_steps * wall / 60, 1)}
    if kernels is not None:
        out.update(ms_per_step_gpu_kernels=round(1000 * kernels, 2), gpu_busy_share=round(kernels / wall, 2))
        if "H200" in torch.cuda.get_device_name(0):  # the ratio below is the H200's over the T4
            t4 = max(wall, T4_OVER_H200 * kernels)
            out.update(t4_estimate_ms_per_step=round(1000 * t4, 1),
                       t4_estimate_training_minutes=round(full.max_steps * t4 / 60, 1))
    if encoder is not None:
        out["text_encoder"] = encoder.backend
    return out


def fused_comparison(task: str, preset: str, warmup: int, timed: int) -> dict:
    """One task's preset trained twice from the same weights, with ``fused_optimizer`` on (AdamW's fused kernel, the
    EMA's foreach update) and off (per-parameter loops), one step of each in turn: ms per whole training step (data,
    forward, backward, clipping, optimizer, EMA), medians, their ratio, and the steps each fits in the preset's time
    limit."""
    cfg = cu.load_config(task, preset)
    data, encoder = training_data(cfg, verbose=False)
    full = cu.TrainConfig.from_config(cfg, len(data))
    runs = {name: preset_run(cfg, data, encoder, full, warmup + timed + 1, fused_optimizer=fused)[1]
            for name, fused in (("fused", True), ("per-parameter loops", False))}
    times = {name: [] for name in runs}
    cuda = torch.cuda.is_available()
    for i in range(warmup + timed):
        for name, run in runs.items():
            start = time.perf_counter()
            next(run)
            if cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(v) for name, v in times.items()}
    out = {"batch_size": full.batch_size, "timed_steps": timed}
    for name, sec in med.items():
        out[name] = {"ms_per_step": round(1000 * sec, 1)}
        if full.time_limit_s:
            out[name]["steps_in_time_limit"] = int(full.time_limit_s / sec)
    out["ratio loops/fused"] = round(med["per-parameter loops"] / med["fused"], 3)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["steps", "fused"])
    p.add_argument("--preset", default="gpu")
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=TASKS)
    p.add_argument("--warmup", type=int, default=30, help="steps run before timing (set-up, first kernels)")
    p.add_argument("--timed", type=int, default=100, help="steps timed on the wall clock")
    p.add_argument("--profiled", type=int, default=20, help="steps run under the profiler (GPU only)")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child process: one task, JSON out
    args = p.parse_args()
    if args.one:
        task = args.tasks[0]
        result = (fused_comparison(task, args.preset, args.warmup, args.timed) if args.part == "fused" else
                  preset_steps(task, args.preset, args.warmup, args.timed, args.profiled))
        print("RESULT " + json.dumps(result))
        return
    announce("bench_presets.py")
    out = {}
    for task in args.tasks:
        # each task in a process of its own, as a learner runs it: Accelerate keeps one precision per process
        child = subprocess.run([sys.executable, __file__, args.part, "--one", "--preset", args.preset, "--tasks", task,
                                "--warmup", str(args.warmup), "--timed", str(args.timed),
                                "--profiled", str(args.profiled)], capture_output=True, text=True)
        lines = [line for line in child.stdout.splitlines() if line.startswith("RESULT ")]
        out[task] = json.loads(lines[-1][7:]) if lines else {"failed": child.stderr.strip().splitlines()[-1:]}
        print(task, out[task], flush=True)
    report("presets", f"{args.part}-{args.preset}", out)


if __name__ == "__main__":
    main()

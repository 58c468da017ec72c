"""``python -m course_utils``: train, sample and evaluate from the shell, with the functions the notebooks call.

Bad input (a missing data set, a corrupted checkpoint, a malformed config, a label out of range) prints one line
that says what to do, and the command exits with code 2. Introduced in lesson 1.
"""
from __future__ import annotations

import argparse
import json
import sys

from .configs import PRESET_NAMES, SAMPLERS, TASKS, config_text
from .errors import CourseError

JUDGED = ("mnist", "fashion_mnist", "twemoji16", "sprites", "twemoji32", "cifar10")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course_utils",
                                description="Conditional diffusion course: train, sample and evaluate.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a lesson's model on a preset and write samples and metrics",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="tasks:\n" + "\n".join(f"  {k:14s} {v}" for k, v in TASKS.items()))
    t.add_argument("task", choices=list(TASKS), metavar="TASK", help="what to train (listed below)")
    t.add_argument("--preset", choices=PRESET_NAMES, default=None,
                   help="smoke | cpu | gpu (default: $COURSE_PRESET, else gpu with CUDA, else cpu)")
    t.add_argument("--config", metavar="FILE",
                   help="your copy of the task's YAML config (print the default with `config TASK`)")
    t.add_argument("--out", required=True, help="output folder (checkpoints, pipeline/, samples.png, metrics.json)")
    t.add_argument("--source", choices=["auto", "torchvision", "files", "offline"], default="auto",
                   help="where the data comes from (auto: the real data if possible, else the packaged copy)")
    t.add_argument("--data", metavar="DIR",
                   help="the real data's folder: sprites (sprites_1788_16x16.npy + sprite_labels_nc_1788_16x16.npy), "
                        "cifar10 (cifar-10-batches-py/), celeba (img_align_celeba/ + list_attr_celeba.txt), "
                        "captions (COCO 2017: annotations/captions_train2017.json + train2017/)")
    t.add_argument("--coco", metavar="ROOT", help="captions: the COCO 2017 root (the same as --data)")
    t.add_argument("--text-encoder", choices=["auto", "clip", "minilm"], help="captions: text encoder back-end")
    t.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    t.add_argument("--no-resume", action="store_true", help="start afresh even if OUT has checkpoints")
    t.add_argument("--max-steps", type=int, help="override the config's number of optimizer steps")
    t.add_argument("--time-limit", type=float, help="stop training after this many seconds (checkpointed)")
    t.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default: the config's)")

    c = sub.add_parser("config", help="print a task's YAML config (to copy and edit, then train --config FILE)")
    c.add_argument("task", choices=list(TASKS), metavar="TASK", help=", ".join(TASKS))
    c.add_argument("--preset", choices=PRESET_NAMES, help="print what this preset resolves to, defaults included")

    s = sub.add_parser("sample", help="sample from a saved pipeline into an .npz (images in [0, 1], labels)")
    s.add_argument("checkpoint", help="a pipeline folder, or a training run's folder")
    s.add_argument("--per-class", type=int, default=10, help="images per class, or per prompt (default: 10)")
    s.add_argument("--prompt", action="append", dest="prompts", metavar="TEXT",
                   help='text-to-image pipelines (lesson 3): a prompt to draw; repeat it for several, e.g. '
                        '--prompt "red apple" --prompt "dog face"')
    s.add_argument("--guidance-scale", type=float, default=None,
                   help="classifier-free guidance scale for a model trained with label dropout (0: unconditional, "
                        "1: conditional; text-to-image default: 3)")
    s.add_argument("--guidance-interval", type=float, nargs=2, metavar=("LO", "HI"),
                   help="guide only the steps whose timestep lies in [LO, HI], e.g. 350 1000 (default: every step)")
    s.add_argument("--steps", type=int, default=20, help="sampling steps (= model evaluations per sample)")
    s.add_argument("--sampler", choices=SAMPLERS, default="dpm")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="FILE.npz")
    s.add_argument("--dataset", help="data set the model imitates (default: read from the run's metrics.json)")

    e = sub.add_parser("evaluate", help="class accuracy and classifier FID of a samples file; for a file drawn "
                                        "for prompts, category accuracy and prompt fidelity")
    e.add_argument("file", help="FILE.npz written by `sample`")
    e.add_argument("--dataset", choices=JUDGED, help="the data set the samples imitate (default: read from the file)")
    e.add_argument("--source", choices=["auto", "torchvision", "files", "offline"], default="auto")
    e.add_argument("--data", metavar="DIR", help="the real data's folder (sprites, cifar10)")

    j = sub.add_parser("judge", help="train (or load) and report the judge classifier of a data set")
    j.add_argument("dataset", choices=JUDGED)
    j.add_argument("--data", metavar="DIR", help="the real data's folder (sprites, cifar10)")
    j.add_argument("--epochs", type=int, default=3)
    return p


def run(args: argparse.Namespace) -> None:
    """Carry out one parsed command. The jobs are imported here, not at the top of the module, so that
    ``--help`` and ``config`` answer without loading torch and diffusers."""
    if args.command == "config":
        print(config_text(args.task, args.preset), end="")
    elif args.command == "train":
        from .jobs import train
        if args.coco and args.data and args.coco != args.data:
            raise ValueError("give the COCO root once, as --coco or --data")
        overrides = {k: v for k, v in (("max_steps", args.max_steps), ("time_limit_s", args.time_limit),
                                       ("checkpoint_every", args.checkpoint_every)) if v is not None}
        metrics = train(args.task, args.preset, args.out, config=args.config, source=args.source,
                        data_path=args.data or args.coco, text_encoder=args.text_encoder, resume=not args.no_resume,
                        overrides=overrides, evaluate=not args.no_eval)
        print(json.dumps(metrics, indent=2))
    elif args.command == "sample":
        from .jobs import sample_to_file
        path = sample_to_file(args.checkpoint, args.out, per_class=args.per_class, steps=args.steps,
                              sampler=args.sampler, seed=args.seed, dataset=args.dataset, prompts=args.prompts,
                              guidance_scale=args.guidance_scale, guidance_interval=args.guidance_interval)
        print(f"wrote {path}")
    elif args.command == "evaluate":
        from .jobs import evaluate_file
        report = evaluate_file(args.file, dataset=args.dataset, source=args.source, data_path=args.data)
        print(json.dumps(report, indent=2))
        if report.get("note"):
            print(f"note: {report['note']}", file=sys.stderr)
    elif args.command == "judge":
        from .evaluation import load_or_train_judge
        _, info = load_or_train_judge(args.dataset, epochs=args.epochs, path=args.data)
        print(json.dumps(info, indent=2))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (CourseError, ValueError, TypeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: checkpoints written so far are kept; run the same command again to resume",
              file=sys.stderr)
        return 130
    return 0

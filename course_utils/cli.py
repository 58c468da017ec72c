"""``python -m course_utils``: train, sample and evaluate from the shell, with the functions the notebooks call.

Introduced in lesson 1.
"""
from __future__ import annotations

import argparse
import json
import sys

from .presets import PRESET_NAMES
from .schedulers import SAMPLERS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m course_utils",
                                description="Conditional diffusion course: train, sample and evaluate.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a lesson's model on a preset and write samples and metrics")
    t.add_argument("task", choices=["mnist", "fashion_mnist", "sprites", "captions", "emoji32", "cifar10", "celeba"],
                   help="what to train (lesson 1: mnist, fashion_mnist; lesson 2: sprites; lesson 3: captions; "
                        "lesson 4, the UNet from scratch: emoji32, cifar10, celeba)")
    t.add_argument("--preset", choices=PRESET_NAMES, default=None,
                   help="smoke | cpu | gpu (default: $COURSE_PRESET, else gpu with CUDA, else cpu)")
    t.add_argument("--out", required=True, help="output folder (checkpoints, pipeline/, samples.png, metrics.json)")
    t.add_argument("--source", choices=["auto", "torchvision", "files", "offline"], default="auto",
                   help="where the data comes from (auto: the real data if possible, else the packaged copy)")
    t.add_argument("--data", help="sprites: folder holding sprites_1788_16x16.npy and sprite_labels_nc_1788_16x16.npy "
                                  "(default: $COURSE_SPRITES_DIR or data/sprites, else Twemoji offline); "
                                  "celeba: folder with img_align_celeba/ and list_attr_celeba.txt; "
                                  "cifar10: folder holding cifar-10-batches-py/")
    t.add_argument("--config", help="lesson 4: a YAML config (default: course_utils/configs/TASK.yaml; copy it to edit)")
    t.add_argument("--coco", help="captions: COCO 2017 root (annotations/captions_train2017.json, train2017/)")
    t.add_argument("--text-encoder", choices=["auto", "clip", "minilm"], help="captions: text encoder back-end")
    t.add_argument("--no-eval", action="store_true", help="skip the evaluation after training")
    t.add_argument("--no-resume", action="store_true", help="start afresh even if OUT has checkpoints")
    t.add_argument("--max-steps", type=int, help="override the preset's number of optimizer steps")
    t.add_argument("--time-limit", type=float, help="stop training after this many seconds (checkpointed)")
    t.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default: preset's)")

    s = sub.add_parser("sample", help="sample from a saved pipeline into an .npz (images in [0, 1], labels)")
    s.add_argument("checkpoint", help="a pipeline folder, or a training run's folder")
    s.add_argument("--per-class", type=int, default=10, help="images per class, or per prompt (default: 10)")
    s.add_argument("--prompt", action="append", dest="prompts", metavar="TEXT",
                   help='text-to-image pipelines (lesson 3): a prompt to draw; repeat it for several, e.g. '
                        '--prompt "red apple" --prompt "dog face"')
    s.add_argument("--guidance-scale", type=float, default=None,
                   help="with --prompt: classifier-free guidance scale (default: 3.0; 0: unconditional, "
                        "1: conditional)")
    s.add_argument("--steps", type=int, default=20, help="sampling steps (= model evaluations per sample)")
    s.add_argument("--sampler", choices=SAMPLERS, default="dpm")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="FILE.npz")
    s.add_argument("--dataset", help="data set the model imitates (default: read from the run's metrics.json)")

    e = sub.add_parser("evaluate", help="class accuracy and classifier FID of a samples file; for a file drawn "
                                        "for prompts, category accuracy and prompt fidelity")
    e.add_argument("file", help="FILE.npz written by `sample`")
    e.add_argument("--dataset", help="mnist, fashion_mnist, twemoji16, sprites, twemoji32 or cifar10 (default: read from the file)")
    e.add_argument("--source", choices=["auto", "torchvision", "files", "offline"], default="auto")
    e.add_argument("--data", help="sprites: folder of the real sprite files")

    j = sub.add_parser("judge", help="train (or load) and report the judge classifier of a data set")
    j.add_argument("dataset", choices=["mnist", "fashion_mnist", "twemoji16", "sprites", "twemoji32", "cifar10"])
    j.add_argument("--data", help="sprites: folder of the real sprite files")
    j.add_argument("--epochs", type=int, default=3)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            from .tasks import train_class_conditioned
            overrides = {k: v for k, v in (("max_steps", args.max_steps), ("time_limit_s", args.time_limit),
                                           ("checkpoint_every", args.checkpoint_every)) if v is not None}
            if args.task in ("emoji32", "cifar10", "celeba"):
                from .scratch_tasks import train_scratch
                metrics = train_scratch(args.task, args.preset, args.out, config=args.config, source=args.source,
                                        data_path=args.data, resume=not args.no_resume, overrides=overrides,
                                        evaluate=not args.no_eval)
            elif args.config:
                raise ValueError("--config is for lesson 4's tasks (emoji32, cifar10, celeba); lessons 1-3 use presets")
            elif args.task == "captions":
                from .tasks import train_captions
                metrics = train_captions(args.preset, args.out, coco=args.coco, backend=args.text_encoder,
                                         resume=not args.no_resume, overrides=overrides, evaluate=not args.no_eval)
            else:
                metrics = train_class_conditioned(args.task, args.preset, args.out, source=args.source,
                                                  resume=not args.no_resume, overrides=overrides,
                                                  data_path=args.data, evaluate=not args.no_eval)
            print(json.dumps(metrics, indent=2))
        elif args.command == "sample":
            from .tasks import sample_to_file
            path = sample_to_file(args.checkpoint, args.out, per_class=args.per_class, steps=args.steps,
                                  sampler=args.sampler, seed=args.seed, dataset=args.dataset,
                                  prompts=args.prompts, guidance_scale=args.guidance_scale)
            print(f"wrote {path}")
        elif args.command == "evaluate":
            from .tasks import evaluate_file
            report = evaluate_file(args.file, dataset=args.dataset, source=args.source, data_path=args.data)
            print(json.dumps(report, indent=2))
            if report.get("note"):
                print(f"note: {report['note']}", file=sys.stderr)
        elif args.command == "judge":
            from .metrics import load_or_train_judge
            _, info = load_or_train_judge(args.dataset, epochs=args.epochs, path=args.data)
            print(json.dumps(info, indent=2))
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0

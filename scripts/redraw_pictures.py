#!/usr/bin/env python3
"""Redraw a saved checkpoint's samples.png (a labelled row per class) and denoising.gif with the current drawing code,
without training again: what `train` writes beside its metrics, for a pipeline trained before the code changed.

    python scripts/redraw_pictures.py TASK PRESET PIPELINE_DIR OUT_DIR
    python scripts/redraw_pictures.py sprites cpu data/pretrained/sprites-cpu data/pretrained/sprites-cpu
"""
import sys
from pathlib import Path

import course_utils as cu
from course_utils.jobs import build_dataset, draw_pictures


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__.strip())
        return 2
    task, preset, pipeline_dir, out_dir = sys.argv[1:]
    cfg = cu.load_config(task, preset)
    pipe = cu.load_pipeline(pipeline_dir)
    model = getattr(pipe, "denoiser", None) or pipe.unet
    draw_pictures(cfg, model, pipe.scheduler, build_dataset(cfg, "train", verbose=False), Path(out_dir))
    print(f"wrote {Path(out_dir) / 'samples.png'} and denoising.gif")
    return 0


if __name__ == "__main__":
    sys.exit(main())

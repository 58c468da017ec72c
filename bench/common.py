"""What every bench shares: the machine and the command printed before any figure, and the report written as
JSON under runs/ (a bench's figures, with where they came from)."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu_name() -> str:
    """The CPU model as lscpu gives it (``platform.processor()`` is empty on many Linux machines)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{cpu_name()}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


def announce(script: str) -> None:
    """Print the machine and the command, so every figure printed after them says where it came from."""
    print(f"machine: {machine()}")
    print(f"command: python bench/{script} {' '.join(sys.argv[1:])}", flush=True)


def report(lesson: str, part: str, result: dict) -> None:
    """Print a bench's figures as JSON and keep them in runs/bench-LESSON-PART.json."""
    result = {"machine": machine(), "command": " ".join(sys.argv), "part": part, "result": result}
    print(json.dumps(result, indent=2))
    Path("runs").mkdir(exist_ok=True)
    Path(f"runs/bench-{lesson}-{part}.json").write_text(json.dumps(result, indent=2))

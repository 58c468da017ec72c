"""What every bench shares: the machine and the command printed before any figure, and the report written as
JSON under runs/ (a bench's figures, with where they came from)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from course_utils.devices import machine_description  # noqa: E402


machine = machine_description


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

#!/usr/bin/env python3
"""Execute the lessons and store their outputs in the .ipynb (`make outputs`), so that the repository, GitHub and
the website show every figure, table and printed metric before anyone runs anything.

    python scripts/execute_notebooks.py [NOTEBOOK ...] [--preset cpu] [--stale-only]

With no NOTEBOOK, all eight (notebooks/en/*.ipynb and notebooks/zh/*.ipynb) are executed one after another, each in a
fresh kernel started in the notebook's folder, at COURSE_PRESET=--preset, with a fresh COURSE_RUNS_DIR (so no run
resumes from an earlier checkpoint). One notebook at a time: the lessons' training stops at a time limit, so a
second job on the same machine would change what they reach. --stale-only skips notebooks whose stored outputs are
still current (tests/test_stored_outputs.py's check).

Each executed notebook records in its metadata, under "course_outputs", what produced the outputs:

    code_sha256  a hash of its code cells (course_utils.stored_outputs.code_hash); the test fails when it changes
    preset       the preset it ran at
    machine      CPU model and cores (lscpu), the GPU if one was used, the torch version
    seconds      wall time from the first cell to the last (the README's lesson table quotes it)
    executed     the date

The notebook is written only when every cell succeeded, and atomically: a failed run leaves the stored one as it was.
"""

from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from course_utils.devices import machine_description  # noqa: E402

META = "course_outputs"


def code_hash(nb) -> str:
    """sha256 of the notebook's code cells, in order, each stripped: what its outputs were computed from. English and
    Chinese twins have identical code, so they share it; prose edits do not change it."""
    code = "\n# ---- cell ----\n".join(c.source.strip() for c in nb.cells if c.cell_type == "code")
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def is_current(nb) -> bool:
    """True when the notebook has stored outputs and its code has not changed since they were computed."""
    return nb.metadata.get(META, {}).get("code_sha256") == code_hash(nb)


def _calls_show(node) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "show" and isinstance(n.value, ast.Name)
               and n.value.id == "plt" for n in ast.walk(node))


def drawing_cells(nb) -> list[int]:
    """Indices of the code cells that draw when run: a `plt.show()` outside any function, or a call to a function
    of this notebook whose body calls `plt.show()` (a function only defined in a cell draws nothing there)."""
    drawing_functions, found = set(), []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        lines = [line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        tree = ast.parse("\n".join(lines))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _calls_show(node):
                drawing_functions.add(node.name)
        top = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        calls = {n.func.id for stmt in top for n in ast.walk(stmt)
                 if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        if any(_calls_show(stmt) for stmt in top) or calls & drawing_functions:
            found.append(i)
    return found


def has_picture(cell) -> bool:
    return any("image/png" in o.get("data", {}) or "image/gif" in o.get("data", {}) for o in cell.get("outputs", []))


def lessons() -> list[Path]:
    return sorted((REPO / "notebooks" / "en").glob("[0-9][0-9]_*.ipynb")) + sorted(
        (REPO / "notebooks" / "zh").glob("[0-9][0-9]_*.ipynb"))


def smaller_png(png: bytes) -> bytes:
    """The same picture in fewer bytes when that is lossless: matplotlib's figures are RGBA PNGs, and most of the
    course's (digits, grids, curves) use at most 256 colours, which a palette PNG stores in about half the bytes.
    Anything else (an opaque picture with more colours, transparency) is returned as it was."""
    from PIL import Image, ImageChops
    image = Image.open(io.BytesIO(png))
    if image.mode not in ("RGB", "RGBA") or (image.mode == "RGBA" and image.getchannel("A").getextrema() != (255, 255)):
        return png
    rgb = image.convert("RGB")
    if rgb.getcolors(256) is None:
        return png
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    if ImageChops.difference(palette.convert("RGB"), rgb).getbbox() is not None:
        return png
    out = io.BytesIO()
    palette.save(out, "PNG", optimize=True)
    return out.getvalue() if out.tell() < len(png) else png


def shrink_pictures(nb) -> None:
    """Store every PNG output in its smallest lossless form (smaller_png)."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                data["image/png"] = base64.b64encode(smaller_png(base64.b64decode(data["image/png"]))).decode("ascii")


def execute(path: Path, preset: str) -> float:
    nb = nbformat.read(path, as_version=4)
    runs = tempfile.mkdtemp(prefix=f"outputs-{path.parent.name}-{path.stem[:2]}-")
    os.environ.update(COURSE_PRESET=preset, COURSE_RUNS_DIR=runs, TQDM_MININTERVAL="5")
    client = NotebookClient(nb, timeout=None, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                            store_widget_state=True, record_timing=False)
    start = time.perf_counter()
    client.execute()
    missing = [i for i in drawing_cells(nb) if not has_picture(nb.cells[i])]
    if missing:
        raise CellExecutionError(f"cells {missing} draw but stored no picture", "", "")
    seconds = time.perf_counter() - start
    shrink_pictures(nb)
    nb.metadata[META] = {"code_sha256": code_hash(nb), "preset": preset, "machine": machine_description(),
                         "seconds": round(seconds), "executed": time.strftime("%Y-%m-%d")}
    tmp = path.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, path)
    return seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: every lesson, English then Chinese")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--stale-only", action="store_true", help="skip notebooks whose stored outputs are current")
    ap.add_argument("--shrink-only", action="store_true",
                    help="execute nothing: store the notebooks' pictures in their smallest lossless form")
    args = ap.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or lessons()
    if args.shrink_only:
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            shrink_pictures(nb)
            tmp = path.with_suffix(".ipynb.tmp")
            nbformat.write(nb, tmp)
            os.replace(tmp, path)
        return 0
    failed = []
    for path in paths:
        if not path.exists():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 2
        if args.stale_only and is_current(nbformat.read(path, as_version=4)):
            print(f"{os.path.relpath(path, REPO)}: outputs current, skipped", flush=True)
            continue
        print(f"{os.path.relpath(path, REPO)}: executing at preset {args.preset} ...", flush=True)
        try:
            seconds = execute(path, args.preset)
        except CellExecutionError as e:
            print(f"{os.path.relpath(path, REPO)}: FAILED, stored notebook left unchanged\n{str(e)[-2000:]}",
                  file=sys.stderr)
            failed.append(path)
            continue
        print(f"{os.path.relpath(path, REPO)}: done in {seconds / 60:.1f} min", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

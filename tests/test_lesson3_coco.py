"""Lesson 3 on its real-data path: the whole notebook, smoke preset, with COCO_ROOT pointing at a small fixture in the
COCO 2017 layout (annotations/captions_train2017.json + train2017/*.jpg). COCO has no categories: the guidance sweep
and the exercise measure prompt fidelity instead, and nothing may index a category."""
import json
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def write_coco_fixture(root, n=48, size=24):
    """``n`` random photos with one to three captions each, in the COCO 2017 layout."""
    from PIL import Image
    (root / "annotations").mkdir(parents=True)
    (root / "train2017").mkdir()
    rng = np.random.default_rng(0)
    words = ["a red bus", "two dogs", "a plate of food", "a man on a horse", "a kitchen", "a city street"]
    images, annotations = [], []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)).save(
            root / "train2017" / f"{i:012d}.jpg")
        images.append({"id": i, "file_name": f"{i:012d}.jpg", "width": size + 8, "height": size})
        annotations += [{"id": 10 * i + k, "image_id": i, "caption": f"{words[(i + k) % len(words)]} {i}"}
                        for k in range(1 + i % 3)]
    (root / "annotations" / "captions_train2017.json").write_text(
        json.dumps({"images": images, "annotations": annotations}))
    return root


@pytest.mark.slow
def test_lesson3_runs_on_a_coco_layout_fixture(tmp_path, monkeypatch):
    coco = write_coco_fixture(tmp_path / "coco")
    nb = jupytext.read(ROOT / "notebooks" / "en" / "03_text_guidance.py")
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert "COCO_ROOT = None" in params.source
    params.source = params.source.replace("COCO_ROOT = None", f"COCO_ROOT = {str(coco)!r}")
    nb = nbformat.from_dict(nb)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    monkeypatch.setenv("COURSE_PRESET", "smoke")  # the kernel inherits this process's environment
    monkeypatch.setenv("COURSE_RUNS_DIR", str(tmp_path / "runs"))
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks" / "en")}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "48 images" in printed  # the fixture's photos, not the emoji
    assert "prompt_top5" in printed and "category_accuracy" not in printed  # measured without categories

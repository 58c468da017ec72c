"""The notebooks' stored outputs (`make outputs`, scripts/execute_notebooks.py): current with the code, a picture in
every cell that draws, no stored errors, and the README's lesson times read from them."""
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from execute_notebooks import META, code_hash, drawing_cells, has_picture, is_current, lessons  # noqa: E402

NOTEBOOKS = lessons()


def notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) if not c.startswith("#md ") else nbformat.v4.new_markdown_cell(c[4:])
                for c in cells]
    return nb


def test_the_code_hash_follows_code_and_ignores_prose():
    a = notebook("#md Prose", "x = 1", "print(x)")
    b = notebook("#md 讲解文字", "x = 1", "print(x)")
    c = notebook("#md Prose", "x = 2", "print(x)")
    assert code_hash(a) == code_hash(b) != code_hash(c)
    a.metadata[META] = {"code_sha256": code_hash(a)}
    assert is_current(a)
    a.cells[1].source = "x = 3"
    assert not is_current(a), "a changed code cell makes the stored outputs stale"
    assert not is_current(c), "a notebook without stored outputs is not current"


def test_drawing_cells_are_found_and_a_missing_picture_is_seen():
    nb = notebook("import matplotlib.pyplot as plt", "plt.plot([1]); plt.show()",
                  "def draw(k=1):\n    plt.plot([k])\n    plt.show()", "draw()  # an example",
                  "%matplotlib inline\nif True:\n    draw(2)", "def helper():\n    return 1\n\nhelper()")
    assert drawing_cells(nb) == [1, 3, 4]
    assert not has_picture(nb.cells[1])
    picture = {"image/png": "iVBOR", "text/plain": "<Figure>"}
    nb.cells[1].outputs = [nbformat.v4.new_output("display_data", data=picture)]
    assert has_picture(nb.cells[1])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem[:2]}")
def test_stored_outputs_are_current_and_complete(path):
    nb = nbformat.read(path, as_version=4)
    record = nb.metadata.get(META)
    if record is None:
        pytest.skip(f"{path.parent.name}/{path.name} has no stored outputs yet: run `make outputs`")
    assert is_current(nb), (f"{path.parent.name}/{path.name}: its code changed after its outputs were stored; "
                            f"run `python scripts/execute_notebooks.py {path.relative_to(ROOT)}`")
    assert record["preset"] in ("cpu", "gpu") and record["machine"] and record["seconds"] > 0
    missing = [i for i in drawing_cells(nb) if not has_picture(nb.cells[i])]
    assert not missing, f"cells {missing} draw but have no stored picture"
    errors = [i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert not errors, f"cells {errors} stored an error"
    unexecuted = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()
                  and c.get("execution_count") is None]
    assert not unexecuted, f"cells {unexecuted} were not executed"


SHOW_SOURCE = re.compile(r"^show_source\((cu(?:\.\w+)+)\)$")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem[:2]}")
def test_stored_package_source_is_the_packages_current_source(path):
    # a cell that shows the package's code (show_source(cu.X)) stores it as text: a later change to the package
    # leaves the notebook's code, and so its code hash, unchanged, but the stored text stale
    import inspect

    import course_utils as cu

    nb = nbformat.read(path, as_version=4)
    if nb.metadata.get(META) is None:
        pytest.skip("no stored outputs")
    stale = []
    for i, cell in enumerate(nb.cells):
        found = cell.cell_type == "code" and SHOW_SOURCE.match(cell.source.strip())
        if found:
            shown = "".join(o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", []))
            if shown.strip() != inspect.getsource(eval(found.group(1), {"cu": cu})).strip():
                stale.append(f"cell {i} ({found.group(1)})")
    assert not stale, (f"{path.parent.name}/{path.name}: {', '.join(stale)} stored an older source than the "
                       f"package's; run `python scripts/execute_notebooks.py {path.relative_to(ROOT)}`")


def test_the_readme_gives_each_executed_notebooks_measured_time():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        record = nbformat.read(path, as_version=4).metadata.get(META)
        if record is None:
            continue
        lang, lesson = path.parent.name, path.stem[:2]
        row = next(line for line in readme.splitlines() if f"notebooks/en/{path.name}" in line)
        found = re.search(rf"{lang} (\d+) min", row)
        assert found, f"the README's row for lesson {lesson} gives no '{lang} N min' time at {record['preset']}"
        assert int(found.group(1)) == round(record["seconds"] / 60), (
            f"lesson {lesson} ({lang}) took {record['seconds']} s when its outputs were stored; the README says "
            f"{found.group(1)} min")


def test_pictures_are_stored_smaller_only_when_that_is_lossless():
    import io

    from execute_notebooks import smaller_png
    from PIL import Image, ImageChops

    def png(image):
        out = io.BytesIO()
        image.save(out, "PNG")
        return out.getvalue()

    few = Image.new("RGBA", (64, 64), (255, 255, 255, 255))
    few.paste((0, 0, 0, 255), (8, 8, 40, 40))
    small = smaller_png(png(few))
    assert len(small) <= len(png(few))
    assert ImageChops.difference(Image.open(io.BytesIO(small)).convert("RGB"), few.convert("RGB")).getbbox() is None
    import random
    many = Image.frombytes("RGB", (64, 64), random.Random(0).randbytes(64 * 64 * 3))  # ~4,096 colours
    assert smaller_png(png(many)) == png(many)
    see_through = Image.new("RGBA", (8, 8), (255, 0, 0, 128))
    assert smaller_png(png(see_through)) == png(see_through)

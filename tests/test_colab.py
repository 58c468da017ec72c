"""The Colab set-up cell, run as a new Colab user would meet it: in a fresh kernel with a stand-in for Colab's
``google.colab`` module, cloning the course from COURSE_REPO_URL (a local clone of this repository), installing what
is missing, and then, in the same kernel and without a restart, running the lesson's next cells: the import, the
preset, the data and the pretrained checkpoint."""
import json
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
LESSON = "01_class_conditioned_mnist"

STAND_IN = '''
import importlib.machinery, json, os, sys, types
# what Colab provides: the google.colab module, and a channel that returns the open notebook (its metadata says
# which language it is in)
google, colab, message = (types.ModuleType(n) for n in ("google", "google.colab", "google.colab._message"))
for module in (google, colab, message):  # importlib.util.find_spec (accelerate asks it) needs a spec
    module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
NOTEBOOK = json.load(open({notebook!r}, encoding="utf-8"))
message.blocking_request = lambda kind, timeout_sec=None, **kw: {{"ipynb": NOTEBOOK}}
colab._message, google.colab = message, colab
sys.modules.update({{"google": google, "google.colab": colab, "google.colab._message": message}})
os.environ.update(COURSE_REPO_URL={repo!r}, COURSE_DIR={course!r}, COURSE_PRESET="smoke")
'''

CHECKS = '''
import course_utils
assert course_utils.__file__.startswith({course!r}), course_utils.__file__  # the clone, imported without a restart
assert os.getcwd() == os.path.join({course!r}, "notebooks", {lang!r}), os.getcwd()
assert cu.pretrained_dir("mnist-cpu").is_dir() and str(cu.pretrained_dir()).startswith({course!r})
pipe = cu.load_pipeline(cu.pretrained_dir("mnist-cpu"))
assert len(cu.load_dataset("mnist", "test", verbose=False)) == 10000
print("colab set-up ok", os.getcwd())
'''


def lesson_cells(lang):
    """The lesson's cells from the set-up cell to the one after the parameters cell (its config)."""
    nb = jupytext.read(ROOT / "notebooks" / lang / f"{LESSON}.py")
    code = [c for c in nb.cells if c.cell_type == "code"]
    start = next(i for i, c in enumerate(code) if "google.colab" in c.source)
    params = next(i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
    assert params > start
    return [c.source for c in code[start:params + 2]]


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["zh"])
def test_the_colab_set_up_cell_works_in_the_same_kernel(lang, tmp_path):
    repo = tmp_path / "origin"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)  # what the learner's clone will get
    course = tmp_path / "content" / "course"
    stand_in = STAND_IN.format(notebook=str(ROOT / "notebooks" / lang / f"{LESSON}.ipynb"), repo=str(repo),
                               course=str(course))
    cells = [stand_in, *lesson_cells(lang), CHECKS.format(course=str(course), lang=lang)]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert "colab set-up ok" in printed
    assert (course / "course_utils" / "colab.py").exists()


def test_a_failed_clone_stops_with_what_to_do(tmp_path):
    """A wrong address stops the set-up cell with one message saying what failed and what to do."""
    setup = lesson_cells("en")[0]
    code = STAND_IN.format(notebook=str(ROOT / "notebooks" / "en" / f"{LESSON}.ipynb"), repo=str(tmp_path / "nowhere"),
                           course=str(tmp_path / "course")) + setup
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode != 0
    assert "Could not clone" in done.stderr and "COURSE_REPO_URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_badges_and_the_set_up_cell_carry_the_address_from_pyproject():
    import tomllib
    repo = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    slug = repo.removeprefix("https://github.com/")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for lang in ("en", "zh"):
        for nb_path in sorted((ROOT / "notebooks" / lang).glob("[0-9][0-9]_*.ipynb")):
            nb = json.loads(nb_path.read_text(encoding="utf-8"))
            link = f"https://colab.research.google.com/github/{slug}/blob/main/notebooks/{lang}/{nb_path.name}"
            assert link in "".join(nb["cells"][0]["source"]), f"badge at the top of {nb_path}"
            assert link in readme, f"README badge for {nb_path}"
            assert nb["metadata"]["course"]["language"] == lang
            setup = next("".join(c["source"]) for c in nb["cells"] if "google.colab" in "".join(c["source"]))
            assert f'"COURSE_REPO_URL", "{repo}"' in setup

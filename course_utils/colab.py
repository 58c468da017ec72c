"""Colab set-up, in the learner's own kernel: install what the runtime lacks (at tested versions) and move into
the folder of the notebook's language. The notebooks' first code cell clones the course, puts it on ``sys.path``
(no editable install, so no restart) and calls :func:`set_up`. Only the standard library is imported here, so it
runs before the course's dependencies are installed.

Introduced in lesson 1.
"""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

REQUIREMENTS = ("requirements-colab.txt", "requirements-colab-data.txt")  # the second one without dependencies


def pip_install(requirements: Path, no_deps: bool = False) -> None:
    """``pip install -q -r requirements``, stopping the notebook with pip's own message when it fails."""
    cmd = [sys.executable, "-m", "pip", "install", "-q", "-r", str(requirements)] + (["--no-deps"] if no_deps else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"Installing {requirements.name} failed:\n{done.stderr.strip()[-1500:]}\nCheck the "
                         "runtime's network (Runtime > Disconnect and delete runtime starts a fresh one), then run "
                         "the set-up cell again.")


def notebook_language() -> str | None:
    """The language of the open notebook, ``en`` or ``zh``, from its metadata (``course.language``), asked of
    Colab's front end; ``None`` when it cannot tell."""
    try:
        from google.colab import _message  # Colab's own channel to the page that holds the notebook
        notebook = _message.blocking_request("get_ipynb", timeout_sec=10)["ipynb"]
        language = notebook["metadata"]["course"]["language"]
    except Exception:  # not on Colab, an older front end, or a notebook without the field
        return None
    return language if language in ("en", "zh") else None


def set_up(course: str | os.PathLike, language: str | None = None) -> Path:
    """Install the packages Colab lacks, make them importable in this kernel, and change into
    ``COURSE/notebooks/LANGUAGE`` (the course's folder when the language cannot be told). Returns that folder."""
    course = Path(course)
    for i, name in enumerate(REQUIREMENTS):
        pip_install(course / name, no_deps=i == 1)
    importlib.invalidate_caches()  # packages installed just now are found without a restart
    language = language or notebook_language()
    folder = course / "notebooks" / language if language else course
    os.chdir(folder)
    print(f"[colab] course at {course}; packages installed; working in {folder}")
    return folder

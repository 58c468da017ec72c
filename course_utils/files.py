"""Files the course reads and writes: where the checkout and its pretrained models are, and atomic writes (a
reader never sees half a file, half a checkpoint or half a pipeline).

Introduced in lesson 1.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import torch

from .errors import SamplesFileError

PACKAGE_DIR = Path(__file__).resolve().parent


def _is_checkout(folder: Path) -> bool:
    return (folder / "pyproject.toml").is_file() and (folder / "course_utils" / "__init__.py").is_file()


def repo_root() -> Path | None:
    """The course's checkout (the folder with ``pyproject.toml`` and ``course_utils/``), or ``None``.

    Found from the package itself (an editable install, or running inside the clone) and otherwise from the
    working directory and its parents (a clone on Colab whose package was installed into site-packages).
    Introduced in lesson 1.
    """
    if _is_checkout(PACKAGE_DIR.parent):
        return PACKAGE_DIR.parent
    here = Path.cwd().resolve()
    return next((d for d in (here, *here.parents) if _is_checkout(d)), None)


def pretrained_dir(name: str | None = None) -> Path:
    """``data/pretrained`` of the checkout (or ``$COURSE_PRETRAINED_DIR``), or one model in it: the small
    checkpoints and judges trained by this repository's own commands.

    Introduced in lesson 1.
    """
    env = os.environ.get("COURSE_PRETRAINED_DIR")
    root = repo_root()
    base = Path(env) if env else (root / "data" / "pretrained" if root else None)
    if base is None or not base.is_dir():
        raise FileNotFoundError(
            "the course's pretrained models were not found: they live in data/pretrained of the course's "
            "repository. Run from inside a clone (git clone the course, then cd into it) or set "
            "COURSE_PRETRAINED_DIR to that folder.")
    path = base / name if name else base
    if not path.exists():
        have = sorted(p.name for p in base.iterdir())
        raise FileNotFoundError(f"no pretrained model {name!r} in {base} (it has {have})")
    return path


def temporary_sibling(path: str | os.PathLike) -> Path:
    """Where :func:`atomic_path` writes first: ``NAME.tmp.SUFFIX`` beside ``path`` (the suffix kept, since some
    writers, ``np.savez`` for one, add theirs when it is missing).

    Introduced in lesson 1.
    """
    path = Path(path)
    return path.with_name(f"{path.stem}.tmp{path.suffix}")


def remove(path: Path) -> None:
    """Remove a file or a folder if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def move_into_place(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Rename a finished ``tmp`` (file or folder) to ``path``, replacing what was there. A folder that existed
    is moved aside first and removed after, so ``path`` is always either the old or the new version.

    Introduced in lesson 1.
    """
    tmp, path = Path(tmp), Path(path)
    old = None
    if path.is_dir():
        old = path.with_name(f"{path.name}.old-{os.getpid()}")
        remove(old)
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        remove(old)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Write a file or a folder atomically: the block writes to the yielded temporary path, which replaces
    ``path`` only when the block finishes; an error leaves ``path`` as it was.

    ``with atomic_path(out / "pipeline") as tmp: pipe.save_pretrained(tmp)``. Introduced in lesson 1.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    remove(tmp)
    try:
        yield tmp
    except BaseException:
        remove(tmp)
        raise
    move_into_place(tmp, path)


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON, atomically.

    Introduced in lesson 1.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=indent))
    return Path(path)


def save_samples_npz(path: str | os.PathLike, images01: torch.Tensor, labels: torch.Tensor, dataset: str,
                     **meta) -> Path:
    """Write generated samples as ``images`` float32 (N, C, H, W) in [0, 1] and ``labels`` int64 (N,), plus the
    data set's name and the sampling settings, atomically.

    Introduced in lesson 1.
    """
    extra = {k: np.asarray(v) for k, v in meta.items()}
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, images=images01.float().numpy().astype(np.float32),
                            labels=torch.as_tensor(labels).long().numpy().astype(np.int64),
                            dataset=np.asarray(dataset), **extra)
    return Path(path)


def load_samples_npz(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Read a samples file written by :func:`save_samples_npz`, checking its arrays.

    Introduced in lesson 1.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; write one with `python -m course_utils sample ...`")
    hint = "pass a file written by `python -m course_utils sample ... --out FILE.npz`"
    try:
        f = np.load(path, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise SamplesFileError(f"{path} holds a single array, not a samples file; {hint}")
        with f:
            if "images" not in f or "labels" not in f:
                raise SamplesFileError(f"{path} needs arrays 'images' and 'labels' (found {sorted(f.files)}); {hint}")
            images, labels = torch.from_numpy(f["images"]), torch.from_numpy(f["labels"])
            meta = {k: f[k].item() if f[k].ndim == 0 else f[k] for k in f.files if k not in ("images", "labels")}
    except SamplesFileError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise SamplesFileError(f"{path} is not a samples file (.npz) that can be read ({type(e).__name__}); "
                               f"{hint}") from None
    if images.ndim != 4 or images.dtype != torch.float32:
        raise SamplesFileError(f"'images' must be float32 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    if labels.shape != (images.shape[0],):
        raise SamplesFileError(f"'labels' must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise SamplesFileError("'images' must lie in [0, 1]")
    return images, labels.long(), meta

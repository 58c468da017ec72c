#!/usr/bin/env python3
"""Build the course website (`make book`) from the notebooks' stored outputs; nothing is executed.

    python scripts/build_book.py [--notebooks DIR] [--out DIR]

1. MathJax 3 for the math and the Jupyter widget renderer for the stored widgets (progress bars, the interactive
   sampler), both served by the site itself: `npm pack mathjax@3 @jupyter-widgets/html-manager@^1.0` the first
   time (the only step that needs a network), unpacked into build/web-assets/static/.
2. The sources are staged in build/book-src/en and build/book-src/zh: the landing pages (book/index.md,
   book/zh/index.md), the lessons copied as they are from notebooks/en and notebooks/zh, a results page generated
   from the README's "Measured results" sections (with the pictures they show), and notebooks/TERMINOLOGY.md.
3. Sphinx (MyST-NB, sphinx-book-theme; settings in book/conf.py) builds English into build/book/html and Chinese
   into build/book/html/zh.

--notebooks DIR takes notebooks from DIR/en and DIR/zh (executed copies, say) in place of the repository's ones of
the same name; lessons missing there come from notebooks/. Exit status 3 means MathJax could not be installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
BUILD = REPO / "build"
NOTEBOOKS = REPO / "notebooks"
MATHJAX_SPEC = "mathjax@3"
# What the site needs from MathJax's es5/ folder: the TeX-to-HTML bundle and the pieces it loads on demand.
MATHJAX_PARTS = ("tex-chtml.js", "a11y", "adaptors", "input", "output", "sre", "ui")
# ipywidgets 8's static renderer (the same file MyST-NB would otherwise load from a CDN), with its icon fonts
WIDGETS_SPEC = "@jupyter-widgets/html-manager@^1.0"
WIDGET_FONTS = (".woff2", ".woff", ".ttf", ".eot", ".svg")
LANGS = ("en", "zh")
RESULTS_HEAD = {
    "en": "# Measured results\n\nThe README's *Measured results* sections, copied from the repository's README.md "
          "when this website was built.\n",
    "zh": "# 测量结果\n\n以下内容在构建网站时取自仓库 README.md 的 “Measured results” 各节，原文为英文。\n",
}
MATHJAX_EXIT = 3


class BookError(RuntimeError):
    """A build step failed; the message is one line for the user."""


class MathJaxUnavailable(BookError):
    pass


# --- web assets from npm: MathJax and the Jupyter widget renderer ---------------------------------------------------
def _extract(tarball: Path, dest: Path, place) -> int:
    """Unpack members of an npm tarball: place(path inside package/) gives the path under dest, or None to skip."""
    n = 0
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            rel = place(member.name.split("/", 1)[-1]) if member.isfile() else None
            if rel:
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
                n += 1
    return n


def _mathjax_file(name: str) -> str | None:
    """es5/tex-chtml.js and the folders it loads from -> mathjax/..."""
    if name.startswith("es5/") and name[len("es5/"):].split("/")[0] in MATHJAX_PARTS:
        return "mathjax/" + name[len("es5/"):]
    return None


def _widgets_file(name: str) -> str | None:
    """dist/embed.js and its icon fonts -> widgets/..."""
    if name == "dist/embed.js" or (name.startswith("dist/") and name.endswith(WIDGET_FONTS)):
        return "widgets/" + name[len("dist/"):]
    return None


def ensure_web_assets(build: Path = BUILD) -> Path:
    """The folder to serve as Sphinx static files: mathjax/ (MathJax 3's es5 bundle) and widgets/ (the Jupyter
    widget renderer for stored widget state). Fetched once with `npm pack` (no dependencies, no install scripts)."""
    static = build / "web-assets" / "static"
    if (static / "mathjax" / "tex-chtml.js").is_file() and (static / "widgets" / "embed.js").is_file():
        return static
    npm = shutil.which("npm")
    if npm is None:
        raise MathJaxUnavailable("cannot install MathJax for the website: npm is not installed (install Node.js "
                                 "and npm, e.g. apt-get install npm)")
    packs = build / "web-assets" / "npm"
    shutil.rmtree(packs, ignore_errors=True)
    packs.mkdir(parents=True)
    cmd = [npm, "pack", "--json", "--loglevel=error", "--pack-destination", str(packs), MATHJAX_SPEC, WIDGETS_SPEC]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=packs)
        made = {d["name"]: packs / d["filename"] for d in json.loads(proc.stdout)} if proc.returncode == 0 else {}
    except (subprocess.TimeoutExpired, ValueError, KeyError, TypeError):
        made = {}
    if "mathjax" not in made or "@jupyter-widgets/html-manager" not in made:
        raise MathJaxUnavailable(f"cannot install MathJax for the website: `npm pack {MATHJAX_SPEC} {WIDGETS_SPEC}` "
                                 "failed (is the npm registry reachable?)")
    tmp = static.with_name("static.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _extract(made["mathjax"], tmp, _mathjax_file)
    _extract(made["@jupyter-widgets/html-manager"], tmp, _widgets_file)
    if not (tmp / "mathjax" / "tex-chtml.js").is_file() or not (tmp / "widgets" / "embed.js").is_file():
        raise MathJaxUnavailable("cannot install MathJax for the website: the npm packages lack es5/tex-chtml.js "
                                 "or dist/embed.js")
    shutil.rmtree(static, ignore_errors=True)
    tmp.rename(static)
    return static


# --- the results page, from the README -----------------------------------------------------------------------------
def repository_url() -> str:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    m = re.search(r'^Repository\s*=\s*"([^"]+)"', text, re.M)
    return m.group(1).rstrip("/") if m else ""


def measured_sections(readme: str) -> str:
    """The README's `## Measured results ...` sections, in order, each up to the next `## ` heading."""
    sections, current, fence = [], None, False
    for line in readme.splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
        if not fence and line.startswith("## "):
            current = [] if line[3:].strip().lower().startswith("measured results") else None
            if current is not None:
                sections.append(current)
        if current is not None:
            current.append(line)
    if not sections:
        raise BookError("README.md has no '## Measured results' section to put on the website")
    return "\n\n".join("\n".join(s).strip() for s in sections) + "\n"


LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def results_page(lang: str, srcdir: Path, readme_path: Path = REPO / "README.md") -> Path:
    """Write srcdir/results.md from the README. Pictures are copied beside it at the same relative paths; links
    to other files of the repository point at the repository's web address."""
    body = measured_sections(readme_path.read_text(encoding="utf-8"))
    base = repository_url()

    def fix(m: re.Match) -> str:
        bang, text, target = m.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target, re.I):
            return m.group(0)
        path = target.split("#")[0]
        src = readme_path.parent / path
        if bang:
            if src.is_file():
                dest = srcdir / path
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
            else:
                print(f"build_book: README picture {path} is missing; the results page will show it broken",
                      file=sys.stderr)
            return m.group(0)
        return f"[{text}]({base}/blob/main/{target})" if base else m.group(0)

    page = srcdir / "results.md"
    page.write_text(RESULTS_HEAD[lang] + "\n" + LINK.sub(fix, body), encoding="utf-8")
    return page


# --- staging ---------------------------------------------------------------------------------------------------------
def lesson_notebooks(lang: str, notebooks: Path | None) -> list[Path]:
    """The lessons of one language: the repository's, each replaced by the one in `notebooks` if it has it."""
    chosen = {p.name: p for p in sorted((NOTEBOOKS / lang).glob("*.ipynb"))}
    if notebooks is not None:
        extra = sorted((notebooks / lang).glob("*.ipynb"))
        if not extra and not chosen:
            raise BookError(f"no notebooks in {notebooks / lang}")
        chosen.update({p.name: p for p in extra})
    if not chosen:
        raise BookError(f"no notebooks in {NOTEBOOKS / lang}")
    return [chosen[k] for k in sorted(chosen)]


def stage(notebooks: Path | None = None, build: Path = BUILD) -> dict[str, Path]:
    """Lay out build/book-src/{en,zh}; return the source folder of each language."""
    root = build / "book-src"
    shutil.rmtree(root, ignore_errors=True)
    terminology = NOTEBOOKS / "TERMINOLOGY.md"
    if notebooks is not None and (notebooks / "TERMINOLOGY.md").is_file():
        terminology = notebooks / "TERMINOLOGY.md"
    srcdirs = {}
    for lang in LANGS:
        src = root / lang
        lessons = src / "en" if lang == "en" else src  # English lessons at en/, Chinese at the zh build's root
        lessons.mkdir(parents=True)
        shutil.copy2(BOOK / ("index.md" if lang == "en" else "zh/index.md"), src / "index.md")
        for nb in lesson_notebooks(lang, notebooks):
            shutil.copy2(nb, lessons / nb.name)
        shutil.copy2(terminology, src / "terminology.md")
        results_page(lang, src)
        shutil.copytree(BOOK / "assets", src / "_assets")
        srcdirs[lang] = src
    return srcdirs


# --- Sphinx ----------------------------------------------------------------------------------------------------------
def sphinx_build(lang: str, srcdir: Path, outdir: Path, other_srcdir: Path, web_static: Path,
                 build: Path = BUILD) -> None:
    env = dict(os.environ, BOOK_LANG=lang, BOOK_OTHER_SRCDIR=str(other_srcdir), BOOK_WEB_STATIC=str(web_static))
    doctrees = build / "book-doctrees" / lang
    shutil.rmtree(doctrees, ignore_errors=True)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(BOOK), "-d", str(doctrees),
           str(srcdir), str(outdir)]
    proc = subprocess.run(cmd, env=env)
    if proc.returncode != 0:
        raise BookError(f"sphinx-build failed for the {lang} pages (exit {proc.returncode}); see the messages above")


def build(notebooks: Path | None = None, out: Path | None = None, build_dir: Path = BUILD) -> Path:
    """Build the whole site; return the folder of index.html."""
    try:
        import myst_nb  # noqa: F401
        import sphinx_book_theme  # noqa: F401
    except ImportError as e:
        raise BookError(f"the website's Python packages are missing ({e.name}): run `make setup` "
                        "(pip install -r requirements.txt)") from None
    out = out or build_dir / "book" / "html"
    web_static = ensure_web_assets(build_dir)
    srcdirs = stage(notebooks, build_dir)
    shutil.rmtree(out, ignore_errors=True)
    sphinx_build("en", srcdirs["en"], out, srcdirs["zh"], web_static, build_dir)
    sphinx_build("zh", srcdirs["zh"], out / "zh", srcdirs["en"], web_static, build_dir)
    (out / ".nojekyll").touch()  # GitHub Pages: serve _static/ and _images/ as they are
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--notebooks", type=Path, default=None,
                    help="folder with en/ and zh/ notebooks to use in place of the repository's (e.g. executed copies)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default build/book/html)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        out = build(args.notebooks, args.out)
    except MathJaxUnavailable as e:
        print(f"build_book: {e}", file=sys.stderr)
        return MATHJAX_EXIT
    except BookError as e:
        print(f"build_book: {e}", file=sys.stderr)
        return 1
    pages = len(list(out.rglob("*.html")))
    shown = out.relative_to(REPO) if out.is_relative_to(REPO) else out
    print(f"website: {shown}/index.html ({pages} pages, {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Stamp the course's public address, kept in one place (pyproject.toml, [project.urls] Repository), into:

* an "Open in Colab" badge at the top of every lesson, both languages, and in the README's lesson table;
* the default of the notebooks' Colab set-up cell (``COURSE_REPO_URL``);
* each notebook's metadata ``course.language`` (``en`` / ``zh``), which the set-up cell reads in Colab to move into
  the folder of the language the learner opened.

A fork changes the address in pyproject.toml and runs ``make stamp`` (this script, then jupytext's sync).
"""
from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def repository() -> str:
    url = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"].rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        sys.exit(f"pyproject.toml's Repository must be https://github.com/OWNER/NAME, got {url!r}")
    return url


def colab_link(repo: str, notebook: str, branch: str = "main") -> str:
    return f"https://colab.research.google.com/github/{repo.removeprefix('https://github.com/')}/blob/{branch}/{notebook}"


def stamp_notebook(py: Path, repo: str, lang: str) -> bool:
    text = old = py.read_text(encoding="utf-8")
    link = colab_link(repo, f"notebooks/{lang}/{py.stem}.ipynb")
    badge = f"# [![Open In Colab]({BADGE})]({link})"
    default = f'os.environ.get("COURSE_REPO_URL", "{repo}")'
    text = re.sub(r'os\.environ\.get\("COURSE_REPO_URL", "[^"]*"\)', default, text)
    first = text.index("# %% [markdown]\n") + len("# %% [markdown]\n")
    if text[first:].startswith("# [![Open In Colab]"):
        end = text.index("\n", first)
        text = text[:first] + badge + text[end:]
    else:
        text = text[:first] + badge + "\n#\n" + text[first:]
    header_end = text.index("# ---\n", 4)
    header = text[:header_end]
    if "#   course:" in header:
        header = re.sub(r"#   course:\n#     language: \w+\n", f"#   course:\n#     language: {lang}\n", header)
    else:
        header += f"#   course:\n#     language: {lang}\n"
    text = header + text[header_end:]
    if text != old:
        py.write_text(text, encoding="utf-8")
    return text != old


def stamp_readme(repo: str) -> bool:
    readme = ROOT / "README.md"
    text = old = readme.read_text(encoding="utf-8")
    for lesson in sorted((ROOT / "notebooks" / "en").glob("[0-9][0-9]_*.py")):
        badges = " ".join(f"[![{lang}]({BADGE})]({colab_link(repo, f'notebooks/{lang}/{lesson.stem}.ipynb')})"
                          for lang in ("en", "zh"))
        pattern = re.compile(rf"(\| \[zh\]\(notebooks/zh/{lesson.stem}\.ipynb\) \| )([^|]*)(\|)")
        if not pattern.search(text):
            sys.exit(f"the README's lesson table has no row for {lesson.stem} with a Colab column")
        text = pattern.sub(lambda m: m.group(1) + badges + " " + m.group(3), text)
    if text != old:
        readme.write_text(text, encoding="utf-8")
    return text != old


def main() -> int:
    repo = repository()
    changed = [str(p.relative_to(ROOT)) for lang in ("en", "zh")
               for p in sorted((ROOT / "notebooks" / lang).glob("[0-9][0-9]_*.py")) if stamp_notebook(p, repo, lang)]
    if stamp_readme(repo):
        changed.append("README.md")
    print(f"stamped {repo} into {len(changed)} file(s)" + (": " + ", ".join(changed) if changed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

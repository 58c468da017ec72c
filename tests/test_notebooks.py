"""Notebook structure: jupytext pairs in sync, English and Chinese twins with identical code, and the
conventions every lesson keeps. (Executing the notebooks is nbval's job: see pyproject's addopts.)"""
import re
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
EN, ZH = ROOT / "notebooks" / "en", ROOT / "notebooks" / "zh"
LESSONS = sorted(p.name for p in EN.glob("[0-9][0-9]_*.ipynb"))
CJK = re.compile(r"[\u4e00-\u9fff]")


def cells(path):
    nb = jupytext.read(path)
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_the_readme_lists_every_lesson_and_every_listed_lesson_exists():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = sorted(set(re.findall(r"notebooks/en/([0-9]{2}_\w+\.ipynb)", readme)))
    assert listed == LESSONS and len(LESSONS) == 4
    for lesson in LESSONS:
        assert f"notebooks/zh/{lesson}" in readme, f"the README links the Chinese {lesson}"


@pytest.mark.parametrize("lang", [EN, ZH], ids=["en", "zh"])
@pytest.mark.parametrize("lesson", LESSONS)
def test_ipynb_and_py_are_in_sync(lesson, lang):
    ipynb = lang / lesson
    py = ipynb.with_suffix(".py")
    assert ipynb.exists() and py.exists(), f"{ipynb} needs its jupytext pair {py.name}"
    assert cells(ipynb) == cells(py), f"{ipynb} and {py.name} differ: run `make sync`"


@pytest.mark.parametrize("lesson", LESSONS)
def test_english_and_chinese_have_the_same_cells_and_identical_code(lesson):
    en, zh = cells(EN / lesson), cells(ZH / lesson)
    assert [t for t, _ in en] == [t for t, _ in zh], "the same cells in the same order"
    for i, ((t, a), (_, b)) in enumerate(zip(en, zh)):
        if t == "code":
            assert a == b, f"code cell {i} differs between languages"


@pytest.mark.parametrize("lesson", LESSONS)
def test_chinese_prose_is_translated(lesson):
    for t, src in cells(ZH / lesson):
        if t == "markdown" and len(re.sub(r"\$[^$]*\$|`[^`]*`|\W", "", src)) > 20:
            assert CJK.search(src), f"untranslated markdown cell in zh/{lesson}: {src[:60]!r}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_conventions(lesson):
    nb = jupytext.read(EN / lesson)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "default_preset()" in tagged[0].source, "one parameters cell reading the preset"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "google.colab" in code, "a Colab set-up cell"
    assert "plt.show()" in code, "the lesson shows its pictures"
    for c in nb.cells:
        if c.cell_type == "code":
            assert not re.search(r"^\s*#\s*(print|plt|cu)\.", c.source, re.M), "no commented-out code in lessons"


def test_terminology_is_used_in_chinese_lessons():
    table = (ROOT / "notebooks" / "TERMINOLOGY.md").read_text(encoding="utf-8")
    terms = re.findall(r"^\|\s*[^|]+\|\s*([^|\s][^|]*?)\s*\|", table, re.M)
    zh_terms = [t for t in terms if CJK.search(t)]
    assert len(zh_terms) >= 10
    text = "\n".join(src for lesson in LESSONS for t, src in cells(ZH / lesson) if t == "markdown")
    for must in ("扩散模型", "噪声调度器", "条件"):
        assert must in table and must in text

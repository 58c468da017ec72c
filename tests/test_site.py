"""The course website (`make book`), checked in a real browser.

Builds the site with scripts/build_book.py, serves build/book/html on a localhost port and opens the landing page,
lesson 1 in English and in Chinese, and the results page in headless Chromium (through Playwright, driving the
system's Chromium). Checks that every picture loads, that MathJax typeset the lessons' math, that the language
switch goes from en/01 to zh/01 and back, and that no page asks for anything off this machine. Screenshots go to
build/screenshots/.

BOOK_NOTEBOOKS=DIR builds from executed copies in DIR/en and DIR/zh instead of the repository's notebooks.
Skipped without Chromium (scripts/install_browser.sh), without Playwright, or when MathJax cannot be installed.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

REPO = Path(__file__).resolve().parents[1]
SITE = REPO / "build" / "book" / "html"
SHOTS = REPO / "build" / "screenshots"
LESSON = "01_class_conditioned_mnist"
MATHJAX_EXIT = 3  # scripts/build_book.py's exit status when MathJax cannot be installed
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

pytestmark = pytest.mark.slow


def chromium_path() -> str | None:
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def notebook_source(lang: str) -> Path:
    extra = os.environ.get("BOOK_NOTEBOOKS")
    if extra and (Path(extra) / lang / f"{LESSON}.ipynb").is_file():
        return Path(extra) / lang / f"{LESSON}.ipynb"
    return REPO / "notebooks" / lang / f"{LESSON}.ipynb"


def outputs_with(notebook: Path, prefix: str) -> int:
    """How many stored outputs of the notebook have a MIME type that starts with `prefix`."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    return sum(1 for cell in nb["cells"] if cell["cell_type"] == "code" for out in cell.get("outputs", [])
               if any(k.startswith(prefix) for k in out.get("data", {})))


def has_dollar_math(notebook: Path) -> bool:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    return any("$" in "".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


@pytest.fixture(scope="module")
def site():
    """Build the site, serve it on a free localhost port, yield its address."""
    chromium = chromium_path()
    if chromium is None:
        pytest.skip("no Chromium (/usr/bin/chromium or chromium on PATH): run scripts/install_browser.sh")
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -r requirements.txt)")
    cmd = [sys.executable, str(REPO / "scripts" / "build_book.py")]
    if os.environ.get("BOOK_NOTEBOOKS"):
        cmd += ["--notebooks", os.environ["BOOK_NOTEBOOKS"]]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode == MATHJAX_EXIT:
        pytest.skip(proc.stderr.strip() or "MathJax could not be installed")
    assert proc.returncode == 0, f"the website's build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    handler = functools.partial(QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", chromium
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture(scope="module")
def browser(site, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    _, chromium = site
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        yield context
        context.close()


@pytest.fixture
def page(browser, site):
    """A fresh tab that records every address asked for that is not this test's server."""
    base, _ = site
    tab = browser.new_page()
    tab.off_site = []
    host = urlparse(base).netloc

    def note(request):
        url = urlparse(request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.netloc != host:
            tab.off_site.append(request.url)

    tab.on("request", note)
    yield tab
    tab.close()


def open_page(tab, url: str) -> None:
    tab.goto(url, wait_until="load")
    # Load every picture now (lazy ones too), then let MathJax finish.
    tab.evaluate("""async () => {
        const imgs = [...document.images];
        imgs.forEach(i => { i.loading = 'eager'; });
        await Promise.all(imgs.map(i => i.decode().catch(() => null)));
    }""")


def broken_images(tab) -> list[str]:
    return tab.evaluate("() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
                        ".map(i => i.getAttribute('src'))")


def typeset(tab) -> dict:
    """Wait for MathJax, then count what it produced."""
    tab.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=20_000)
    return tab.evaluate("""async () => {
        await MathJax.startup.promise;
        return {containers: document.querySelectorAll('mjx-container').length,
                errors: document.querySelectorAll('mjx-merror').length,
                raw: document.querySelectorAll('span.math, div.math').length};
    }""")


def shoot(tab, name: str, first: str | None = None) -> None:
    """Save a screenshot of the window; with `first`, scroll the first element that matches into view first."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    if first and tab.locator(first).count():
        tab.locator(first).first.scroll_into_view_if_needed()
        tab.evaluate("() => window.scrollBy(0, -120)")
    tab.screenshot(path=str(SHOTS / f"{name}.png"))


def test_landing_page(site, page):
    base, _ = site
    open_page(page, f"{base}/index.html")
    assert broken_images(page) == []
    switch = page.locator("#lang-switch")
    assert switch.is_visible() and switch.inner_text().strip() == "中文"
    # Every lesson is linked from the landing page and from the sidebar.
    lessons = sorted(p.stem for p in (REPO / "notebooks" / "en").glob("*.ipynb"))
    for lesson in lessons:
        assert page.locator(f'.bd-article a[href="en/{lesson}.html"]').count() >= 1, lesson
        assert page.locator(f'nav a[href="en/{lesson}.html"]').count() >= 1, lesson
    assert page.locator('a[href="results.html"]').count() and page.locator('a[href="terminology.html"]').count()
    shoot(page, "landing")
    switch.click()
    page.wait_for_url(f"{base}/zh/index.html")
    assert page.locator("html").get_attribute("lang").startswith("zh")
    shoot(page, "landing-zh")
    assert page.off_site == []


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_lesson_page(site, page, lang):
    base, _ = site
    notebook = notebook_source(lang)
    open_page(page, f"{base}/{lang}/{LESSON}.html")
    assert page.locator(".bd-article h1").first.is_visible()
    # (a) every picture loaded, and the stored figures are there
    assert broken_images(page) == []
    figures = page.locator(".cell_output img").count()
    pictures = outputs_with(notebook, "image/")
    if pictures:
        assert figures >= 1, f"{notebook} stores {pictures} pictures, the page shows none"
    # stored widgets (progress bars, the interactive sampler) drawn by the local widget renderer
    if outputs_with(notebook, "application/vnd.jupyter.widget-view"):
        page.wait_for_selector(".cell_output .jupyter-widgets", timeout=10_000)
    # (b) MathJax typeset the math, without errors
    math = typeset(page)
    if has_dollar_math(notebook):
        assert math["containers"] >= 1, math
    assert math["errors"] == 0, math
    assert math["containers"] >= math["raw"], f"math left untypeset: {math}"
    shoot(page, f"{lang}-lesson")
    shoot(page, f"{lang}-lesson-output", first=".cell_output img")
    shoot(page, f"{lang}-lesson-math", first="mjx-container")
    assert page.off_site == [], f"the page asked for addresses off this machine: {page.off_site[:5]}"


def test_language_switch(site, page):
    """(c) en/01 -> zh/01 -> en/01 through the switch in the article header."""
    base, _ = site
    page.goto(f"{base}/en/{LESSON}.html")
    switch = page.locator("#lang-switch")
    assert switch.is_visible() and switch.inner_text().strip() == "中文"
    switch.click()
    page.wait_for_url(f"{base}/zh/{LESSON}.html")
    assert page.locator("html").get_attribute("lang").startswith("zh")
    back = page.locator("#lang-switch")
    assert back.is_visible() and back.inner_text().strip() == "English"
    back.click()
    page.wait_for_url(f"{base}/en/{LESSON}.html")
    assert page.locator("html").get_attribute("lang") == "en"


def test_results_page(site, page):
    """The README's measured results, with their pictures."""
    base, _ = site
    open_page(page, f"{base}/results.html")
    assert broken_images(page) == []
    assert page.locator("h2", has_text="Measured results (lesson 1)").count() == 1
    assert page.locator(".bd-article img").count() >= 1
    assert page.locator(".bd-article table").count() >= 1
    shoot(page, "results")
    assert page.off_site == []

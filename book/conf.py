"""Sphinx configuration of the course website (`make book`, see book/README.md).

The site is two Sphinx builds of sources that scripts/build_book.py stages under build/book-src/:
BOOK_LANG=en builds build/book-src/en into build/book/html (landing page, en/ lessons, results, terminology) and
BOOK_LANG=zh builds build/book-src/zh into build/book/html/zh (the same pages in Chinese). Two builds give each
language its own sidebar, search index and interface strings; _ext/book_site.py links every page to its twin.
Nothing is executed: MyST-NB renders the outputs stored in the notebooks.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

BOOK_LANG = os.environ.get("BOOK_LANG", "en")
if BOOK_LANG not in ("en", "zh"):
    raise ValueError(f"BOOK_LANG must be en or zh, not {BOOK_LANG!r}")
# From npm, unpacked by scripts/build_book.py: mathjax/ (MathJax 3) and widgets/ (the Jupyter widget renderer),
# served from the site's _static/ so that nothing comes from a CDN.
WEB_STATIC = os.environ.get("BOOK_WEB_STATIC", str(HERE.parent / "build" / "web-assets" / "static"))

project = "Conditional diffusion models, step by step" if BOOK_LANG == "en" else "条件扩散模型，循序渐进"
FOOTER = {
    "en": "Code under the MIT licence. Built with Sphinx and MyST-NB from the notebooks' stored outputs.",
    "zh": "代码采用 MIT 许可证。本网站由 Sphinx 和 MyST-NB 根据笔记本中保存的输出生成。",
}[BOOK_LANG]
language = "en" if BOOK_LANG == "en" else "zh_CN"

extensions = ["myst_nb", "book_site"]
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "**.py"]

# --- notebooks: stored outputs only -------------------------------------------------------------------------
nb_execution_mode = "off"
# The notebooks' widgets (tqdm bars, the interactive sampler) are drawn from the widget state stored in the
# notebook by ipywidgets' static renderer, served locally (MyST-NB's default loads it and require.js from a CDN).
# The sliders move but draw nothing new: that needs a live kernel.
nb_ipywidgets_js = {"widgets/embed.js": {}}
nb_merge_streams = True

# --- Markdown (the notebooks' cells, the landing pages, README's results) --------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# --- math: MathJax 3 served from the site itself (no CDN) -------------------------------------------------------
mathjax_path = "mathjax/tex-chtml.js"  # relative to _static/

# --- HTML -----------------------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static", WEB_STATIC]
html_css_files = ["book.css"]
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "article_header_end": ["lang-switch.html", "article-header-buttons.html"],
    "navigation_with_keys": False,
    "navbar_persistent": [],  # no top bar with a second search field: the sidebar has one
    "footer_content_items": ["extra-footer.html"],
    "extra_footer": f"<p>{FOOTER}</p>",
}
templates_path = ["_templates"]

# --- language switch (book/_ext/book_site.py) -----------------------------------------------------------------
langswitch_lang = BOOK_LANG
# Where this build's pages sit in the site ("" for English, "zh/" for Chinese) and the other build's source
# folder, so that a page without a twin (none today) falls back to the other language's landing page.
langswitch_site_prefix = "" if BOOK_LANG == "en" else "zh/"
langswitch_other_srcdir = os.environ.get("BOOK_OTHER_SRCDIR", "")

# --- offline: remote pictures in the notebooks' Markdown, replaced by local copies (staged into _assets/) ----------
book_local_images = {
    "https://colab.research.google.com/assets/colab-badge.svg": "/_assets/colab-badge.svg",
}

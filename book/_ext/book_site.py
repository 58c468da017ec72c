"""A small Sphinx extension for the course website: the language switch and offline pictures.

Language switch: the site is two builds (English at the site's root, Chinese under zh/). For every page this
extension works out the twin page in the other language and puts its address, relative to the page, into the
template context (`langswitch_url`, `langswitch_label`, `langswitch_hreflang`), which
_templates/lang-switch.html shows in the article header. English `en/NN_x` <-> Chinese `zh/NN_x`, the landing page
`index` <-> `zh/index`, `results` <-> `zh/results`, `terminology` <-> `zh/terminology`; a page whose twin is not in
the other build's sources links to the other language's landing page.

Offline pictures: `book_local_images` maps a remote picture's address (the Colab badge in every lesson) to a local
file, so that the site shows it without a network.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from sphinx.application import Sphinx

LABELS = {"en": ("中文", "zh-CN", "切换到中文"), "zh": ("English", "en", "Switch to English")}
SOURCE_SUFFIXES = (".md", ".ipynb", ".rst")


def _other_doc(app: Sphinx, pagename: str) -> tuple[str, str]:
    """(the twin's docname in the other build, the other build's site prefix)."""
    cfg = app.config
    if cfg.langswitch_lang == "en":
        other = pagename[len("en/"):] if pagename.startswith("en/") else pagename
        prefix = "zh/"
    else:
        other = f"en/{pagename}" if _exists(app, f"en/{pagename}") else pagename
        prefix = ""
    if not _exists(app, other):
        other = "index"
    return other, prefix


def _exists(app: Sphinx, docname: str) -> bool:
    srcdir = app.config.langswitch_other_srcdir
    # Without the other build's sources, trust the naming; Sphinx writes search and genindex in both builds.
    if not srcdir or docname in ("search", "genindex"):
        return True
    return any((Path(srcdir) / f"{docname}{suffix}").is_file() for suffix in SOURCE_SUFFIXES)


def twin_url(app: Sphinx, pagename: str) -> str:
    """The address of `pagename`'s twin page, relative to `pagename`'s own address."""
    other, other_prefix = _other_doc(app, pagename)
    here = app.config.langswitch_site_prefix + pagename + ".html"
    there = other_prefix + other + ".html"
    return posixpath.relpath(there, posixpath.dirname(here) or ".")


def add_switch(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    if app.builder.format != "html":
        return
    label, hreflang, title = LABELS[app.config.langswitch_lang]
    url = twin_url(app, pagename)
    context["langswitch_url"] = url
    context["langswitch_label"] = label
    context["langswitch_hreflang"] = hreflang
    context["langswitch_title"] = title
    context["metatags"] = context.get("metatags", "") + f'\n<link rel="alternate" hreflang="{hreflang}" href="{url}">'


def localise_images(app: Sphinx, doctree) -> None:
    """Point remote pictures named in `book_local_images` at their local copies (before Sphinx collects images)."""
    from docutils import nodes

    table = app.config.book_local_images
    for node in doctree.findall(nodes.image):
        uri = node.get("uri", "")
        if uri in table:
            node["uri"] = table[uri]
            node.attributes.pop("candidates", None)


def setup(app: Sphinx) -> dict:
    app.add_config_value("langswitch_lang", "en", "html")
    app.add_config_value("langswitch_site_prefix", "", "html")
    app.add_config_value("langswitch_other_srcdir", "", "html")
    app.add_config_value("book_local_images", {}, "env")
    app.connect("html-page-context", add_switch)
    app.connect("doctree-read", localise_images, priority=100)  # before Sphinx's image collector (500)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

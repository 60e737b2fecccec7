"""Sphinx configuration of the convexnn documentation.

Build (from the repository root, with ``pip install -e ".[docs]"``)::

    python -m sphinx -W -b html docs docs/_build/html

``CONVEXNN_DOCS_FAST=1`` builds the gallery in its fast mode (see ``examples/README.txt``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import convexnn  # noqa: E402

project = "convexnn"
author = "convexnn developers"
copyright = "convexnn developers, Apache-2.0"
version = release = convexnn.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip", "auto_examples/*.json",
                    "auto_examples/*.md5", "auto_examples/*.codeobj.json"]
templates_path = ["_templates"]

# -- MyST ---------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# -- API reference ------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {
    "members": True,
    "inherited-members": False,
    # scikit-learn generates these metadata-routing setters on every estimator class
    "exclude-members": "set_fit_request, set_score_request, set_predict_request",
}
autodoc_typehints = "none"
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- gallery --------------------------------------------------------------------------
# Every example runs at build time. The fast mode (CONVEXNN_DOCS_FAST=1, used by CI)
# runs the quicker ones only; the others are rendered with their code and no output.
FAST = os.environ.get("CONVEXNN_DOCS_FAST", "") not in ("", "0")
FAST_EXAMPLES = ("plot_1_", "plot_2_", "plot_3_", "plot_4_", "plot_7_")
EXECUTED = "/(" + "|".join(FAST_EXAMPLES) + ")" if FAST else "/plot_"

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": EXECUTED,
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "show_memory": False,
    "min_reported_time": 1,
}

# -- HTML -----------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"convexnn {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_context = {"default_mode": "light"}


# -- checks of the built site -----------------------------------------------------------


def _check_site(app, exception):
    """Warn (an error under -W) when a public name has no API page or an executed
    example produced no figure."""
    if exception is not None or app.builder.name != "html":
        return
    import re

    from sphinx.util import logging

    log = logging.getLogger("convexnn.docs")
    out = Path(app.outdir)
    for name in convexnn.__all__:
        if not (out / "generated" / f"convexnn.{name}.html").is_file():
            log.warning(f"no API page for convexnn.{name} (add it to docs/api.md)")
    if not app.config.sphinx_gallery_conf.get("plot_gallery", True) or \
            str(app.config.sphinx_gallery_conf.get("plot_gallery")) in ("0", "False"):
        return
    pattern = re.compile(EXECUTED.lstrip("/"))
    for script in sorted((ROOT / "examples").glob("plot_*.py")):
        if not pattern.match(script.name):
            continue
        page = out / "auto_examples" / f"{script.stem}.html"
        html = page.read_text(encoding="utf-8") if page.is_file() else ""
        if f"sphx_glr_{script.stem}_001.png" not in html:
            log.warning(f"the gallery page of {script.name} shows no figure")


def setup(app):
    app.connect("build-finished", _check_site)

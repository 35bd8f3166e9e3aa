"""Sphinx configuration of the course's website (build: ``bash site/build [OUT]``).

The source folder is the repository itself (``sphinx-build -c site . OUT``), so the README, the
lessons and the datasheet are read where they live and the README's relative links
(``lessons/03_pretraining_on_mnist.ipynb``, ``datasets/README.md``) resolve on the site as they
do on GitHub. ``include_patterns`` keeps everything else out. The lessons are rendered from their
committed outputs, never executed (``nb_execution_mode = "off"``). MathJax is served with the
site from the npm package (``site/node_modules``, installed by ``site/build``), not a CDN.
"""

from __future__ import annotations

import inspect
import shutil
import sys
from pathlib import Path

SITE = Path(__file__).resolve().parent
REPO = SITE.parent
sys.path.insert(0, str(REPO))  # autodoc reads this checkout's ftcore

LESSONS = sorted(p.relative_to(REPO).with_suffix("").as_posix()
                 for p in (REPO / "lessons").glob("[0-9][0-9]_*.ipynb"))
MATHJAX = SITE / "node_modules" / "mathjax" / "es5"
#: The parts of MathJax's es5 folder that tex-chtml.js loads: TeX extensions on demand,
#: CommonHTML fonts, the menu and its accessibility tools (which use the speech engine, sre).
MATHJAX_PARTS = ["tex-chtml.js", "input", "output/chtml", "ui", "a11y", "sre"]
REPOSITORY = "https://github.com/ftcore-lessons/ftcore-lessons"

project = "Fine-tuning neural networks, from first principles"
author = "ftcore lessons developers"
copyright = "ftcore lessons developers (code: MIT)"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
templates_path = [str(SITE / "_templates")]  # absolute: autosummary reads it from the source folder

root_doc = "README"
include_patterns = ["README.md", "lessons/[0-9][0-9]_*.ipynb", "datasets/README.md",
                    "site/api.md", "site/api/*.rst"]
exclude_patterns = ["**/.ipynb_checkpoints"]

# The lessons: committed executed notebooks, shown as they are.
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# ftcore's API from its docstrings (Google style: Args / Returns / Raises).
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# MathJax 3 from site/node_modules, copied into _static/mathjax when the build finishes.
mathjax_path = "mathjax/tex-chtml.js"

html_theme = "sphinx_book_theme"
html_title = "ftcore lessons"
html_static_path = ["_static"]
html_extra_path = ["_extra"]  # index.html: sends a visitor to the landing page, README.html
# The theme's colour mode before the reader picks one (left empty, its script logs an error).
html_context = {"default_mode": "auto"}
html_theme_options = {
    "repository_url": REPOSITORY,
    "repository_branch": "main",
    "path_to_docs": "",
    "use_repository_button": True,
    "use_download_button": True,
    "launch_buttons": {
        "binderhub_url": "https://mybinder.org",
        "colab_url": "https://colab.research.google.com",
        "notebook_interface": "jupyterlab",
    },
    "show_navbar_depth": 1,
}

# The navigation, appended to the README as it is read (GitHub shows the README without it).
NAVIGATION = """

```{{toctree}}
:hidden:
:caption: Lessons

{lessons}
```

```{{toctree}}
:hidden:
:caption: Reference

datasets/README
site/api
```
"""
# The README's Binder badge is an image on mybinder.org; the site shows a local copy.
BADGE = "https://mybinder.org/badge_logo.svg"


def add_navigation(app, docname, source):
    if docname == root_doc:
        text = source[0].replace(BADGE, "site/_static/binder-badge.svg")
        source[0] = text + NAVIGATION.format(lessons="\n".join(LESSONS))


def check_mathjax(app, config):
    if not (MATHJAX / "tex-chtml.js").is_file():
        raise RuntimeError(f"MathJax is missing from {MATHJAX}: run `npm ci --prefix site` (or "
                           "build with `bash site/build`, which does)")


def copy_mathjax(app, exception):
    if exception is None and app.builder.format == "html":
        target = Path(app.outdir) / "_static" / "mathjax"
        for part in MATHJAX_PARTS:
            source = MATHJAX / part
            if source.is_dir():
                shutil.copytree(source, target / part, dirs_exist_ok=True)
            else:
                (target / part).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / part)


def document_every_public_function(app, what, name, obj, skip, options):
    """A module's public functions and classes are documented even without a docstring (autodoc
    skips those); class members keep autodoc's rule, so a dataclass's fields are not listed
    twice. Names imported from other modules are still left to the module that defines them."""
    if what == "module" and skip and not name.startswith("_") and (
            inspect.isfunction(obj) or inspect.isclass(obj)):
        return False
    return None


def setup(app):
    app.connect("autodoc-skip-member", document_every_public_function)
    app.connect("config-inited", check_mathjax)
    app.connect("source-read", add_navigation)
    app.connect("build-finished", copy_mathjax)

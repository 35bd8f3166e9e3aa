"""The built website, checked in a real browser: ``pytest site/test_site.py`` after
``bash site/build``.

The site (``$SITE_DIR``, default ``build/site``) is served on 127.0.0.1 by a thread and driven
with Playwright through Debian's Chromium (``$CHROMIUM``, default ``/usr/bin/chromium``;
Playwright's own browser download is not needed). Any request that leaves 127.0.0.1 is blocked
and fails the test: the site must work offline. Screenshots go to ``.ci/screenshots/``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import pkgutil
import re
import threading
import zlib
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import urlopen

import pytest

REPO = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("SITE_DIR", REPO / "build" / "site")).resolve()
SHOTS = REPO / ".ci" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
REPOSITORY = "ftcore-lessons/ftcore-lessons"
LESSONS = sorted(p.relative_to(REPO).as_posix()
                 for p in (REPO / "lessons").glob("[0-9][0-9]_*.ipynb"))
PAGES = ["README.html"] + [lesson.replace(".ipynb", ".html") for lesson in LESSONS]
#: Playwright's default (30 s a step) is too short on a loaded machine.
TIMEOUT_MS = int(float(os.environ.get("SITE_TEST_TIMEOUT", "180")) * 1000)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

#: CI sets SITE_TEST_REQUIRED=1: then a missing site, Playwright or Chromium fails, never skips.
REQUIRED = os.environ.get("SITE_TEST_REQUIRED") == "1"


def _unavailable(reason: str, **kwargs):
    (pytest.fail if REQUIRED else pytest.skip)(reason, **kwargs)


if not (SITE / "README.html").is_file():
    if REQUIRED:
        raise RuntimeError(f"no site built in {SITE}: run `bash site/build {SITE}` first")
    pytest.skip(f"no site built in {SITE}: run `bash site/build {SITE}` first",
                allow_module_level=True)


class _Handler(SimpleHTTPRequestHandler):
    failures: list[tuple[str, int]] = []

    def log_request(self, code="-", size="-"):
        if int(code) >= 400:
            self.failures.append((self.path, int(code)))

    def log_message(self, format, *args):  # quiet
        pass


@pytest.fixture(scope="module")
def base():
    """The site's root URL, served by a thread on 127.0.0.1 (any free port)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=SITE))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    assert _Handler.failures == [], f"the server answered errors: {_Handler.failures}"


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright import sync_api
    except ImportError:
        _unavailable("Playwright is not installed: pip install -e '.[docs]'")
    if not Path(CHROMIUM).is_file():
        _unavailable(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Visit:
    """One page opened in a fresh browser context, with what went wrong recorded."""

    def __init__(self, browser, url, lands_on=None):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.errors, self.external, self.failed = [], [], []
        self.context.route(re.compile(r"^(?!http://127\.0\.0\.1[:/]).*"), self._block)
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("response",
                     lambda r: r.status >= 400 and self.failed.append((r.url, r.status)))
        self.page.goto(url, wait_until="load")
        if lands_on:  # a redirect: wait until it has happened
            self.page.wait_for_url(lands_on, wait_until="load")
        # MathJax typesets after load (and then loads its fonts): wait for both.
        self.page.evaluate("""async () => {
            if (window.MathJax && MathJax.startup) { await MathJax.startup.promise; }
            await document.fonts.ready;
        }""")

    def _block(self, route):
        self.external.append(route.request.url)
        route.abort()

    def close(self):
        self.context.close()


@pytest.fixture(scope="module")
def visits(browser, base):
    """Every page of the course (the landing page and each lesson), visited once."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    opened = {}
    for path in PAGES:
        visit = Visit(browser, base + path)
        name = "landing" if path == "README.html" else Path(path).stem[:2]
        visit.page.screenshot(path=SHOTS / f"{name}.png")
        figure = visit.page.locator("article .cell_output img").first
        if figure.count():
            figure.screenshot(path=SHOTS / f"{name}-figure.png")
        opened[path] = visit
    yield opened
    for visit in opened.values():
        visit.close()


def test_the_root_sends_visitors_to_the_landing_page(browser, base):
    visit = Visit(browser, base, lands_on=base + "README.html")
    assert visit.errors == [] and visit.external == []
    assert "Fine-tuning neural networks, from first principles" in visit.page.title()
    visit.close()


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_offline_without_errors(visits, path):
    visit = visits[path]
    assert visit.errors == [], f"console errors on {path}"
    assert visit.external == [], f"{path} asked for files outside the site"
    assert visit.failed == [], f"{path} asked for missing files"


@pytest.mark.parametrize("path", PAGES)
def test_every_image_decodes(visits, path):
    page = visits[path].page
    images = page.evaluate("""async () => {
        const images = [...document.querySelectorAll('article img')];
        for (const img of images) { img.loading = 'eager'; }
        await Promise.allSettled(images.map(img => img.decode()));
        return images.map(img => [img.getAttribute('src'), img.naturalWidth]);
    }""")
    lesson = path.replace(".html", ".ipynb")
    if lesson in LESSONS:  # every figure the notebook holds is on its page
        cells = json.loads((REPO / lesson).read_text(encoding="utf-8"))["cells"]
        figures = sum("image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", []))
        assert len(images) >= figures > 0
    broken = [src for src, width in images if width == 0]
    assert images and broken == []


@pytest.mark.parametrize("path", PAGES)
def test_math_is_rendered(visits, path):
    page = visits[path].page
    math = page.evaluate("""() => {
        const spans = [...document.querySelectorAll('article .math')];
        const prose = document.querySelector('article').cloneNode(true);
        prose.querySelectorAll('pre, code, .cell_output, mjx-container').forEach(e => e.remove());
        const typeset = spans.filter(s => s.querySelector('mjx-container'));
        return {spans: spans.length, typeset: typeset.length, text: prose.textContent};
    }""")
    assert math["typeset"] == math["spans"], f"{path}: math left for MathJax was not typeset"
    raw = re.findall(r"\\\(|\\\[|\$[^$\s][^$]*\$", math["text"])
    assert raw == [], f"raw TeX left on {path}"
    if path in ("lessons/01_gradient_descent_from_first_principles.html",):
        assert math["spans"] > 10  # the lesson with the most equations


@pytest.mark.parametrize("path", PAGES)
def test_navigation_lists_every_lesson_in_order(visits, path, base):
    page = visits[path].page
    links = page.eval_on_selector_all(".bd-sidebar-primary nav a", "as => as.map(a => a.href)")
    lessons = [urlsplit(u).path.lstrip("/") for u in links if "/lessons/" in u]
    assert lessons == [p for p in PAGES if p.startswith("lessons/")]


@pytest.mark.parametrize("lesson", LESSONS)
def test_launch_and_download_links_point_at_the_lesson(visits, lesson, base):
    page = visits[lesson.replace(".ipynb", ".html")].page
    hrefs = page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)")
    binder = [h for h in hrefs if h.startswith("https://mybinder.org/")]
    colab = [h for h in hrefs if h.startswith("https://colab.research.google.com/")]
    assert binder == [f"https://mybinder.org/v2/gh/{REPOSITORY}/main?urlpath=lab/tree/{lesson}"]
    assert colab == [f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/{lesson}"]
    downloads = [h for h in hrefs if h.startswith(base) and h.endswith(".ipynb")]
    assert downloads, "no download link for the notebook"
    for href in downloads:  # the committed notebook itself, outputs included
        notebook = json.loads(urlopen(href).read())
        assert notebook == json.loads((REPO / lesson).read_text(encoding="utf-8"))


def test_search_finds_the_regularisation_lesson(browser, base):
    visit = Visit(browser, base + "search.html?q=dropout")
    page = visit.page
    page.wait_for_selector("#search-results ul.search li a")
    results = page.eval_on_selector_all("#search-results ul.search li a",
                                        "as => as.map(a => a.href)")
    page.screenshot(path=SHOTS / "search-dropout.png")
    assert any("lessons/07_regularization_and_hyperparameters.html" in r for r in results)
    assert visit.errors == [] and visit.external == []
    visit.close()


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key) and (tag, key) != ("base", "href"):
                self.links.append(attrs[key])


def test_every_internal_link_resolves(base):
    """Crawl every HTML page reachable from the landing page; each link to the site must be
    found (200), and each ``#anchor`` must exist on its page."""
    todo, seen, pages, missing = [base + "README.html"], set(), {}, []
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        try:
            body = urlopen(url).read()
        except HTTPError as error:
            missing.append((url, error.code))
            continue
        if not url.endswith(".html"):
            continue
        parser = _Links()
        parser.feed(body.decode("utf-8"))
        pages[url] = parser
        for link in parser.links:
            target = urljoin(url, link)
            if target.startswith(base):
                todo.append(target.split("#")[0].split("?")[0])
    anchors = 0
    for url, parser in pages.items():
        for link in parser.links:
            target, _, fragment = urljoin(url, link).partition("#")
            if fragment and target in pages:
                anchors += 1
                if unquote(fragment) not in pages[target].ids:
                    missing.append((f"{url} -> {link}", "no such anchor"))
    assert missing == []
    assert set(base + p for p in PAGES) <= set(pages)
    print(f"crawled {len(pages)} pages and {len(seen) - len(pages)} other files, "
          f"{anchors} anchors checked")


def _inventory(path: Path) -> set[str]:
    """The object names in a Sphinx ``objects.inv`` (4 header lines, then zlib'd lines)."""
    raw = path.read_bytes()
    body = zlib.decompress(raw.split(b"\n", 4)[4]).decode("utf-8")
    return {line.split(" ", 1)[0] for line in body.splitlines() if " py:" in line}


def test_api_reference_documents_every_public_function_and_class():
    import ftcore

    documented = _inventory(SITE / "objects.inv")
    public = []
    for info in pkgutil.walk_packages(ftcore.__path__, "ftcore."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        module = importlib.import_module(info.name)
        public += [f"{info.name}.{name}" for name, obj in vars(module).items()
                   if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
                   and obj.__module__ == info.name]
    assert len(public) > 50
    assert sorted(set(public) - documented) == []

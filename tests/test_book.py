"""The book: one repository address everywhere, a complete table of contents, and the
built site as a reader sees it.

The last group opens the pages of ``_build/html`` in headless Chromium with every host
name unresolvable, so JavaScript runs (MathJax typesets the math from the book's own
copy) and nothing can come from the network. Build the site first with ``jupyter-book
build . -W -n --keep-going``; without a build (or without Chromium) those tests skip,
and under ``CI=true`` they fail instead.
"""

from __future__ import annotations

import ast
import functools
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_DIR = ROOT / "chapters"
CHAPTERS = sorted(CHAPTER_DIR.glob("[0-9][0-9]_*.ipynb"))
# the built site (override: BOOK_HTML)
SITE = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))
COLAB = "https://colab.research.google.com"
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
CHROMIUM_NAMES = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
)
FIGURES = ROOT / "book" / "figures"
MAX_CODE_LINE = 88  # characters: the width of the rendered column (custom.css)
# a folder: the browser tests also save screenshots there
SCREENSHOTS = os.environ.get("BOOK_SCREENSHOTS")


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def _repository() -> tuple[str, str, str]:
    """(url, "owner/name", branch) from _config.yml, the one place that names the
    repository."""
    repo = _config()["repository"]
    url = repo["url"].rstrip("/")
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+)", url)
    assert match, (
        "_config.yml repository.url should be "
        f"https://github.com/<owner>/<name>, got {url!r}"
    )
    return url, match.group(1), repo["branch"]


def _colab_url(notebook: Path) -> str:
    _, slug, branch = _repository()
    return (
        f"{COLAB}/github/{slug}/blob/{branch}/{notebook.relative_to(ROOT).as_posix()}"
    )


def _toc_files() -> list[str]:
    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                yield node["file"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"], *walk({k: v for k, v in toc.items() if k != "root"})]


def _ids(paths):
    return [p.stem for p in paths]


# --------------------------------------------------------------------------------------
# Sources: the repository address, the badges, the install cells, the table of contents.
# --------------------------------------------------------------------------------------


def test_there_are_chapters():
    assert CHAPTERS, f"no chapter notebooks (NN_slug.ipynb) in {CHAPTER_DIR}"


def test_config_names_one_repository_and_a_colab_launcher():
    _, _, branch = _repository()
    assert branch, "_config.yml repository.branch is empty"
    assert _config()["launch_buttons"]["colab_url"].rstrip("/") == COLAB


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_badge_opens_this_notebook_in_colab(notebook):
    nb = nbformat.read(notebook, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown", (
        f"{notebook.name}: the first cell must be the markdown badge cell"
    )
    badges = re.findall(
        r"\[!\[Open In Colab\]\(([^)\s]+)\)\]\(([^)\s]+)\)", first.source
    )
    assert len(badges) == 1, (
        f"{notebook.name}: expected one 'Open In Colab' badge in the first cell"
    )
    image, target = badges[0]
    assert image == f"{COLAB}/assets/colab-badge.svg"
    assert target == _colab_url(notebook), f"{notebook.name}: the badge opens {target}"
    # No other Colab link anywhere in the notebook may open a different file or
    # repository.
    for cell in nb.cells:
        for link in re.findall(rf"{re.escape(COLAB)}/github/[^)\s\"'>]+", cell.source):
            assert link == _colab_url(notebook), (
                f"{notebook.name}: stray Colab link {link}"
            )


def _install_urls(source: str) -> list[str]:
    """The git+ URLs that the cell would pip-install, each checked to sit under the
    Colab-only guard."""
    tree = ast.parse(source)
    guarded = []
    for node in tree.body:
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Constant)
            and node.test.left.value == "google.colab"
            and isinstance(node.test.ops[0], ast.In)
            and ast.unparse(node.test.comparators[0]) == "sys.modules"
        ):
            guarded += [
                n.value
                for n in ast.walk(node)
                if isinstance(n, ast.Constant)
                and isinstance(n.value, str)
                and n.value.startswith("git+")
            ]
    everywhere = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant)
        and isinstance(n.value, str)
        and n.value.startswith("git+")
    ]
    assert everywhere == guarded, (
        'an install outside the `if "google.colab" in sys.modules:` guard'
    )
    return guarded


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_install_cell_installs_this_repository_only_in_colab(notebook):
    nb = nbformat.read(notebook, as_version=4)
    second = nb.cells[1]
    assert second.cell_type == "code", (
        f"{notebook.name}: the second cell must be the Colab install cell"
    )
    url, _, branch = _repository()
    urls = _install_urls(second.source)
    assert urls, (
        f"{notebook.name}: the second cell installs nothing under the Colab guard"
    )
    allowed = {
        f"git+{url}",
        f"git+{url}.git",
        f"git+{url}@{branch}",
        f"git+{url}.git@{branch}",
    }
    assert set(urls) <= allowed, (
        f"{notebook.name}: installs {urls}, but _config.yml names {url}"
    )
    # Nothing else in the notebook may install from another address.
    for cell in nb.cells[2:]:
        if cell.cell_type == "code":
            for other in re.findall(r"git\+https?://[^\s\"']+", cell.source):
                assert other in allowed, f"{notebook.name}: installs from {other}"


def test_toc_lists_every_chapter_notebook():
    listed = {f for f in _toc_files() if f.startswith("chapters/")}
    on_disk = {p.relative_to(ROOT).with_suffix("").as_posix() for p in CHAPTERS}
    assert not on_disk - listed, (
        f"chapters missing from _toc.yml: {sorted(on_disk - listed)}"
    )


def test_toc_entries_exist():
    missing = [
        f
        for f in _toc_files()
        if not any((ROOT / f).with_suffix(s).exists() for s in (".md", ".ipynb"))
        and not (ROOT / f).exists()
    ]
    assert not missing, (
        f"_toc.yml lists files that do not exist (the build would fail): {missing}"
    )


def test_math_is_served_from_the_book():
    sphinx = _config()["sphinx"]["config"]
    path = sphinx["mathjax_path"]
    assert not re.match(r"(https?:)?//", path), (
        f"mathjax_path points at the network: {path}"
    )
    static = [ROOT / p for p in sphinx["html_static_path"]]
    found = [d / path for d in static if (d / path).is_file()]
    assert found, (
        f"mathjax_path {path!r} is in none of the static folders "
        f"{sphinx['html_static_path']}"
    )
    assert found[0].stat().st_size > 500_000, f"{found[0]} is too small to be MathJax"
    assert (found[0].parent / "LICENSE").is_file(), (
        "MathJax's Apache-2.0 licence must ship with it"
    )


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_code_lines_fit_the_column(notebook):
    nb = nbformat.read(notebook, as_version=4)
    wide = [
        f"cell {cell.get('id')}, {len(line)} characters: {line[:60]}..."
        for cell in nb.cells
        if cell.cell_type == "code"
        for line in cell.source.splitlines()
        if len(line) > MAX_CODE_LINE
    ]
    assert not wide, (
        f"{notebook.name}: code lines wider than {MAX_CODE_LINE} characters:\n"
        + "\n".join(wide)
    )


def _make_figures():
    spec = importlib.util.spec_from_file_location(
        "make_figures", FIGURES / "make_figures.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_diagrams_regenerate_byte_for_byte(tmp_path):
    make_figures = _make_figures()
    written = make_figures.main(tmp_path)
    assert sorted(p.name for p in written) == sorted(
        p.name for p in FIGURES.glob("*.svg")
    ), (
        "book/figures/ holds SVG files that make_figures.py does not draw, or "
        "misses some it does"
    )
    changed = [
        p.name for p in written if p.read_bytes() != (FIGURES / p.name).read_bytes()
    ]
    assert not changed, (
        "run `python book/figures/make_figures.py` and commit the result: "
        f"{changed} differ"
    )
    for path in written:
        svg = path.read_text()
        assert "<dc:date>" not in svg and "<dc:title>" in svg, (
            f"{path.name}: a date, or no title"
        )


def _figures_in(text: str) -> list[tuple[str, str]]:
    """(path, options) of every MyST figure or image directive in a markdown text."""
    return re.findall(
        r"^(?:`{3,}|:{3,})\{(?:figure|image)\}\s+(\S+)\s*\n((?::\w+:.*\n)*)", text, re.M
    )


def _markdown_sources():
    for notebook in CHAPTERS:
        nb = nbformat.read(notebook, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                yield notebook, cell.source
    for page in sorted((ROOT / "book").glob("*.md")):
        yield page, page.read_text()


def test_every_figure_exists_and_has_alt_text():
    found = 0
    for source, text in _markdown_sources():
        for target, options in _figures_in(text):
            found += 1
            assert (source.parent / target).resolve().is_file(), (
                f"{source.name}: no file {target}"
            )
            alt = re.search(r"^:alt:\s*(.+)$", options, re.M)
            assert alt and len(alt.group(1).split()) >= 5, (
                f"{source.name}: {target} needs alt text"
            )
    assert found >= 1, "no chapter shows a diagram"
    shown = {
        Path(target).name
        for _, text in _markdown_sources()
        for target, _ in _figures_in(text)
    }
    assert "figure1_overview.svg" in shown, (
        "chapter 1 does not show the redrawn Figure 1"
    )


# --------------------------------------------------------------------------------------
# The built site, in a real browser.
# --------------------------------------------------------------------------------------


def _unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the built-site tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def chromium():
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    _unavailable("headless Chromium not found (Debian: apt-get install chromium)")


@pytest.fixture(scope="module")
def site():
    if not (SITE / "index.html").is_file():
        _unavailable(
            f"the book is not built: {SITE} is missing; run `jupyter-book "
            "build . -W -n --keep-going`"
        )
    return SITE


@pytest.fixture(scope="module")
def render(browsed):
    """page (relative to the site) -> its DOM after JavaScript ran, as parsed HTML."""
    from bs4 import BeautifulSoup  # ships with the book's theme (pydata-sphinx-theme)

    @functools.cache
    def parsed(page: str):
        return BeautifulSoup(browsed(page)[0], "html.parser")

    return parsed


def _code_cells(nb):
    def shown(cell, part):
        tags = set(cell.metadata.get("tags", []))
        return not tags & {"remove-cell", f"remove-{part}"}

    cells = [c for c in nb.cells if c.cell_type == "code"]
    inputs = [c for c in cells if shown(c, "input")]
    outputs = [c for c in cells if c.outputs and shown(c, "output")]
    return inputs, outputs


def _normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _text_outputs(cell) -> list[str]:
    texts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            texts.append(output.text)
        elif output.output_type in {"execute_result", "display_data"}:
            data = output.get("data", {})
            if not (
                {
                    "image/png",
                    "image/jpeg",
                    "image/svg+xml",
                    "text/markdown",
                    "text/html",
                }
                & set(data)
            ):
                texts.append(data.get("text/plain", ""))
    return [t for t in texts if t.strip()]


def _untypeset_math(page) -> list[str]:
    return [
        m.get_text()[:80] for m in page.select(".math") if not m.find("mjx-container")
    ]


def _images_in_outputs(page, site_page: Path) -> list[Path]:
    images = []
    for img in page.select(".cell_output img"):
        src = img.get("src", "")
        assert src and not urlsplit(src).scheme, (
            f"figure not served by the book: {src[:80]}"
        )
        images.append((site_page.parent / unquote(urlsplit(src).path)).resolve())
    return images


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_page_shows_the_chapters_code(notebook, render):
    page = render(f"chapters/{notebook.stem}.html")
    inputs, _ = _code_cells(nbformat.read(notebook, as_version=4))
    shown = page.select("div.cell_input")
    assert len(shown) == len(inputs) > 0, (
        f"{len(inputs)} code cells, {len(shown)} shown on the page"
    )
    for cell, block in zip(inputs, shown):
        # the highlighted source, without the copy button's label
        code = block.find("pre")
        assert code is not None and _normalise(code.get_text()) == _normalise(
            cell.source
        ), f"code cell {cell.get('id')} is not shown as stored"
        # folded behind a toggle
        if {"hide-input", "hide-cell"} & set(cell.metadata.get("tags", [])):
            fold = block.find_parent("details")
            assert fold is not None and not fold.has_attr("open"), (
                f"cell {cell.get('id')} is not folded"
            )
        # a solution folds its input and its output
        if "solution" in cell.metadata.get("tags", []):
            fold = block.find_parent("details")
            assert fold is not None and "hide-cell" in cell.metadata.get("tags", []), (
                f"solution cell {cell.get('id')} is not tagged hide-cell (run "
                "tools/exercises.py)"
            )


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_page_shows_the_stored_outputs_and_figures(notebook, render, site):
    page = render(f"chapters/{notebook.stem}.html")
    nb = nbformat.read(notebook, as_version=4)
    _, with_outputs = _code_cells(nb)
    shown = page.select("div.cell_output")
    assert len(shown) == len(with_outputs) > 0, (
        f"{len(with_outputs)} cells with outputs, {len(shown)} shown"
    )
    text = _normalise(page.get_text())
    for cell in with_outputs:
        for stored in _text_outputs(cell):
            first_line = next(
                line.strip() for line in stored.splitlines() if line.strip()
            )
            assert first_line in text, (
                f"output of cell {cell.get('id')} not on the page: {first_line!r}"
            )

    stored_tables = sum(
        bool(
            re.search(
                r"^\s*\|\s*:?-{3,}", o.get("data", {}).get("text/markdown", ""), re.M
            )
        )
        for c in with_outputs
        for o in c.outputs
    )
    tables = page.select(".cell_output table")
    assert len(tables) >= stored_tables, (
        f"{stored_tables} Markdown tables stored, {len(tables)} rendered as tables"
    )

    stored_figures = sum(
        "image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {})
        for c in with_outputs
        for o in c.outputs
    )
    images = _images_in_outputs(page, site / "chapters" / f"{notebook.stem}.html")
    assert stored_figures >= 1, f"{notebook.name} stores no figure"
    assert len(images) >= stored_figures, (
        f"{stored_figures} figures stored, {len(images)} images on the page"
    )
    for image in images:
        assert image.is_file() and image.stat().st_size > 0, (
            f"figure file missing: {image}"
        )


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_page_typesets_its_math(notebook, render):
    page = render(f"chapters/{notebook.stem}.html")
    nb = nbformat.read(notebook, as_version=4)
    has_math = any(
        re.search(r"\$[^$\n]+\$", c.source)
        for c in nb.cells
        if c.cell_type == "markdown"
    )
    assert not _untypeset_math(page), f"math left as TeX: {_untypeset_math(page)[:3]}"
    if has_math:
        assert page.select(".math mjx-container svg"), (
            "the chapter has math, but MathJax typeset none"
        )


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_page_opens_this_notebook_in_colab(notebook, render):
    page = render(f"chapters/{notebook.stem}.html")
    links = [
        a["href"] for a in page.select("a[href]") if a["href"].startswith(f"{COLAB}/")
    ]
    assert links, "no Colab link on the page"
    assert set(links) == {_colab_url(notebook)}, (
        f"Colab links on the page: {sorted(set(links))}"
    )
    badge = page.select(
        f'article a[href="{_colab_url(notebook)}"] '
        f'img[src="{COLAB}/assets/colab-badge.svg"]'
    )
    # The theme's launch button (Bootstrap moves its title into data-bs-original-title
    # once JS ran).
    launch = [
        a
        for a in page.select(f'a[href="{_colab_url(notebook)}"]')
        if "Launch on Colab"
        in (a.get("title", ""), a.get("data-bs-original-title", ""))
    ]
    assert badge, "the badge is not rendered as a link around the Colab image"
    assert launch, "the theme's 'Launch on Colab' button is missing"


def test_front_matter_renders_offline(render):
    notation = render("book/notation.html")
    assert len(notation.select(".math mjx-container svg")) >= 10, (
        "notation page: math not typeset"
    )
    assert not _untypeset_math(notation)
    for page in ("book/intro.html", "book/notation.html"):
        scripts = [s["src"] for s in render(page).select("script[src]")]
        assert not [s for s in scripts if re.match(r"(https?:)?//", s)], (
            f"{page} loads remote scripts"
        )
    bibliography = render("book/bibliography.html").get_text().lower()
    assert (
        "learning transferable visual models from natural language supervision"
        in bibliography
    )
    citations = [
        a["href"]
        for a in render("book/intro.html").select("a[href]")
        if "bibliography.html#" in a["href"]
    ]
    assert citations, "the introduction's citations do not link to the bibliography"


# --------------------------------------------------------------------------------------
# One browser pass per page: the site is served over HTTP on the loopback address, and
# a script added to each page as it is served measures what a reader sees (solutions
# folded until opened, every image loaded, code within the column of a laptop-sized
# window) before the DOM is dumped for the tests above.
# --------------------------------------------------------------------------------------

_PROBE = r"""<script>
window.addEventListener("load", () => setTimeout(async () => {
  const shown = (el) =>
    (el.checkVisibility ? el.checkVisibility() : el.getClientRects().length > 0);
  const result = {images: [], solutions: [], overflowing: []};
  // Code cells (visible ones: solutions are still folded) whose longest line
  // needs sideways scrolling.
  for (const pre of document.querySelectorAll("div.cell div.cell_input pre")) {
    if (pre.clientWidth > 0 && pre.scrollWidth > pre.clientWidth + 1) {
      const lines = pre.innerText.split("\n");
      const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), "");
      result.overflowing.push(longest);
    }
  }
  const settled = (img) => img.complete ? Promise.resolve() : new Promise((resolve) => {
    img.addEventListener("load", resolve, {once: true});
    img.addEventListener("error", resolve, {once: true});
    img.loading = "eager";  // a lazy image below the fold loads now
    setTimeout(resolve, 5000);
  });
  for (const img of Array.from(document.images)) {
    await settled(img);  // a broken image ends up complete with naturalWidth 0
    const ok = img.complete && img.naturalWidth > 0;
    result.images.push({src: img.getAttribute("src"), ok: ok});
  }
  const folds = document.querySelectorAll("div.cell.tag_solution, details.solution");
  for (const item of folds) {
    const prose = item.matches("details");
    const fold = prose ? item : item.querySelector("details");
    const parts = prose
      ? Array.from(item.children).filter((el) => el.tagName !== "SUMMARY")
      : Array.from(item.querySelectorAll(".cell_input, .cell_output"));
    const entry = {
      kind: prose ? "prose" : "code", parts: parts.length,
      open_before: !!(fold && fold.open), before: parts.map(shown),
      label: fold ? fold.querySelector("summary").innerText : "",
    };
    if (fold) {
      fold.querySelector("summary").click();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    entry.after = parts.map(shown);
    if (fold) {  // folded again, so the DOM dumped for the other tests is as served
      fold.querySelector("summary").click();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    result.solutions.push(entry);
  }
  const out = document.createElement("pre");
  out.id = "probe-result";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
}, 300));
</script>"""


class _ProbingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the site; ``page.html?probe`` comes with the probe script added before
    ``</body>``."""

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if query != "probe" or not path.endswith(".html"):
            return super().do_GET()
        html = Path(self.translate_path(path)).read_text(encoding="utf-8")
        body = html.replace("</body>", _PROBE + "</body>", 1).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _book_pages() -> list[str]:
    return [f"{f}.html" for f in _toc_files() if f.startswith("book/")]


PROBED_PAGES = [f"chapters/{p.stem}.html" for p in CHAPTERS] + _book_pages()


@pytest.fixture(scope="module")
def served(site):
    handler = functools.partial(_ProbingHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _browse(
    chromium, profile: Path, url: str, *extra: str
) -> subprocess.CompletedProcess:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        # Nothing but the loopback server resolves: whatever renders, rendered offline.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--window-size=1280,1600",
        "--virtual-time-budget=15000",
        *extra,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def browsed(chromium, served, tmp_path_factory):
    """page -> (its DOM after JavaScript ran and the probe finished, the probe's
    measurements): one headless Chromium pass per page, served on the loopback
    address, every other host unreachable, so whatever renders, rendered offline."""
    from bs4 import BeautifulSoup

    profiles = tmp_path_factory.mktemp("chromium")

    def run(page: str) -> tuple[str, dict]:
        assert (SITE / page).is_file(), f"{page} was not built; rebuild the book"
        result = _browse(
            chromium,
            profiles / re.sub(r"\W", "_", page),
            f"{served}/{page}?probe",
            "--dump-dom",
        )
        found = BeautifulSoup(result.stdout, "html.parser").find(id="probe-result")
        assert found is not None, (
            f"the probe did not finish on {page}: {result.stderr[-1500:]}"
        )
        return result.stdout, json.loads(found.get_text())

    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        results = dict(zip(PROBED_PAGES, pool.map(run, PROBED_PAGES)))
    # for a pull request's description: the top of two chapters, as a reader sees them
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        for notebook in CHAPTERS[:2]:
            target = Path(SCREENSHOTS) / f"{notebook.stem}.png"
            _browse(
                chromium,
                profiles / f"shot_{notebook.stem}",
                f"{served}/chapters/{notebook.stem}.html",
                f"--screenshot={target}",
                "--window-size=1280,2400",
                "--hide-scrollbars",
            )

    @functools.cache
    def page(name: str) -> tuple[str, dict]:
        return results[name] if name in results else run(name)

    return page


@pytest.fixture(scope="module")
def probe(browsed):
    """page -> {"images": [{src, ok}], "solutions": [{kind, before, after, ...}],
    "overflowing": [...]} measured in the browser."""
    return {page: browsed(page)[1] for page in PROBED_PAGES}


@pytest.mark.parametrize("page", PROBED_PAGES)
def test_every_image_on_the_page_loads(page, probe):
    images = probe[page]["images"]
    # The one remote image is the Colab badge (the browser is offline here; tests above
    # check its link).
    remote = {i["src"] for i in images if urlsplit(i["src"]).scheme}
    assert remote <= {f"{COLAB}/assets/colab-badge.svg"}, (
        f"{page}: remote images {sorted(remote)}"
    )
    local = [i for i in images if not urlsplit(i["src"]).scheme]
    broken = [i["src"] for i in local if not i["ok"]]
    assert not broken, f"{page}: images that do not load: {broken}"
    if page.startswith("chapters/"):
        assert local, f"{page} shows no image at all"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_code_fits_the_column_without_scrolling_in_a_laptop_window(notebook, probe):
    """At 1280 px, between the two sidebars, no code cell needs a sideways scroll
    (book/_static/custom.css)."""
    wide = probe[f"chapters/{notebook.stem}.html"]["overflowing"]
    assert not wide, (
        f"{notebook.name}: code cells wider than the column at 1280 px, e.g. {wide[:3]}"
    )


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_solutions_are_hidden_until_opened(notebook, probe):
    nb = nbformat.read(notebook, as_version=4)
    solutions = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    found = probe[f"chapters/{notebook.stem}.html"]["solutions"]
    expected = sorted(c.cell_type.replace("markdown", "prose") for c in solutions)
    assert sorted(s["kind"] for s in found) == expected, (
        f"{len(solutions)} solution cells in the notebook, {len(found)} folded "
        "solutions on the page"
    )
    assert found, f"{notebook.name}: no solutions on the page"
    for entry in found:
        assert entry["parts"] and not entry["open_before"], (
            f"{entry['label']!r}: not folded: {entry}"
        )
        assert not any(entry["before"]), (
            f"{entry['label']!r}: visible before its toggle was opened"
        )
        assert all(entry["after"]), (
            f"{entry['label']!r}: still hidden after its toggle was clicked"
        )
    code = [entry for entry in found if entry["kind"] == "code"]
    with_output = [c for c in solutions if c.cell_type == "code" and c.outputs]
    assert sum(entry["parts"] == 2 for entry in code) >= len(with_output), (
        "solution outputs not folded"
    )

"""The book: one repository address everywhere, a complete table of contents, and the built site as a
reader sees it.

The last group opens the pages of ``_build/html`` in headless Chromium with every host name unresolvable,
so JavaScript runs (MathJax typesets the math from the book's own copy) and nothing can come from the
network. Build the site first with ``jupyter-book build . -W -n --keep-going``; without a build (or without
Chromium) those tests skip, and under ``CI=true`` they fail instead.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_DIR = ROOT / "chapters"
CHAPTERS = sorted(CHAPTER_DIR.glob("[0-9][0-9]_*.ipynb"))
SITE = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))  # the built site (override: BOOK_HTML)
COLAB = "https://colab.research.google.com"
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def _repository() -> tuple[str, str, str]:
    """(url, "owner/name", branch) from _config.yml, the one place that names the repository."""
    repo = _config()["repository"]
    url = repo["url"].rstrip("/")
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+)", url)
    assert match, f"_config.yml repository.url should be https://github.com/<owner>/<name>, got {url!r}"
    return url, match.group(1), repo["branch"]


def _colab_url(notebook: Path) -> str:
    _, slug, branch = _repository()
    return f"{COLAB}/github/{slug}/blob/{branch}/{notebook.relative_to(ROOT).as_posix()}"


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


# --------------------------------------------------------------------------------------------------
# Sources: the repository address, the badges, the install cells, the table of contents.
# --------------------------------------------------------------------------------------------------


def test_there_are_chapters():
    assert CHAPTERS, f"no chapter notebooks (NN_slug.ipynb) in {CHAPTER_DIR}"


def test_config_names_one_repository_and_a_colab_launcher():
    url, _, branch = _repository()
    assert branch, "_config.yml repository.branch is empty"
    assert _config()["launch_buttons"]["colab_url"].rstrip("/") == COLAB


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_badge_opens_this_notebook_in_colab(notebook):
    nb = nbformat.read(notebook, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown", f"{notebook.name}: the first cell must be the markdown badge cell"
    badges = re.findall(r"\[!\[Open In Colab\]\(([^)\s]+)\)\]\(([^)\s]+)\)", first.source)
    assert len(badges) == 1, f"{notebook.name}: expected one 'Open In Colab' badge in the first cell"
    image, target = badges[0]
    assert image == f"{COLAB}/assets/colab-badge.svg"
    assert target == _colab_url(notebook), f"{notebook.name}: the badge opens {target}"
    # No other Colab link anywhere in the notebook may open a different file or repository.
    for cell in nb.cells:
        for link in re.findall(rf"{re.escape(COLAB)}/github/[^)\s\"'>]+", cell.source):
            assert link == _colab_url(notebook), f"{notebook.name}: stray Colab link {link}"


def _install_urls(source: str) -> list[str]:
    """The git+ URLs that the cell would pip-install, each checked to sit under the Colab-only guard."""
    tree = ast.parse(source)
    guarded = []
    for node in tree.body:
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Constant) and node.test.left.value == "google.colab"
                and isinstance(node.test.ops[0], ast.In) and ast.unparse(node.test.comparators[0]) == "sys.modules"):
            guarded += [n.value for n in ast.walk(node)
                        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("git+")]
    everywhere = [n.value for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("git+")]
    assert everywhere == guarded, "an install outside the `if \"google.colab\" in sys.modules:` guard"
    return guarded


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_install_cell_installs_this_repository_only_in_colab(notebook):
    nb = nbformat.read(notebook, as_version=4)
    second = nb.cells[1]
    assert second.cell_type == "code", f"{notebook.name}: the second cell must be the Colab install cell"
    url, _, branch = _repository()
    urls = _install_urls(second.source)
    assert urls, f"{notebook.name}: the second cell installs nothing under the Colab guard"
    allowed = {f"git+{url}", f"git+{url}.git", f"git+{url}@{branch}", f"git+{url}.git@{branch}"}
    assert set(urls) <= allowed, f"{notebook.name}: installs {urls}, but _config.yml names {url}"
    # Nothing else in the notebook may install from another address.
    for cell in nb.cells[2:]:
        if cell.cell_type == "code":
            for other in re.findall(r"git\+https?://[^\s\"']+", cell.source):
                assert other in allowed, f"{notebook.name}: installs from {other}"


def test_toc_lists_every_chapter_notebook():
    listed = {f for f in _toc_files() if f.startswith("chapters/")}
    on_disk = {p.relative_to(ROOT).with_suffix("").as_posix() for p in CHAPTERS}
    assert not on_disk - listed, f"chapters missing from _toc.yml: {sorted(on_disk - listed)}"


def test_toc_entries_exist():
    missing = [f for f in _toc_files()
               if not any((ROOT / f).with_suffix(s).exists() for s in (".md", ".ipynb"))
               and not (ROOT / f).exists()]
    assert not missing, f"_toc.yml lists files that do not exist (the build would fail): {missing}"


def test_math_is_served_from_the_book():
    sphinx = _config()["sphinx"]["config"]
    path = sphinx["mathjax_path"]
    assert not re.match(r"(https?:)?//", path), f"mathjax_path points at the network: {path}"
    static = [ROOT / p for p in sphinx["html_static_path"]]
    found = [d / path for d in static if (d / path).is_file()]
    assert found, f"mathjax_path {path!r} is in none of the static folders {sphinx['html_static_path']}"
    assert found[0].stat().st_size > 500_000, f"{found[0]} is too small to be MathJax"
    assert (found[0].parent / "LICENSE").is_file(), "MathJax's Apache-2.0 licence must ship with it"


# --------------------------------------------------------------------------------------------------
# The built site, in a real browser.
# --------------------------------------------------------------------------------------------------


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
        _unavailable(f"the book is not built: {SITE} is missing; run `jupyter-book build . -W -n --keep-going`")
    return SITE


@pytest.fixture(scope="module")
def render(chromium, site, tmp_path_factory):
    """page (relative to the site) -> its DOM after JavaScript ran, as parsed HTML."""
    from bs4 import BeautifulSoup  # ships with the book's theme (pydata-sphinx-theme)

    profiles = tmp_path_factory.mktemp("chromium")

    def dump(page: str) -> str:
        path = site / page
        assert path.is_file(), f"{path} was not built; rebuild the book"
        profile = profiles / re.sub(r"\W", "_", page)
        command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
                   # Every host name fails to resolve: whatever renders, rendered offline.
                   "--host-resolver-rules=MAP * ~NOTFOUND",
                   "--virtual-time-budget=10000", "--dump-dom", path.as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and "<html" in result.stdout, (
            f"chromium failed on {page}: {result.stderr[-2000:]}")
        return result.stdout

    pages = [p.relative_to(site).as_posix() for p in sorted(site.glob("chapters/*.html"))]
    pages += ["book/intro.html", "book/notation.html", "book/bibliography.html"]
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        dumped = dict(zip(pages, pool.map(dump, pages)))

    @lru_cache(maxsize=None)
    def parsed(page: str):
        return BeautifulSoup(dumped[page] if page in dumped else dump(page), "html.parser")

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
            if not ({"image/png", "image/jpeg", "image/svg+xml", "text/markdown", "text/html"} & set(data)):
                texts.append(data.get("text/plain", ""))
    return [t for t in texts if t.strip()]


def _untypeset_math(page) -> list[str]:
    return [m.get_text()[:80] for m in page.select(".math") if not m.find("mjx-container")]


def _images_in_outputs(page, site_page: Path) -> list[Path]:
    images = []
    for img in page.select(".cell_output img"):
        src = img.get("src", "")
        assert src and not urlsplit(src).scheme, f"figure not served by the book: {src[:80]}"
        images.append((site_page.parent / unquote(urlsplit(src).path)).resolve())
    return images


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_page_shows_the_chapters_code(notebook, render):
    page = render(f"chapters/{notebook.stem}.html")
    inputs, _ = _code_cells(nbformat.read(notebook, as_version=4))
    shown = page.select("div.cell_input")
    assert len(shown) == len(inputs) > 0, f"{len(inputs)} code cells, {len(shown)} shown on the page"
    for cell, block in zip(inputs, shown):
        code = block.find("pre")  # the highlighted source, without the copy button's label
        assert code is not None and _normalise(code.get_text()) == _normalise(cell.source), (
            f"code cell {cell.get('id')} is not shown as stored")
        if "hide-input" in cell.metadata.get("tags", []):  # exercise solutions: folded behind a toggle
            fold = block.find_parent("details")
            assert fold is not None and not fold.has_attr("open"), f"cell {cell.get('id')} is not folded"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_page_shows_the_stored_outputs_and_figures(notebook, render, site):
    page = render(f"chapters/{notebook.stem}.html")
    nb = nbformat.read(notebook, as_version=4)
    _, with_outputs = _code_cells(nb)
    shown = page.select("div.cell_output")
    assert len(shown) == len(with_outputs) > 0, f"{len(with_outputs)} cells with outputs, {len(shown)} shown"
    text = _normalise(page.get_text())
    for cell in with_outputs:
        for stored in _text_outputs(cell):
            first_line = next(line.strip() for line in stored.splitlines() if line.strip())
            assert first_line in text, f"output of cell {cell.get('id')} not on the page: {first_line!r}"

    stored_tables = sum(bool(re.search(r"^\s*\|\s*:?-{3,}", o.get("data", {}).get("text/markdown", ""), re.M))
                        for c in with_outputs for o in c.outputs)
    tables = page.select(".cell_output table")
    assert len(tables) >= stored_tables, f"{stored_tables} Markdown tables stored, {len(tables)} rendered as tables"

    stored_figures = sum("image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {})
                         for c in with_outputs for o in c.outputs)
    images = _images_in_outputs(page, site / "chapters" / f"{notebook.stem}.html")
    assert stored_figures >= 1, f"{notebook.name} stores no figure"
    assert len(images) >= stored_figures, f"{stored_figures} figures stored, {len(images)} images on the page"
    for image in images:
        assert image.is_file() and image.stat().st_size > 0, f"figure file missing: {image}"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_page_typesets_its_math(notebook, render):
    page = render(f"chapters/{notebook.stem}.html")
    nb = nbformat.read(notebook, as_version=4)
    has_math = any(re.search(r"\$[^$\n]+\$", c.source) for c in nb.cells if c.cell_type == "markdown")
    assert not _untypeset_math(page), f"math left as TeX: {_untypeset_math(page)[:3]}"
    if has_math:
        assert page.select(".math mjx-container svg"), "the chapter has math, but MathJax typeset none"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=_ids(CHAPTERS))
def test_page_opens_this_notebook_in_colab(notebook, render):
    page = render(f"chapters/{notebook.stem}.html")
    links = [a["href"] for a in page.select("a[href]") if a["href"].startswith(f"{COLAB}/")]
    assert links, "no Colab link on the page"
    assert set(links) == {_colab_url(notebook)}, f"Colab links on the page: {sorted(set(links))}"
    badge = page.select(f'article a[href="{_colab_url(notebook)}"] img[src="{COLAB}/assets/colab-badge.svg"]')
    # The theme's launch button (Bootstrap moves its title into data-bs-original-title once JS ran).
    launch = [a for a in page.select(f'a[href="{_colab_url(notebook)}"]')
              if "Launch on Colab" in (a.get("title", ""), a.get("data-bs-original-title", ""))]
    assert badge, "the badge is not rendered as a link around the Colab image"
    assert launch, "the theme's 'Launch on Colab' button is missing"


def test_front_matter_renders_offline(render):
    notation = render("book/notation.html")
    assert len(notation.select(".math mjx-container svg")) >= 10, "notation page: math not typeset"
    assert not _untypeset_math(notation)
    for page in ("book/intro.html", "book/notation.html"):
        scripts = [s["src"] for s in render(page).select("script[src]")]
        assert not [s for s in scripts if re.match(r"(https?:)?//", s)], f"{page} loads remote scripts"
    bibliography = render("book/bibliography.html").get_text().lower()
    assert "learning transferable visual models from natural language supervision" in bibliography
    citations = [a["href"] for a in render("book/intro.html").select("a[href]")
                 if "bibliography.html#" in a["href"]]
    assert citations, "the introduction's citations do not link to the bibliography"

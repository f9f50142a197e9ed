"""The README stays short and links the docs; every link holds; the settings table is current."""

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from driftline.settings_table import BEGIN_MARKER, END_MARKER, settings_table, table_in

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
README_LIMIT_BYTES = 8 * 1024

# A Markdown link or image: [text](target) or ![alt](target), the target up to a space or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def links(path: Path) -> list[str]:
    """The link and image targets of a Markdown file, outside fenced code."""
    return LINK.findall(FENCE.sub("", path.read_text()))


def relative(target: str) -> bool:
    """Whether a link target is a path in the repository, not a URL or an anchor alone."""
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings, as GitHub makes them."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", FENCE.sub("", path.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_the_readme_is_under_8_kb() -> None:
    assert len(README.read_bytes()) < README_LIMIT_BYTES


def test_the_readme_links_every_docs_page_and_each_exists() -> None:
    linked = {
        (ROOT / unquote(target.split("#")[0])).resolve()
        for target in links(README)
        if target.startswith("docs/") and target.split("#")[0].endswith(".md")
    }
    assert linked, "the README links no docs page"
    assert all(page.is_file() for page in linked), sorted(map(str, linked))
    assert {page.resolve() for page in PAGES} <= linked


def test_the_index_lists_every_page() -> None:
    listed = {target.split("#")[0] for target in links(DOCS / "index.md")}
    assert {page.name for page in PAGES if page.name != "index.md"} <= listed


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda path: path.name)
def test_every_relative_link_and_image_points_to_a_file(path: Path) -> None:
    broken = [
        target
        for target in links(path)
        if relative(target) and not (path.parent / unquote(target.split("#")[0])).resolve().exists()
    ]
    assert broken == []


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda path: path.name)
def test_every_anchor_names_a_heading(path: Path) -> None:
    missing = []
    for target in links(path):
        if not relative(target) and not target.startswith("#"):
            continue
        file, _, anchor = target.partition("#")
        linked = (path.parent / unquote(file)).resolve() if file else path
        if anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            missing.append(target)
    assert missing == []


@pytest.mark.parametrize("path", PAGES, ids=lambda path: path.name)
def test_each_page_starts_with_a_title_and_a_summary(path: Path) -> None:
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# ")
    assert lines[1] == ""
    assert lines[2].strip()
    assert not lines[2].startswith("#")


def test_the_readme_shows_both_screenshots() -> None:
    images = [target for target in links(README) if target.endswith(".png")]
    assert images == ["docs/images/status-page.png", "docs/images/report.png"]


def test_the_settings_table_is_current() -> None:
    text = (DOCS / "operations.md").read_text()
    assert text.count(BEGIN_MARKER) == 1
    assert text.count(END_MARKER) == 1
    assert table_in(text) == settings_table(), (
        "the settings table is out of date: run "
        "python -m driftline.settings_table --update docs/operations.md"
    )

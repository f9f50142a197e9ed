"""HTML read back in tests: every element with its attributes, and a check it is well nested."""

from html.parser import HTMLParser


class Elements(HTMLParser):
    """Every start tag with its attributes; fails on a closing tag that closes nothing open."""

    VOID = frozenset({"meta", "br", "img", "input", "link", "hr", "rect", "line", "circle"})

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        assert self.open, f"</{tag}> closes nothing"
        assert self.open.pop() == tag, f"</{tag}> closes another element"


def elements(document: str) -> Elements:
    """The elements of ``document``, failing if any is left open or closed out of turn."""
    parser = Elements()
    parser.feed(document)
    assert not parser.open, parser.open
    return parser

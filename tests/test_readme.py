"""The README and the docs must keep telling the truth about the commands and settings."""

import re
from pathlib import Path

from driftline.streams.settings import HARNESS_ENVIRONMENT, environment_names, secret_file_names

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
VARIABLE = re.compile(r"`(DRIFTLINE_[A-Z_]+)`")


def documented(text: str) -> set[str]:
    """The ``DRIFTLINE_*`` variables a text names in code spans."""
    return set(VARIABLE.findall(text))


def test_the_first_lines_give_the_demo_and_test_commands_and_ci_runs_the_latter() -> None:
    first_lines = README.splitlines()[:4]
    assert any(line.strip().startswith("make demo") for line in first_lines)
    assert any(line.strip().startswith("make test") for line in first_lines)
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), re.M)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M)
    assert re.search(r"^test:", makefile, re.M)


def test_every_setting_is_documented_and_no_other() -> None:
    everywhere = documented(README)
    for page in sorted(DOCS.glob("*.md")):
        everywhere |= documented(page.read_text())
    settings = set(environment_names()) | set(secret_file_names())
    assert everywhere == settings | HARNESS_ENVIRONMENT
    # Each where a reader looks for it: the worker's settings with the others, in the
    # operations page; what the broker harness and the tests read, in the developing page.
    assert settings <= documented((DOCS / "operations.md").read_text())
    assert documented((DOCS / "developing.md").read_text()) >= HARNESS_ENVIRONMENT

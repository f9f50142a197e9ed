"""Progress of long work on a terminal: a count, its rate and the time taken so far.

A command that reads a large file shows how far it got, so that a person at
a terminal can tell a slow run from a stuck one. When its output goes to a
pipe or a file, nothing is drawn: a log, or a script reading standard
error, gets no redrawn lines. ``advance`` then does nothing at all, so a
caller calls it once a batch without checking first.

>>> import io
>>> piped = io.StringIO()
>>> with shown_progress("reading", total=10, stream=piped) as advance:
...     advance(10)
>>> piped.getvalue()
''
"""

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TimeElapsedColumn,
)
from rich.table import Column
from rich.text import Text


@contextmanager
def shown_progress(
    description: str,
    *,
    total: int | None = None,
    unit: str = "rows",
    stream: TextIO | None = None,
    enabled: bool | None = None,
) -> Iterator[Callable[[int], None]]:
    """Show the progress of the work done inside the block; yields ``advance(n)``.

    ``advance(n)`` counts ``n`` more ``unit`` done. The line drawn on
    ``stream`` (standard error by default) holds the description, a bar when
    ``total`` is known, the count (of the total), the mean rate per second
    and the time elapsed; it stays, with the final figures, after the
    block. It is drawn only when ``stream`` is a terminal, or always with
    ``enabled=True`` (never with ``enabled=False``).
    """
    out = sys.stderr if stream is None else stream
    if not (is_terminal(out) if enabled is None else enabled):
        yield _ignore
        return
    columns = [
        DescriptionColumn(),
        *([BarColumn(bar_width=20)] if total is not None else []),
        CountColumn(unit),
        TimeElapsedColumn(),
    ]
    console = Console(file=out, force_terminal=True)
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(description, total=total, busy=None)
        started = progress.get_time()

        def advance(n: int) -> None:
            progress.update(task, advance=n, busy=progress.get_time() - started)

        yield advance


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal; a closed stream, or one that cannot tell, is not.

    >>> import io
    >>> is_terminal(io.StringIO())
    False
    """
    isatty = getattr(stream, "isatty", None)
    if isatty is None:
        return False
    try:
        return bool(isatty())
    except ValueError:  # a closed file
        return False


class DescriptionColumn(ProgressColumn):
    """The description, cut short with an ellipsis on a narrow terminal: never the figures."""

    def render(self, task: Task) -> Text:
        # The column may wrap, so that the table narrows it first; the text itself never does.
        return Text(
            task.description, style="progress.description", no_wrap=True, overflow="ellipsis"
        )


class CountColumn(ProgressColumn):
    """The count done (of the total, when known) and its mean rate per second.

    The mean rate from the start to the last ``advance``, not rich's recent
    one: a batch reader advances in steps, and the rate over the last few
    steps jumps with each. Nor does it fall while the work after the last
    step (building what was read) goes on in the same block.
    """

    def __init__(self, unit: str) -> None:
        super().__init__(table_column=Column(no_wrap=True))
        self.unit = unit

    def render(self, task: Task) -> Text:
        return Text(count_text(task.completed, task.total, self.unit, task.fields["busy"]))


def count_text(completed: float, total: float | None, unit: str, seconds: float | None) -> str:
    """The count, of the total when known, and its rate over ``seconds`` (a dash without any).

    >>> count_text(1234, 1_000_000, "rows", 2.0)
    '1,234/1,000,000 rows, 617/s'
    >>> count_text(12, None, "rows", None)
    '12 rows, -/s'
    """
    count = f"{completed:,.0f}" if total is None else f"{completed:,.0f}/{total:,.0f}"
    rate = f"{completed / seconds:,.0f}" if seconds else "-"
    return f"{count} {unit}, {rate}/s"


def _ignore(n: int) -> None:
    """``advance`` when nothing is drawn."""

"""Every public name of the face (client, replay, report) and every command shows an example,
and docs/api.md names each of them."""

import inspect
import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import typer
import typer.core
import typer.main
from cli_commands import cli_commands

from driftline import client, replay, report
from driftline.streams.settings import Settings

API_PAGE = Path(__file__).resolve().parents[2] / "docs" / "api.md"
MODULES = [client, replay, report]

# A row of a module's table: [`Name`](../driftline/module.py), and of the commands' table.
NAME_ROW = re.compile(r"^\| \[`([\w.]+)`\]\(\.\./driftline/(\w+)\.py\) \|", re.M)
COMMAND_ROW = re.compile(r"^\| `driftline ([a-z -]+)` \|", re.M)
EXAMPLE = re.compile(r"^Example: (.+)$", re.M)


def public_names(module: ModuleType) -> Iterator[tuple[str, Callable[..., object] | property]]:
    """The public classes and functions defined in ``module``, and the public methods and
    properties of its classes, by name (``Publisher.flush``)."""
    for name, value in vars(module).items():
        if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(value):
            yield name, value
            for member_name, member in vars(value).items():
                if member_name.startswith("_"):
                    continue
                if isinstance(member, staticmethod | classmethod):
                    member = member.__func__
                if inspect.isfunction(member) or isinstance(member, property):
                    yield f"{value.__name__}.{member_name}", member
        elif inspect.isfunction(value):
            yield name, value


NAMES = [
    (module.__name__.removeprefix("driftline."), name, value)
    for module in MODULES
    for name, value in public_names(module)
]


COMMANDS = cli_commands()


def example_of(command: typer.core.TyperCommand) -> str:
    match = EXAMPLE.search(inspect.cleandoc(command.help or ""))
    assert match, "its docstring has no final 'Example: driftline ...' paragraph"
    return match[1]


def test_the_walks_find_the_face() -> None:
    names = {f"{module}.{name}" for module, name, _ in NAMES}
    assert {
        "client.Publisher",
        "client.Publisher.publish_prediction",
        "client.AlertSubscriber.poll",
        "client.PublishError",
        "replay.Replay.counters",
        "replay.Replay.feed_file",
        "replay.merged_by_event_time",
        "report.history_from_outputs",
        "report.write_pngs",
    } <= names
    assert not {"client.Alert", "report.StatusHistory"} & names  # imported, not defined there
    assert {"worker", "replay", "report", "models register", "alerts tail"} <= {
        path for path, _ in COMMANDS
    }


@pytest.mark.parametrize(("module", "name", "value"), NAMES, ids=[f"{m}.{n}" for m, n, _ in NAMES])
def test_every_public_name_has_a_docstring_with_an_example(
    module: str, name: str, value: Callable[..., object] | property
) -> None:
    doc = inspect.getdoc(value) or ""
    assert doc.strip(), f"{module}.{name} has no docstring"
    assert ">>> " in doc, f"{module}.{name}'s docstring has no example"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[path for path, _ in COMMANDS])
def test_every_command_shows_an_example_that_parses(
    path: str, command: typer.core.TyperCommand
) -> None:
    words = shlex.split(example_of(command))
    while words and "=" in words[0]:  # settings given as DRIFTLINE_* variables
        variable = words.pop(0).split("=")[0]
        assert variable.removeprefix("DRIFTLINE_").lower() in Settings.model_fields, variable
    assert words[: 1 + len(path.split())] == ["driftline", *path.split()]
    # Its arguments and options exist and take the values given (nothing runs).
    command.make_context(f"driftline {path}", words[1 + len(path.split()) :])


def test_the_api_page_lists_every_public_name_with_its_source() -> None:
    listed = set(NAME_ROW.findall(API_PAGE.read_text()))
    assert listed == {(name, module) for module, name, _ in NAMES}


def test_the_api_page_lists_every_command_with_its_example() -> None:
    text = API_PAGE.read_text()
    assert set(COMMAND_ROW.findall(text)) == {path for path, _ in COMMANDS}
    for path, command in COMMANDS:
        assert f"`{example_of(command)}`" in text, f"docs/api.md lacks the example of {path}"

"""Every command of the ``driftline`` CLI, for tests that check them all."""

import typer
import typer.core
import typer.main

from driftline import cli


def cli_commands() -> list[tuple[str, typer.core.TyperCommand]]:
    """Every command, by its path after ``driftline`` (``models register``)."""
    found = []

    def walk(command: typer.core.TyperCommand | typer.core.TyperGroup, path: str) -> None:
        if isinstance(command, typer.core.TyperGroup):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}".strip())
            return
        found.append((path, command))

    walk(typer.main.get_command(cli.app), "")
    return found

"""Every command teaches: a help text with an example (a test fails when one lacks it)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from massiva.cli import main


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path under ``group``, groups included."""
    found = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        found.append(path)
        if isinstance(command, click.Group):
            found += commands(command, path)
    return found


@pytest.mark.parametrize("path", commands(main), ids=" ".join)
def test_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])

    assert result.exit_code == 0, result.output
    command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert command.help and len(command.help.split()) >= 5, f"massiva {' '.join(path)}: no help"
    if not isinstance(command, click.Group):
        assert "Example" in result.output, f"massiva {' '.join(path)} --help has no example"


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("massiva, version ")

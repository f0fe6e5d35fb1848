"""One module per subcommand; each exposes `command` (a typer-style function)."""

from __future__ import annotations

import importlib

import typer

# (cli name, module). A module that does not exist yet is skipped, so work can land piecemeal.
COMMANDS: list[tuple[str, str]] = [
    ("gates", "harness.commands.gates"),
    ("check-patch", "harness.commands.check_patch"),
    ("apply", "harness.commands.apply"),
    ("steps", "harness.commands.steps"),
    ("run", "harness.commands.run"),
    ("demo", "harness.commands.demo"),
    ("replay", "harness.commands.replay"),
]


def register(app: typer.Typer) -> None:
    for name, module in COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        app.command(name)(mod.command)

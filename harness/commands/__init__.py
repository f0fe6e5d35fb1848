"""One module per subcommand; each exposes `command` (a typer-style function), or `app` (a
typer.Typer) for a command with subcommands (`harness cache info`)."""

from __future__ import annotations

import importlib

import typer

# (cli name, module). A module that does not exist yet is skipped, so work can land piecemeal.
COMMANDS: list[tuple[str, str]] = [
    ("gates", "harness.commands.gates"),
    ("check-patch", "harness.commands.check_patch"),
    ("apply", "harness.commands.apply"),
    ("init", "harness.commands.init"),
    ("steps", "harness.commands.steps"),
    ("run", "harness.commands.run"),
    ("demo", "harness.commands.demo"),
    ("replay", "harness.commands.replay"),
    ("runs", "harness.commands.runs"),
    ("cache", "harness.commands.cache"),
]


def register(app: typer.Typer) -> None:
    for name, module in COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        sub = getattr(mod, "app", None)
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=name)
        else:
            app.command(name)(mod.command)

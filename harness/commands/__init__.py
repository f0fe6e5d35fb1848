"""One module per subcommand; each exposes `command` (a typer-style function), or `app` (a
typer.Typer) for a command with subcommands (`harness cache info`).

A subcommand's module is imported only when that subcommand is asked for (or the command list
is shown): `harness gates` need not import the loop, the providers, Jinja and the guard.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, cast

import typer
from typer.core import TyperGroup

# (cli name, module). A module that does not exist yet is skipped, so work can land piecemeal.
COMMANDS: list[tuple[str, str]] = [
    ("gates", "harness.commands.gates"),
    ("check-patch", "harness.commands.check_patch"),
    ("apply", "harness.commands.apply"),
    ("init", "harness.commands.init"),
    ("steps", "harness.commands.steps"),
    ("run", "harness.commands.run"),
    ("demo", "harness.commands.demo"),
    ("resume", "harness.commands.resume"),
    ("replay", "harness.commands.replay"),
    ("tune", "harness.commands.tune"),
    ("runs", "harness.commands.runs"),
    ("report", "harness.commands.report"),
    ("cache", "harness.commands.cache"),
]


def _module(name: str) -> ModuleType | None:
    module = dict(COMMANDS)[name]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise


def _command(name: str, mod: ModuleType) -> Any:
    """The click command typer builds for the module, as registering it on the app would."""
    holder = typer.Typer(add_completion=False)
    sub = getattr(mod, "app", None)
    if isinstance(sub, typer.Typer):
        holder.add_typer(sub, name=name)
        return cast(Any, typer.main.get_command(holder)).commands[name]
    holder.command(name)(mod.command)
    return typer.main.get_command(holder)


class LazyCommands(TyperGroup):
    """The root group: commands registered on the app directly, then those of COMMANDS."""

    def list_commands(self, ctx: Any) -> list[str]:
        lazy = [name for name, _ in COMMANDS if self.get_command(ctx, name) is not None]
        return [*lazy, *(n for n in super().list_commands(ctx) if n not in lazy)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        if found is not None or cmd_name not in dict(COMMANDS):
            return found
        mod = _module(cmd_name)
        if mod is None:
            return None
        self.commands[cmd_name] = _command(cmd_name, mod)
        return self.commands[cmd_name]

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and self.get_command(ctx, args[0]) is None:
            # An unknown name: every command is loaded, so that "Did you mean" can name any.
            self.list_commands(ctx)
        return super().resolve_command(ctx, args)

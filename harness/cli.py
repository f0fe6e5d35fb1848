"""Command line entry point. Typed errors become exit codes here, and only here."""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from pathlib import Path

import typer

from harness import __version__
from harness.commands import register
from harness.errors import ExitCode, HarnessError

app = typer.Typer(
    name="harness",
    help=(
        "Let a language model clean up a Python codebase without letting it break or cheat "
        "anything: guarded patches, real gates, reverts of exactly the offending commits, "
        "recorded runs.\n\n"
        "Exit codes: 0 ok; 1 gate failed or patch rejected; 2 usage, I/O error or a gate "
        "that could not run; 3 regression (change reverted); 4 model provider failure; "
        "70 internal error (a bug: the traceback goes to a log file); 130 interrupted."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"harness {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    pass


register(app)


def _crash_log() -> Path:
    """Write the traceback where a bug report can pick it up; return the file."""
    fd, name = tempfile.mkstemp(prefix="harness-crash-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"harness {__version__}, python {sys.version.split()[0]}\n")
        fh.write(f"argv: {sys.argv!r}\n\n")
        fh.write(traceback.format_exc())
    return Path(name)


def main() -> None:
    try:
        app()
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        sys.exit(ExitCode.INTERRUPTED)
    except Exception as exc:
        log = _crash_log()
        print(
            f"harness: internal error: {type(exc).__name__}: {exc} (this is a bug in harness; "
            f"the traceback is in {log})",
            file=sys.stderr,
        )
        sys.exit(ExitCode.INTERNAL)

"""Command line entry point. Typed errors become exit codes here, and only here."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import NoReturn

import typer

from harness import __version__, ui
from harness.commands import LazyCommands
from harness.errors import ExitCode, HarnessError, Interrupted

app = typer.Typer(
    name="harness",
    help=(
        "Let a language model clean up a Python codebase without letting it break or cheat "
        "anything: guarded patches, real gates, reverts of exactly the offending commits, "
        "recorded runs.\n\n"
        "Exit codes: 0 ok; 1 gate failed or patch rejected; 2 usage, I/O error or a gate "
        "that could not run; 3 regression (change reverted); 4 model provider failure; "
        "5 budget ran out (resumable); 70 internal error (a bug: the traceback goes to a log "
        "file); 130 interrupted."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    # Subcommands are imported when asked for: see harness.commands.
    cls=LazyCommands,
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


def _crash_log() -> Path:
    """Write the traceback where a bug report can pick it up; return the file."""
    fd, name = tempfile.mkstemp(prefix="harness-crash-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"harness {__version__}, python {sys.version.split()[0]}\n")
        fh.write(f"argv: {sys.argv!r}\n\n")
        fh.write(traceback.format_exc())
    return Path(name)


def _wants_json(args: list[str]) -> bool:
    """Whether the user asked for JSON: read from argv, since a usage error means the
    arguments never parsed."""
    options = args[: args.index("--")] if "--" in args else args
    return "--json" in options


def _fail(message: str, code: int, *, as_json: bool, label: str = "error") -> NoReturn:
    """The one way a command ends in error: one line on stderr and, with --json, the error
    object on stdout unless the command already printed its JSON result there (stdout holds
    exactly one JSON document)."""
    print(f"harness: {label}: {message}", file=sys.stderr)
    if as_json and not ui.json_printed:
        print(
            json.dumps(
                {"error": f"{label}: {message}" if label != "error" else message, "exit_code": code}
            )
        )
    sys.exit(code)


def _usage_message(exc: typer.TyperException) -> str:
    message = " ".join(exc.format_message().split())
    path = getattr(getattr(exc, "ctx", None), "command_path", None)
    return f"{message} (see '{path} --help')" if path else message


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    as_json = _wants_json(args)
    ui.json_printed = False
    try:
        # Not standalone: click's errors reach us as exceptions instead of boxed panels, so
        # every error leaves through `_fail`.
        code = app(args=args, prog_name="harness", standalone_mode=False)
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(ExitCode.USAGE)  # `harness` alone: the help is printed already
        _fail(_usage_message(exc), ExitCode.USAGE, as_json=as_json)
    except typer.Abort:
        _fail("aborted", ExitCode.INTERRUPTED, as_json=as_json, label="interrupted")
    except Interrupted as exc:
        _fail(str(exc), exc.exit_code, as_json=as_json, label="interrupted")
    except HarnessError as exc:
        _fail(str(exc), exc.exit_code, as_json=as_json)
    except KeyboardInterrupt:
        _fail("no run was in progress", ExitCode.INTERRUPTED, as_json=as_json, label="interrupted")
    except Exception as exc:
        log = _crash_log()
        _fail(
            f"{type(exc).__name__}: {exc} (this is a bug in harness; the traceback is in {log})",
            ExitCode.INTERNAL,
            as_json=as_json,
            label="internal error",
        )
    if code == ExitCode.INTERRUPTED:
        # typer turns a KeyboardInterrupt outside a run into exit 130 without a word.
        _fail("stopped before it finished", code, as_json=as_json, label="interrupted")
    sys.exit(code or 0)

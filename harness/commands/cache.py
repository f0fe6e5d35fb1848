"""`harness cache info|clear`: where the gate result cache is, how big, and emptying it.

Exit 0 on success; 2 on a bad HARNESS_CACHE_MAX_MB or a cache that cannot be read or emptied.
"""

from __future__ import annotations

from typing import Any

import typer

from harness import ui
from harness.errors import UsageError
from harness.gates import cache

app = typer.Typer(
    name="cache",
    help="The gate result cache: `info` shows it, `clear` empties it.",
    no_args_is_help=True,
    add_completion=False,
)


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


@app.command("info")
def info(
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Location, number of entries, size and size cap of the gate result cache."""
    root = cache.cache_root()
    got = cache.info(root)
    if json_out:
        data: dict[str, Any] = {
            "location": str(got.location),
            "entries": got.results + got.mypy_caches,
            "results": got.results,
            "mypy_caches": got.mypy_caches,
            "size_bytes": got.size,
            "cap_bytes": got.cap,
        }
        ui.print_json(data)
        return
    ui.out.print(f"location     {got.location}")
    ui.out.print(f"entries      {got.results} gate results, {got.mypy_caches} mypy caches")
    ui.out.print(f"size         {_mb(got.size)} of {_mb(got.cap)} ({cache.MAX_MB_ENV})")


@app.command("clear")
def clear(
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Delete every gate result and mypy cache (the next gate run starts cold)."""
    root = cache.cache_root()
    if root.exists() and not root.is_dir():
        raise UsageError(f"cache location is not a directory: {root}")
    removed = cache.clear(root)
    # Only what was there: a gate run elsewhere may be storing new entries right now.
    left = [e for e in removed if e.path.exists()]
    if left:
        raise UsageError(f"could not remove {len(left)} cache entries, e.g. {left[0].path}")
    size = sum(e.size for e in removed)
    if json_out:
        ui.print_json({"location": str(root), "removed": len(removed), "freed_bytes": size})
        return
    ui.out.print(f"removed {len(removed)} cache entries ({_mb(size)}) from {root}")

"""Terminal output: results to stdout, progress and errors to stderr."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


def print_json(obj: Any) -> None:
    """Plain JSON on stdout (no colour codes), for --json."""
    print(json.dumps(obj, indent=2, sort_keys=False, default=str))

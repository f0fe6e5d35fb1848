"""Path globs for lanes and forbidden paths: `*` stays inside a directory, `**` crosses them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache


@lru_cache(maxsize=512)
def _compile(glob: str) -> re.Pattern[str]:
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = glob.find("]", i + 1)
            if j == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = glob[i + 1 : j].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def match(path: str, glob: str) -> bool:
    """Whether repo-relative `path` matches `glob`; a glob naming a directory covers its files."""
    pat = _compile(glob.strip("/") if glob not in ("/", "") else "**")
    if pat.match(path):
        return True
    return not any(ch in glob for ch in "*?[") and path.startswith(glob.rstrip("/") + "/")


def match_any(path: str, globs: Iterable[str]) -> bool:
    return any(match(path, g) for g in globs)

"""Scrub secrets before anything is written: known key values, key-shaped strings, and what
detect-secrets flags."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

REDACTED = "[REDACTED]"
_KEY_ENV = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "OPENAI_API_KEY", "HARNESS_API_KEY")
_KEY_SHAPES = re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}|sk-[A-Za-z0-9]{32,}")
# A whole PEM private key, with real or JSON-escaped line breaks: not only its BEGIN line.
_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)", re.S
)
_LINE_BREAKS = re.compile(r"\n|\\n|\\r\\n")
_WINDOW = 1000
# The entropy detectors, applied to arbitrary strings rather than to quoted literals in source
# files, flag commit shas, run ids and paths; the record would be unreadable. Only detectors
# that recognise a secret by its shape or its keyword are used here.
_ENTROPY_TYPES = {"Hex High Entropy String", "Base64 High Entropy String"}


def _known_values() -> list[str]:
    return [v for k in _KEY_ENV if (v := os.environ.get(k)) and len(v) >= 8]


@lru_cache(maxsize=4096)
def _flagged(line: str) -> tuple[str, ...]:
    # Imported here: detect-secrets costs ~0.1 s to import, and most commands never redact.
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    found: list[str] = []
    with default_settings():
        for secret in scan_line(line):
            value = secret.secret_value
            if not value or len(value) < 8 or secret.type in _ENTROPY_TYPES:
                continue
            found.append(value)
    return tuple(found)


def _pieces(text: str) -> Iterable[str]:
    """Lines as detect-secrets sees them, also inside JSON-escaped text ("\\n"), and long lines
    in overlapping windows so that no line is too long to be scanned."""
    for raw in _LINE_BREAKS.split(text):
        # Inside JSON, quotes are escaped, and keyword detectors look for quotes.
        line = raw.replace('\\"', '"')
        if len(line) <= _WINDOW:
            yield line
            continue
        for start in range(0, len(line), _WINDOW // 2):
            yield line[start : start + _WINDOW]


def redact_text(text: str, extra: Iterable[str] = ()) -> str:
    for value in (*_known_values(), *extra):
        text = text.replace(value, REDACTED)
    text = _KEY_SHAPES.sub(REDACTED, text)
    text = _PEM.sub(REDACTED, text)
    if not text:
        return text
    found = {value for piece in _pieces(text) for value in _flagged(piece)}
    for value in sorted(found, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


def redact(obj: Any) -> Any:
    """Redact every string inside a JSON-like structure."""
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, dict):
        return {k: redact(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    return obj

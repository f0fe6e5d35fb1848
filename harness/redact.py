"""Scrub secrets before anything is written: known key values, key-shaped strings, and what
detect-secrets flags."""

from __future__ import annotations

import os
import re
import threading
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
_ENTROPY_PLUGINS = {"HexHighEntropyString", "Base64HighEntropyString"}
# detect-secrets keeps its configuration in a process-wide global, and gates redact from
# several threads at once.
_scan_lock = threading.Lock()


def _known_values() -> list[str]:
    return [v for k in _KEY_ENV if (v := os.environ.get(k)) and len(v) >= 8]


@lru_cache(maxsize=1)
def _plugins() -> tuple[str, ...]:
    from detect_secrets.settings import default_settings

    with default_settings() as settings:
        return tuple(name for name in settings.plugins if name not in _ENTROPY_PLUGINS)


def _configure_scanner() -> None:
    """Leave detect-secrets configured with the shape and keyword detectors.

    Entering its `transient_settings` costs about a millisecond, more than a scan, and every
    gate finding is redacted; harness is its only in-process user, so the configuration is set
    once and kept (a `transient_settings` block elsewhere restores it on exit).
    """
    from detect_secrets.settings import cache_bust, configure_settings_from_baseline, get_settings

    wanted = _plugins()
    if tuple(get_settings().plugins) != wanted:
        cache_bust()
        configure_settings_from_baseline({"plugins_used": [{"name": n} for n in wanted]})


@lru_cache(maxsize=8192)
def _flagged(line: str) -> tuple[str, ...]:
    # Imported here: detect-secrets costs ~0.1 s to import, and most commands never redact.
    from detect_secrets.core.scan import scan_line

    found: list[str] = []
    with _scan_lock:
        _configure_scanner()
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

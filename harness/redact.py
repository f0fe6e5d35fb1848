"""Scrub secrets before anything is written: known key values, key-shaped strings, and what
detect-secrets flags."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable
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


# What detect-secrets' ad hoc `scan_line` hands a plugin's `analyze_line` (by name).
_ADHOC_FILE = "adhoc-string-scan"
_ADHOC_ARGS = frozenset({"filename", "line", "line_number", "context"})
_NOTHING = object()


Check = Callable[[str], object]


def _check(plugin: Any) -> tuple[Check, ...]:
    """Tests, any of which is true on a line where `plugin` reports anything before
    detect-secrets' filters: so whenever `scan_line` could report a secret of this plugin
    there, since the filters only take away.

    `scan_line` spends ~0.2 ms a line on its own machinery (argument injection per plugin,
    filter set-up), several times what the plugins' regexes cost; asking each plugin directly
    through its documented interface (`analyze_line`, `analyze_string`, a regex detector's
    `denylist`) lets the scan run only on the lines where some plugin does find something.
    """
    from detect_secrets.plugins.base import BasePlugin, RegexBasedDetector
    from detect_secrets.util.code_snippet import get_code_snippet

    cls = type(plugin)
    if cls.analyze_line is BasePlugin.analyze_line:
        # That reports exactly what `analyze_string` yields, and a regex detector's own
        # yields only what its denylist finds.
        if cls.analyze_string is RegexBasedDetector.analyze_string:
            return tuple(regex.search for regex in plugin.denylist)
        return (lambda line: next(iter(plugin.analyze_string(line)), _NOTHING) is not _NOTHING,)
    code = cls.analyze_line.__code__
    names = set(code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount])
    if not names <= _ADHOC_ARGS:
        return (lambda line: True,)  # it takes more than this call would give: scan it

    def analyzed(line: str) -> bool:
        context = get_code_snippet(lines=[line], line_number=1)
        return bool(
            plugin.analyze_line(filename=_ADHOC_FILE, line=line, line_number=0, context=context)
        )

    return (analyzed,)


_checks: tuple[tuple[Any, ...], tuple[Check, ...]] = ((), ())


def _may_flag(line: str) -> bool:
    """Whether `scan_line` could report anything on `line` with the plugins configured now.
    Called with `_scan_lock` held."""
    global _checks
    from detect_secrets.settings import get_plugins

    plugins = tuple(get_plugins())
    # By identity: a plugin's own __eq__ compares settings, and costs more than the check.
    known = _checks[0]
    if len(known) != len(plugins) or any(a is not b for a, b in zip(known, plugins, strict=True)):
        _checks = (plugins, tuple(check for plugin in plugins for check in _check(plugin)))
    return any(check(line) for check in _checks[1])


@lru_cache(maxsize=8192)
def _flagged(line: str) -> tuple[str, ...]:
    # Imported here: detect-secrets costs ~0.1 s to import, and most commands never redact.
    from detect_secrets.core.scan import scan_line

    found: list[str] = []
    with _scan_lock:
        _configure_scanner()
        if not _may_flag(line):
            return ()
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

"""The secrets layer: key formats and high-entropy strings in any text a patch adds.

It runs after the static layer accepts (harness/guard/check.py): it reads every added line of
every file, so a patch the cheap rules refuse never pays for it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from harness.guard.models import Violation
from harness.policy import GuardConfig

if TYPE_CHECKING:
    from harness.guard.rules import FileChange


_SKIP_SECRET_TYPES = frozenset({"Public IP (ipv4)"})  # an address is not a credential


@lru_cache(maxsize=1)
def _secret_plugins() -> tuple[Any, ...]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    mapping: dict[str, Any] = dict(get_mapping_from_secret_type_to_class())
    return tuple(cls() for name, cls in mapping.items() if name not in _SKIP_SECRET_TYPES)


def _secret_ok(secret: str, line: str, plugin: Any) -> bool:
    """detect-secrets' own false-positive heuristics."""
    from detect_secrets.filters import heuristic as h

    return bool(
        h.is_sequential_string(secret)
        or h.is_potential_uuid(secret)
        or h.is_likely_id_string(secret, line, plugin)
        or h.is_templated_secret(secret)
        or h.is_prefixed_with_dollar_sign(secret)
        or h.is_not_alphanumeric_string(secret)
    )


def find_secret(path: str, line: str) -> str | None:
    from detect_secrets.filters import heuristic as h

    for plugin in _secret_plugins():
        for found in plugin.analyze_line(filename=path, line=line, line_number=0):
            value = found.secret_value or ""
            if value and _secret_ok(value, line, plugin):
                continue
            # The indirect-reference filter depends on the line only, so it is asked after
            # a finding rather than before every line: its regex costs as much as all the
            # detectors together.
            return None if h.is_indirect_reference(line) else str(found.type)
    return None


def rule_secrets(changes: list[FileChange], cfg: GuardConfig) -> list[Violation]:
    if not cfg.secrets:
        return []
    out: list[Violation] = []
    for fc in changes:
        for line_no, text in fc.added_lines:
            kind = find_secret(fc.path, text)
            if kind:
                out.append(
                    Violation(
                        rule="secrets",
                        path=fc.path,
                        line=line_no,
                        message=f"{fc.path}:{line_no}: added line looks like a secret ({kind}); "
                        "never commit credentials — read them from the environment",
                    )
                )
    return out

"""The key formats of `harness/secret_formats.py` as one detect-secrets plugin, for the secrets
gate's `detect-secrets scan -n --plugin`.

detect-secrets puts every line of every file through every plugin with its own machinery
(argument injection, filters), whatever the plugin's regex costs: the five one-regex plugins
of secret_formats.py took detect-secrets from 3.6 to 4.1-4.25 s of CPU on click 7.1.2. This
one plugin tries the same five regexes and reports each secret with its own format's type, as
the five would; it is a regex detector too, so detect-secrets' filters treat it as they treat
them. It verifies nothing: the gate runs the scan with `-n`.

detect-secrets imports this file by path, in a process whose import path starts with the
target repository, so it imports nothing of the harness; tests/test_gates_secrets.py checks
that FORMATS are exactly secret_formats.EXTRA's, and that a scan with either reports the same.
"""

from __future__ import annotations

import re
from typing import Any

from detect_secrets.core.potential_secret import PotentialSecret
from detect_secrets.plugins.base import RegexBasedDetector

# (secret type, pattern) of each class in secret_formats.EXTRA, in its order.
FORMATS: tuple[tuple[str, str], ...] = (
    ("Anthropic API Key", r"sk-ant-[a-z]{3,5}\d{2}-[A-Za-z0-9_-]{32,}"),
    ("Google API Key", r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])"),
    ("GitHub Fine-grained Token", r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}"),
    ("Hugging Face Token", r"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{34,40}(?![A-Za-z0-9_])"),
    ("npm Access Token", r"(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36}(?![A-Za-z0-9_])"),
)


_LABEL = "Harness Key Formats"


class HarnessKeyFormatsDetector(RegexBasedDetector):
    """The five formats in one pass over a line; each finding keeps its format's type."""

    # detect-secrets requires one; the findings carry their own formats' types.
    secret_type = _LABEL
    denylist = tuple(re.compile(pattern) for _, pattern in FORMATS)

    def analyze_line(
        self,
        filename: str,
        line: str,
        line_number: int = 0,
        context: Any = None,
        **kwargs: Any,
    ) -> set[Any]:
        found: set[Any] = set()
        for (kind, _), regex in zip(FORMATS, self.denylist, strict=True):
            for match in regex.findall(line):
                found.add(
                    PotentialSecret(
                        type=kind, filename=filename, secret=match, line_number=line_number
                    )
                )
        return found

"""Key formats detect-secrets 1.5 does not know, as detect-secrets regex plugins: one class
per format, for the guard's secrets layer (harness/guard/secrets.py).

The formats themselves are written once, in harness/gates/secret_formats_scan.py, which the
secrets gate hands to `detect-secrets scan --plugin` as a single plugin (cheaper per line than
five). This module only gives each format a class of its own, so the guard's in-process scan
names the provider of what it refuses. It is also a plugin file detect-secrets can load by
path (`PLUGIN_FILE`; tests compare the two plugins' scans).

Checked against detect-secrets 1.5.0's plugin list (it has AWS, GitHub's classic tokens,
GitLab, OpenAI, Slack, Stripe, private keys and others). Each pattern is the provider's own
prefix, so a match is a key, not a guess.
"""

from __future__ import annotations

import re
from typing import Any

from detect_secrets.plugins.base import RegexBasedDetector

from harness.gates.secret_formats_scan import FORMATS


def _detector(secret_type: str, pattern: str) -> type[Any]:
    # A regex plugin the way detect-secrets' docs extend it (a RegexBasedDetector with a
    # secret_type and a denylist), so its filters treat ours like its own.
    name = "".join(w.capitalize() for w in re.findall(r"[A-Za-z]+", secret_type)) + "Detector"
    attrs = {"secret_type": secret_type, "denylist": (re.compile(pattern),)}
    return type(name, (RegexBasedDetector,), attrs)


EXTRA: tuple[type[Any], ...] = tuple(_detector(kind, pattern) for kind, pattern in FORMATS)
# detect-secrets takes the plugin classes it finds at a module's top level.
globals().update({cls.__name__: cls for cls in EXTRA})
PLUGIN_FILE = __file__

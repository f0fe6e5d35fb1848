"""Key formats detect-secrets 1.5 does not know, as detect-secrets regex plugins.

One module serves both sides: the guard's secrets layer imports the classes, and the secrets
gate hands this file to `detect-secrets scan --plugin`, which imports it by path and takes the
plugin classes it finds at module level. So it imports nothing of the harness: only
detect-secrets, which both processes have.

Checked against detect-secrets 1.5.0's plugin list (it has AWS, GitHub's classic tokens,
GitLab, OpenAI, Slack, Stripe, private keys and others). Each pattern is the provider's own
prefix, so a match is a key, not a guess.
"""

from __future__ import annotations

import re
from typing import Any

from detect_secrets.plugins.base import RegexBasedDetector


def _detector(name: str, secret_type: str, pattern: str) -> type[Any]:
    # A regex plugin the way detect-secrets' docs extend it (a RegexBasedDetector with a
    # secret_type and a denylist), so its filters treat ours like its own.
    attrs = {"secret_type": secret_type, "denylist": (re.compile(pattern),)}
    return type(name, (RegexBasedDetector,), attrs)


# sk-ant-api03-..., sk-ant-admin01-..., sk-ant-oat01-... (OAuth)
AnthropicKeyDetector = _detector(
    "AnthropicKeyDetector", "Anthropic API Key", r"sk-ant-[a-z]{3,5}\d{2}-[A-Za-z0-9_-]{32,}"
)
GoogleKeyDetector = _detector(
    "GoogleKeyDetector",
    "Google API Key",
    r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])",
)
# Fine-grained personal access tokens; the classic ghp_/gho_/... are detect-secrets' own.
GitHubFineGrainedTokenDetector = _detector(
    "GitHubFineGrainedTokenDetector",
    "GitHub Fine-grained Token",
    r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}",
)
HuggingFaceTokenDetector = _detector(
    "HuggingFaceTokenDetector",
    "Hugging Face Token",
    r"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{34,40}(?![A-Za-z0-9_])",
)
# npm access tokens anywhere (detect-secrets finds them only in .npmrc's _authToken form).
NpmTokenDetector = _detector(
    "NpmTokenDetector", "npm Access Token", r"(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36}(?![A-Za-z0-9_])"
)

EXTRA: tuple[type[Any], ...] = (
    AnthropicKeyDetector,
    GoogleKeyDetector,
    GitHubFineGrainedTokenDetector,
    HuggingFaceTokenDetector,
    NpmTokenDetector,
)
PLUGIN_FILE = __file__

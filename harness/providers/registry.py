"""Providers by name: `anthropic`, `builtin`, `scripted`. Imports are lazy so that the offline
providers never load the SDK."""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import UsageError
from harness.policy import Policy
from harness.providers.base import Provider

PROVIDERS = ("anthropic", "builtin", "scripted")
DEFAULT_MODEL = "claude-sonnet-5"


def default_provider_name() -> str:
    return "anthropic" if os.environ.get("ANTHROPIC_API_KEY") else "builtin"


def resolve_model(model: str | None) -> str:
    """`--model`, else env HARNESS_MODEL, else the default."""
    return model or os.environ.get("HARNESS_MODEL") or DEFAULT_MODEL


def make_provider(
    name: str | None,
    *,
    model: str | None,
    policy: Policy,
    script: Path | None = None,
    base_url: str | None = None,
) -> Provider:
    chosen = name or default_provider_name()
    if chosen == "anthropic":
        from harness.providers.anthropic import AnthropicProvider

        api_key = os.environ.get("ANTHROPIC_API_KEY")
        if not api_key and not os.environ.get("ANTHROPIC_AUTH_TOKEN"):
            raise UsageError("provider 'anthropic' needs ANTHROPIC_API_KEY in the environment")
        return AnthropicProvider(
            resolve_model(model),
            api_key=api_key or None,
            base_url=base_url or os.environ.get("ANTHROPIC_BASE_URL") or None,
            prices=policy.prices,
        )
    if chosen == "builtin":
        from harness.providers.builtin import BuiltinProvider

        return BuiltinProvider()
    if chosen == "scripted":
        from harness.providers.scripted import ScriptedProvider

        if script is None:
            raise UsageError(
                "provider 'scripted' needs --script: a responses file or a recorded run directory"
            )
        return ScriptedProvider(script)
    raise UsageError(f"unknown provider '{chosen}': choose one of {', '.join(PROVIDERS)}")

from __future__ import annotations

import pytest

from harness.redact import REDACTED, redact, redact_text


def test_known_key_value_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "not-a-real-key-but-long-enough")
    assert redact_text("auth: not-a-real-key-but-long-enough!") == f"auth: {REDACTED}!"


def test_key_shapes_and_detect_secrets_patterns() -> None:
    text = 'k = "sk-ant-api03-abcdefghijklmnop"\naws = "AKIAIOSFODNN7EXAMPLE"\n'
    out = redact_text(text)
    assert "sk-ant" not in out and "AKIAIOSFODNN7EXAMPLE" not in out
    assert out.count(REDACTED) == 2


def test_ordinary_identifiers_survive() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    data = {"sha": sha, "run": "20261123-222535-fb80dd", "path": "/tmp/runs/x", "n": 3}
    assert redact(data) == data

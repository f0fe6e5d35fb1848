from __future__ import annotations

import json

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


def test_secrets_inside_one_line_json_are_redacted() -> None:
    # How an earlier tool call is sent back to the model: a diff inside one JSON line.
    diff = '+++ b/settings.py\n+AWS = "AKIAIOSFODNN7EXAMPLE"\n+password = "hunter2hunter2"\n'
    line = json.dumps({"item_id": "T1", "diff": "x" * 3000 + diff})
    out = redact_text(line)
    assert "AKIAIOSFODNN7EXAMPLE" not in out and "hunter2hunter2" not in out
    assert json.loads(out)["item_id"] == "T1"


def test_a_private_key_is_redacted_whole() -> None:
    body = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun"
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n{body}\n-----END RSA PRIVATE KEY-----"
    for text in (pem, json.dumps({"diff": pem})):
        out = redact_text(text)
        assert body not in out and "PRIVATE KEY" not in out

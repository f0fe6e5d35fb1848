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


# One line per detect-secrets plugin family (fake values in each format), plus lines that only
# look close. `scan_line` must find nothing the pre-check passes over.
_SAMPLES = [
    'aws = "AKIAIOSFODNN7EXAMPLE"',
    "token = 'ghp_abcdefghijklmnopqrstuvwxyz0123456789'",
    'slack = "xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx"',
    'stripe = "sk_live_abcdefghijklmnopqrstuvwx"',
    "-----BEGIN RSA PRIVATE KEY-----",
    "jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'",
    'password = "hunter2hunter2"',
    'db_pass: "correct-horse-battery"',
    "url = 'https://admin:s3cr3tpassw0rd@example.com/db'",
    "//registry.npmjs.org/:_authToken=abcdef12-3456-7890-abcd-ef1234567890",
    'sendgrid = "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"',
    'twilio = "SKabcdefabcdefabcdefabcdefabcdefab"',
    'mailchimp = "abcdefabcdefabcdefabcdefabcdefab-us12"',
    "pypi-AgEIcHlwaS5vcmcCJGExYjJjM2Q0LWU1ZjYtNzg5MC1hYmNkLWVmMTIzNDU2Nzg5MAACJXsicGVybWlzc2lvbnMiOiAidXNlciIsICJ2ZXJzaW9uIjogMX0AAAYgabcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
    "server at 203.0.113.195:8080 and 8.8.4.4",
    "Line too long (95 > 88)",
    "`os` imported but unused",
    "def get_password(self) -> str:",
    'Possible hardcoded password: "not-a-secret"',
    "api_key = os.environ['API_KEY']",
]


def test_the_pre_check_passes_every_line_detect_secrets_flags() -> None:
    from detect_secrets.core.scan import scan_line

    from harness import redact as r

    flagged = 0
    for line in _SAMPLES:
        with r._scan_lock:
            r._configure_scanner()
            may = r._may_flag(line)
            found = list(scan_line(line))
        assert may or not found, line
        flagged += bool(found)
    # The samples do exercise the scan: most of them hold something detect-secrets reports.
    assert flagged >= 14


def test_lines_without_anything_to_find_are_left_alone_and_secrets_still_go() -> None:
    from harness import redact as r

    assert redact_text("Line too long (95 > 88)") == "Line too long (95 > 88)"
    with r._scan_lock:
        r._configure_scanner()
        assert not r._may_flag("`os` imported but unused")
    assert "hunter2hunter2" not in redact_text('password = "hunter2hunter2"')
    assert "sk_live_abcdefgh" not in redact_text('s = "sk_live_abcdefghijklmnopqrstuvwx"')


def test_a_plugin_that_takes_more_arguments_is_always_scanned() -> None:
    from typing import Any

    from detect_secrets.plugins.base import BasePlugin

    from harness import redact as r

    class Eager(BasePlugin):
        secret_type = "eager"

        def analyze_string(self, string: str) -> Any:
            yield from ()

        def analyze_line(  # type: ignore[override]
            self, filename: str, line: str, enable_eager_search: bool = False, **kwargs: Any
        ) -> Any:
            return set()

    checks = r._check(Eager())
    assert len(checks) == 1 and checks[0]("nothing here")

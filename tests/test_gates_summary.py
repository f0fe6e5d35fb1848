"""seed_summary: the seed's keys at the top level, every gate's numbers under `gates`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from harness.gates.runner import run_gates
from harness.gates.summary import coverage_display, seed_summary
from harness.policy import parse_policy

POLICY = """
[gates.ruff]
paths = ["pkg"]
[gates.mypy]
enabled = false
[gates.pytest]
cov = ["pkg"]
fail_under = 80
[gates.bandit]
paths = ["pkg"]
[gates.imports]
enabled = false
[gates.secrets]
"""


def test_seed_keys_and_gate_details_from_a_real_run(make_repo: Callable[..., Path]) -> None:
    repo = make_repo(
        {
            "pkg/__init__.py": "",
            "pkg/lib.py": "import os\n\n\ndef add(a, b):\n    return a + b\n\n\n"
            "def sub(a, b):\n    return a - b\n",
            "tests/test_lib.py": "from pkg.lib import add\n\n\ndef test_add():\n"
            "    assert add(1, 1) == 2\n\n\ndef test_bad():\n    assert add(1, 1) == 3\n",
        }
    )
    run = run_gates(repo, parse_policy(POLICY), use_cache=False)
    s = seed_summary(run)
    json.dumps(s)  # plain JSON all the way down

    assert list(s)[:8] == [
        "ruff_stable_ok",
        "mypy_ok",
        "pytest",
        "coverage_stable",
        "lane_guard_ok",
        "bandit_ok",
        "gitleaks_ok",
        "gates",
    ]
    assert s["ruff_stable_ok"] is False
    assert s["mypy_ok"] is None  # not run is not ok
    assert s["pytest"] == {
        "passed": 1,
        "failed": 1,
        "errors": 0,
        "skipped": 0,
        "xfailed": 0,
        "xpassed": 0,
    }
    assert s["coverage_stable"] == "80%"  # 4 of 5 statements
    assert s["lane_guard_ok"] is None
    assert s["bandit_ok"] is True
    assert s["gitleaks_ok"] is True

    gates = s["gates"]
    assert list(gates) == ["ruff", "pytest", "coverage", "bandit", "secrets"]
    assert gates["ruff"]["findings"] == 1
    assert gates["ruff"]["details"]["by_code"] == {"F401": 1}
    assert gates["pytest"]["findings"] == s["pytest"]
    assert gates["pytest"]["details"]["not_passing"][0]["id"] == "tests/test_lib.py::test_bad"
    assert gates["coverage"]["findings"] == {"percent": 80.0}
    assert gates["coverage"]["status"] == "passed"  # 80% meets 80%; the test failure is pytest's
    assert gates["secrets"]["tool"] == "detect-secrets"
    for entry in gates.values():
        assert set(entry) >= {"status", "seconds", "findings", "tool", "reason", "details"}


def test_coverage_display_never_rounds_to_complete_or_nothing() -> None:
    assert coverage_display(99.6) == "99%"
    assert coverage_display(0.2) == "1%"
    assert coverage_display(100.0) == "100%"
    assert coverage_display(0.0) == "0%"
    assert coverage_display(59.5) == "60%"

"""The secrets gate: detect-secrets here (gitleaks is not installed); the result says which ran."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.gates import secrets as secrets_gate
from harness.gates.base import GATES
from harness.gates.common import GateContext
from harness.gates.models import GateStatus
from harness.policy import SecretsGateConfig
from harness.proc import run

from .conftest import git

AWS = 'aws_key = "AKIAIOSFODNN7EXAMPLE"\n'
KEYWORD = 'password = "correct-horse-battery-staple-9x"\n'


def _ctx(repo: Path, python: str = sys.executable, **cfg: object) -> GateContext:
    return GateContext(repo=repo, python=python, cfg=SecretsGateConfig.model_validate(cfg))


@pytest.fixture(autouse=True)
def _no_gitleaks() -> None:
    if shutil.which("gitleaks"):
        pytest.skip("these tests pin the detect-secrets fallback; gitleaks is on PATH")


def test_tracked_and_untracked_files_are_scanned(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"app/settings.py": "DEBUG = True\n" + AWS, ".gitignore": "local/\n"})
    (repo / "app/new.py").write_text(KEYWORD)  # untracked, not ignored: part of the tree
    (repo / "local").mkdir()
    (repo / "local/ignored.py").write_text(KEYWORD)  # ignored: not part of the tree
    result = GATES["secrets"].run(_ctx(repo))

    assert result.status == GateStatus.FAILED
    assert result.tool == "detect-secrets"
    got = sorted((f.path, f.code, f.line) for f in result.findings)
    assert got == [("app/new.py", "Secret Keyword", 1), ("app/settings.py", "AWS Access Key", 2)]
    assert all("AKIA" not in f.message and "horse" not in f.message for f in result.findings)
    assert git(repo, "status", "--porcelain") == "?? app/new.py\n"


def test_files_go_to_the_scan_largest_first_and_findings_come_back_by_file_name(
    make_repo: Callable[..., Path],
) -> None:
    # detect-secrets' workers take the files in the order given: largest first, they end
    # together. Its report, and so the gate's findings, stay in file-name order.
    repo = make_repo(
        {
            "a_small.py": AWS,
            "b_large.py": "x = 1\n" * 200 + KEYWORD,
            "c_mid.py": "x = 1\n" * 20 + AWS,
            "link.py": "",
        }
    )
    (repo / "link.py").unlink()
    (repo / "link.py").symlink_to("c_mid.py")  # a symlink is never scanned
    ctx = _ctx(repo)
    assert secrets_gate._files_to_scan(ctx) == ["b_large.py", "c_mid.py", "a_small.py"]
    result = GATES["secrets"].run(ctx)
    assert [f.path for f in result.findings] == ["a_small.py", "b_large.py", "c_mid.py"]


def test_fingerprint_is_the_hashed_secret_not_the_line(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"app/settings.py": AWS})
    before = GATES["secrets"].run(_ctx(repo))
    (repo / "app/settings.py").write_text("# moved down\n\n" + AWS)
    after = GATES["secrets"].run(_ctx(repo))
    assert [f.line for f in before.findings] == [1]
    assert [f.line for f in after.findings] == [3]
    assert [f.fingerprint for f in before.findings] == [f.fingerprint for f in after.findings]


def test_clean_tree_passes_and_baseline_accepts_known_secrets(
    make_repo: Callable[..., Path],
) -> None:
    repo = make_repo({"app/settings.py": "DEBUG = True\n"})
    assert GATES["secrets"].run(_ctx(repo)).status == GateStatus.PASSED

    (repo / "app/settings.py").write_text(AWS)
    assert GATES["secrets"].run(_ctx(repo)).status == GateStatus.FAILED
    # A baseline written by detect-secrets itself accepts the secrets it lists.
    real = run([sys.executable, "-m", "detect_secrets", "scan", "app/settings.py"], repo)
    (repo / ".secrets.baseline").write_text(real.stdout)
    accepted = GATES["secrets"].run(_ctx(repo, config=".secrets.baseline"))
    assert accepted.status == GateStatus.PASSED, accepted.findings


def test_errors_never_pass(make_repo: Callable[..., Path], tmp_path: Path) -> None:
    repo = make_repo({"app/settings.py": AWS})
    forced = GATES["secrets"].run(_ctx(repo, tool="gitleaks"))
    assert forced.status == GateStatus.ERROR
    assert forced.tool == "gitleaks"
    assert forced.reason == "gitleaks is not on PATH"

    missing = GATES["secrets"].run(_ctx(repo, config=".secrets.baseline"))
    assert missing.status == GateStatus.ERROR
    assert missing.reason == "detect-secrets baseline not found: .secrets.baseline"
    no_config = GATES["secrets"].run(_ctx(repo, tool="gitleaks", config=".gitleaks.toml"))
    assert no_config.status == GateStatus.ERROR
    assert no_config.reason == "gitleaks config not found: .gitleaks.toml"

    with pytest.raises(ValueError, match="JSONDecodeError"):
        secrets_gate.parse_detect_secrets("no secrets here, promise", repo)
    with pytest.raises(ValueError, match="'results' is not an object"):
        secrets_gate.parse_detect_secrets('{"results": []}', repo)


def test_gitleaks_report_parsing(tmp_path: Path) -> None:
    # The shape of gitleaks' JSON report (redacted), as `gitleaks detect --report-format json`
    # writes it; gitleaks itself is not installed here, so its parser is checked on its own.
    leak = {
        "Description": "AWS Access Key",
        "StartLine": 3,
        "EndLine": 3,
        "StartColumn": 12,
        "EndColumn": 31,
        "Match": "aws_key = REDACTED",
        "Secret": "REDACTED",
        "File": "app/settings.py",
        "SymlinkFile": "",
        "Commit": "0123456789abcdef0123456789abcdef01234567",
        "Entropy": 3.6,
        "Author": "A",
        "Email": "a@example.invalid",
        "Date": "2026-01-01T00:00:00Z",
        "Message": "add settings",
        "Tags": [],
        "RuleID": "aws-access-token",
        "Fingerprint": "0123456789abcdef:app/settings.py:aws-access-token:3",
    }
    [f] = secrets_gate.parse_gitleaks(json.dumps([leak]), tmp_path)
    assert (f.path, f.code, f.line, f.message) == (
        "app/settings.py",
        "aws-access-token",
        3,
        "AWS Access Key",
    )
    [moved] = secrets_gate.parse_gitleaks(json.dumps([{**leak, "StartLine": 9}]), tmp_path)
    assert moved.fingerprint == f.fingerprint
    assert secrets_gate.parse_gitleaks("", tmp_path) == []
    with pytest.raises(ValueError, match="expected a JSON list"):
        secrets_gate.parse_gitleaks('{"leaks": 1}', tmp_path)


def test_nothing_to_scan_is_an_error_not_a_pass(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"app/settings.py": "DEBUG = True\n"})
    result = GATES["secrets"].run(_ctx(repo, paths=["no_such_dir"]))
    assert result.status == GateStatus.ERROR
    assert result.reason == "no files to scan under no_such_dir"


def test_the_key_formats_the_guard_refuses_are_found_by_the_gate_offline(
    make_repo: Callable[..., Path],
) -> None:
    """The gate judges the tree with the same extra key formats as the guard, and never asks a
    provider's API whether a key it found is live (`-n`: no network, no secret sent)."""
    from .test_guard_secrets import KEYS

    extra = ["Anthropic API Key", "GitHub Fine-grained Token", "Google API Key", "npm Access Token"]
    files = {f"k{i}.py": f"# the key is {KEYS[kind]}\n" for i, kind in enumerate(extra)}
    files[".env"] = f"HF={KEYS['Hugging Face Token']}\n"
    result = GATES["secrets"].run(_ctx(make_repo(files)))
    assert result.status == GateStatus.FAILED
    found = sorted((f.path, f.code) for f in result.findings)
    assert found == sorted(
        [(f"k{i}.py", kind) for i, kind in enumerate(extra)] + [(".env", "Hugging Face Token")]
    )
    assert "-n" in result.command
    assert any(a.endswith("secret_formats_scan.py") for a in result.command)


def test_the_guard_classes_are_the_gate_plugin_formats_one_each() -> None:
    from harness.gates.secret_formats_scan import FORMATS
    from harness.secret_formats import EXTRA

    assert tuple((c.secret_type, c.denylist[0].pattern) for c in EXTRA) == FORMATS
    assert all(len(c.denylist) == 1 for c in EXTRA)


def test_one_plugin_reports_what_the_five_did(make_repo: Callable[..., Path]) -> None:
    """`detect-secrets scan -n --plugin` with the gate's one plugin against the five classes
    of secret_formats.py: the same results, types and lines, key by key, next to detect-secrets'
    own formats and look-alikes it must leave alone."""
    from harness.gates import secret_formats_scan
    from harness.secret_formats import PLUGIN_FILE

    from .test_guard_secrets import KEYS

    lines = [f"k{i} = '{key}'" for i, key in enumerate(KEYS.values())]
    lines += [f"both = '{KEYS['Google API Key']}' + '{KEYS['npm Access Token']}'", AWS, KEYWORD]
    lines += ["not_hf = 'xhf_" + "a" * 36 + "'", "short = 'npm_abc'"]
    repo = make_repo(
        {"keys.py": "\n".join(lines) + "\n", ".env": f"HF={KEYS['Hugging Face Token']}\n"}
    )

    def scan(plugin: str) -> dict[str, object]:
        argv = [sys.executable, "-m", "detect_secrets", "scan", "-n", "--plugin", plugin]
        proc = run([*argv, "keys.py", ".env"], repo)
        assert proc.returncode == 0, proc.stderr
        return dict(json.loads(proc.stdout)["results"])

    five, one = scan(PLUGIN_FILE), scan(str(secret_formats_scan.__file__))
    assert one == five
    kinds = {s["type"] for found in one.values() for s in found}  # type: ignore[attr-defined]
    assert {kind for kind, _ in secret_formats_scan.FORMATS} <= kinds

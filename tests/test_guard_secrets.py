"""The secrets layer, and the cheap refusals that run before anything costly.

Times are not asserted here (bench/bench_guard_layers.py measures them); these tests check
that the refusal happens, by which rule and layer, and that what should pass passes.
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.guard import Verdict, check_patch
from harness.guard.check import MAX_ADDED_CHARS, MAX_LINE_CHARS, MAX_PATCH_CHARS
from harness.policy import GuardConfig

MakeRepo = Callable[..., Path]
CFG = GuardConfig()


def new_file(path: str, lines: list[str]) -> str:
    body = "".join(f"+{ln}\n" for ln in lines)
    return f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n{body}"


def rules(v: Verdict) -> list[str]:
    return [x.rule for x in v.violations]


def ran(v: Verdict) -> dict[str, bool]:
    return {layer.layer: layer.ran for layer in v.layers}


# --- cheap refusals -------------------------------------------------------------------------


def test_a_new_file_of_100000_lines_is_refused_from_its_line_counts(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    v = check_patch(new_file("big.py", ["x = 1"] * 100_000), repo, CFG)
    assert not v.accepted and rules(v) == ["size"]
    assert "at least 100000 changed lines" in v.violations[0].message
    assert v.layers[0].why.startswith("refused on the diff's line counts")
    assert ran(v) == {"static": True, "secrets": False}
    assert v.files == [] and v.diff == ""  # nothing was applied or diffed


def test_a_10_mb_patch_is_refused_before_it_is_read(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    line = "y = '" + "ab1" * 60 + "'"
    text = "--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n x = 1\n" + f"+{line}\n" * (10_000_000 // 190)
    assert len(text) > MAX_PATCH_CHARS
    v = check_patch(text, repo, CFG)
    assert rules(v) == ["size"] and "characters long" in v.violations[0].message
    assert ran(v) == {"static": True, "secrets": False}


def test_removing_as_many_lines_as_it_adds_does_not_escape(make_repo: MakeRepo) -> None:
    # Net zero lines: the net count cannot refuse it, the raw line cap does.
    old = [f"v{i} = {i}" for i in range(1_000)]
    repo = make_repo({"a.py": "".join(f"{ln}\n" for ln in old)})
    body = "".join(f"-{ln}\n+{ln}  # changed\n" for ln in old)
    v = check_patch(f"--- a/a.py\n+++ b/a.py\n@@ -1,1000 +1,1000 @@\n{body}", repo, CFG)
    assert rules(v) == ["size"] and "1000 '+' and 1000 '-' lines" in v.violations[0].message


def test_a_rewritten_function_that_changes_little_is_still_accepted(make_repo: MakeRepo) -> None:
    # 30 '+' and 30 '-' lines, more than the limit of 20, but only one line really changes:
    # the raw counts must not refuse what the exact count accepts.
    old = [f"v{i} = {i}" for i in range(30)]
    new = [*old[:10], "v10 = 'ten'", *old[11:]]
    repo = make_repo({"a.py": "".join(f"{ln}\n" for ln in old)})
    body = "".join(f"-{ln}\n" for ln in old) + "".join(f"+{ln}\n" for ln in new)
    v = check_patch(f"--- a/a.py\n+++ b/a.py\n@@ -1,30 +1,30 @@\n{body}", repo, CFG)
    assert v.accepted, v.violations
    assert [(f.added, f.removed) for f in v.files] == [(1, 1)]


def test_sections_of_one_file_count_together(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "".join(f"v{i} = {i}\n" for i in range(40))})
    first = "--- a/a.py\n+++ b/a.py\n@@ -1 +1,13 @@\n v0 = 0\n" + "+a = 1\n" * 12
    second = "--- a/a.py\n+++ b/a.py\n@@ -40 +52,13 @@\n v39 = 39\n" + "+b = 2\n" * 12
    v = check_patch(first + second, repo, CFG)
    assert rules(v) == ["size"] and "at least 24 changed lines" in v.violations[0].message


def test_a_line_longer_than_the_cap_is_refused(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    long = "y = '" + "a" * MAX_LINE_CHARS + "'"
    v = check_patch(f"--- a/a.py\n+++ b/a.py\n@@ -1 +1,2 @@\n x = 1\n+{long}\n", repo, CFG)
    assert rules(v) == ["size"] and "adds a line of" in v.violations[0].message


def test_too_many_added_characters_across_files_are_refused(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    line = "y = '" + "a" * (MAX_LINE_CHARS - 10) + "'"
    files = MAX_ADDED_CHARS // (20 * len(line)) + 1
    text = "".join(new_file(f"m{k}.py", [line] * 20) for k in range(files))
    v = check_patch(text, repo, CFG)
    assert rules(v) == ["size"] and "characters, over the guard's" in v.violations[0].message


def test_the_size_rule_stops_the_other_static_rules(make_repo: MakeRepo) -> None:
    # 21 lines each gaining a suppression: only the size refusal is reported, the costlier
    # static rules are skipped and say so.
    old = [f"v{i} = {i}" for i in range(21)]
    repo = make_repo({"a.py": "".join(f"{ln}\n" for ln in old)})
    body = "".join(f"-{ln}\n" for ln in old) + "".join(f"+{ln}  # noqa\n" for ln in old)
    v = check_patch(f"--- a/a.py\n+++ b/a.py\n@@ -1,21 +1,21 @@\n{body}", repo, CFG)
    assert rules(v) == ["size"]
    assert "other static rules did not run" in v.layers[0].why


# --- the secrets layer ----------------------------------------------------------------------

# Keys are generated, never written out here: this file must not itself hold a secret.
_RNG = random.Random(9)
_ALNUM = string.ascii_letters + string.digits


def _rand(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(_RNG.choice(alphabet) for _ in range(n))


KEYS = {
    "Anthropic API Key": "sk-ant-" + "api03-" + _rand(93, _ALNUM + "-_") + "AA",
    "Anthropic admin": "sk-ant-" + "admin01-" + _rand(93, _ALNUM + "-_") + "AA",
    "OpenAI Token": "sk-" + "proj-" + _rand(40) + "T3Blbk" + "FJ" + _rand(40),
    "AWS Access Key": "AKIA" + _rand(16, string.ascii_uppercase + "234567"),
    "GitHub Token": "ghp" + "_" + _rand(36),
    "GitHub Fine-grained Token": "github" + "_pat_" + _rand(22) + "_" + _rand(59),
    "GitLab Token": "glpat" + "-" + _rand(20),
    "Slack Token": "xoxb"
    + "-"
    + _rand(11, string.digits)
    + "-"
    + _rand(12, string.digits)
    + "-"
    + _rand(24),
    "Google API Key": "AI" + "za" + _rand(35, _ALNUM + "-_"),
    "Stripe Access Key": "sk" + "_live_" + _rand(24),
    "Hugging Face Token": "hf" + "_" + _rand(34),
    "npm Access Token": "npm" + "_" + _rand(36),
}
PRIVATE_KEY_HEADER = "-----BEGIN RSA " + "PRIVATE KEY-----"


def secret_rules(v: Verdict) -> list[tuple[str, str]]:
    return [(x.rule, x.layer) for x in v.violations]


@pytest.mark.parametrize("kind", sorted(KEYS))
@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("notes.py", "# the key is {key}"),  # a comment
        (".env", "API_KEY={key}"),  # dotenv
        ("config/settings.yaml", "api_key: {key}"),
        ("pyproject.toml", 'token = "{key}"'),
        ("data.json", '{{"token": "{key}"}}'),
        ("docs/setup.md", "Run `export TOKEN={key}` first."),
    ],
)
def test_provider_keys_are_refused_in_any_file(
    make_repo: MakeRepo, kind: str, path: str, template: str
) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    v = check_patch(new_file(path, [template.format(key=KEYS[kind])]), repo, CFG)
    assert secret_rules(v) == [("secrets", "secrets")], (kind, path, v.violations)
    assert KEYS[kind] not in v.violations[0].message  # the message never repeats the value
    expected = "Anthropic API Key" if kind == "Anthropic admin" else kind
    assert f"({expected})" in v.violations[0].message


def test_a_private_key_is_refused(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    v = check_patch(
        new_file("deploy/id_rsa", [PRIVATE_KEY_HEADER, _rand(64), "-----END"]), repo, CFG
    )
    assert secret_rules(v) == [("secrets", "secrets")] and "Private Key" in v.violations[0].message


def test_a_key_as_a_call_argument_is_refused(make_repo: MakeRepo) -> None:
    # detect-secrets' indirect-reference filter (`x = get(...)`) is for guesses, not formats.
    repo = make_repo({"a.py": "x = 1\n"})
    line = f'key = os.environ.get("KEY", "{KEYS["Anthropic API Key"]}")'
    v = check_patch(new_file("b.py", [line]), repo, CFG)
    assert "Anthropic API Key" in v.violations[0].message


def pieces(key: str) -> list[str]:
    # 12 characters each: too short for an entropy guess, and no piece holds a whole format.
    return [key[i : i + 12] for i in range(0, len(key), 12)]


def quoted(key: str, quote: str = '"') -> list[str]:
    return [f"{quote}{p}{quote}" for p in pieces(key)]


@pytest.mark.parametrize("kind", ["Anthropic API Key", "Google API Key", "AWS Access Key"])
@pytest.mark.parametrize("form", ["implicit", "implicit lines", "plus lines", "join"])
def test_a_key_split_across_python_literals_is_refused(
    make_repo: MakeRepo, kind: str, form: str
) -> None:
    parts = quoted(KEYS[kind])
    lines = {
        "implicit": ["KEY = " + " ".join(parts)],
        "implicit lines": ["KEY = (", *[f"    {p}" for p in parts], ")"],
        "plus lines": ["KEY = (", *[f"    + {p}" for p in parts], ")"],
        "join": ['KEY = "".join([' + ", ".join(parts) + "])"],
    }[form]
    if form == "plus lines":
        lines[1] = lines[1].replace("+ ", "")
    repo = make_repo({"a.py": "x = 1\n"})
    patch = new_file("b.py", lines)
    for p in pieces(KEYS[kind]):  # no line alone is a secret
        assert check_patch(new_file("c.py", [f'X = "{p}"']), repo, CFG).accepted
    v = check_patch(patch, repo, CFG)
    assert secret_rules(v) == [("secrets", "secrets")], v.violations
    assert f"({kind})" in v.violations[0].message


def test_a_split_key_added_next_to_existing_code_is_refused(make_repo: MakeRepo) -> None:
    # Only the last piece is on an added line: the joined value still touches it.
    parts = quoted(KEYS["Google API Key"])
    old = ["KEY = (", *[f"    {p}" for p in parts[:-1]], ")"]
    repo = make_repo({"a.py": "".join(f"{ln}\n" for ln in old)})
    body = "".join(f" {ln}\n" for ln in old[:-1]) + f"+    {parts[-1]}\n )\n"
    v = check_patch(
        f"--- a/a.py\n+++ b/a.py\n@@ -1,{len(old)} +1,{len(old) + 1} @@\n{body}", repo, CFG
    )
    assert "(Google API Key)" in v.violations[0].message


def test_a_key_split_across_literals_in_javascript_is_refused(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    line = "const token = " + " + ".join(quoted(KEYS["GitHub Fine-grained Token"], "'")) + ";"
    v = check_patch(new_file("web/app.js", [line]), repo, CFG)
    assert secret_rules(v) == [("secrets", "secrets")]
    assert "(GitHub Fine-grained Token)" in v.violations[0].message


HEX = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"  # sha256(b"hello")


@pytest.mark.parametrize(
    "lines",
    [
        ['    assert hashlib.sha256(b"hello").hexdigest() == "{hex}"'],
        ['    expected = "{hex}"', "    assert sha256(b'hello').hexdigest() == expected"],
        [
            '    digest = hashlib.new("sha256", b"hello")',
            '    assert digest.hexdigest() == "{hex}"',
        ],
    ],
)
def test_a_hex_digest_in_a_test_next_to_a_hashing_call_is_accepted(
    make_repo: MakeRepo, lines: list[str]
) -> None:
    assert hashlib.sha256(b"hello").hexdigest() == HEX
    repo = make_repo({"a.py": "x = 1\n"})
    body = ["import hashlib", "from hashlib import sha256", "", "", "def test_digest():"]
    body += [ln.format(hex=HEX) for ln in lines]
    v = check_patch(new_file("tests/test_digest.py", body), repo, CFG)
    assert v.accepted, v.violations


def test_high_entropy_secrets_stay_refused(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    # A hex secret in a test with no hashing call near it.
    far = ["def test_x():", f'    token = "{HEX}"', "    assert token"]
    v = check_patch(new_file("tests/test_far.py", far), repo, CFG)
    assert [(x.rule, x.line) for x in v.violations] == [("secrets", 2)]
    assert "Hex High Entropy String" in v.violations[0].message
    # The same digest next to a hashing call, but in source code: only tests are excused.
    src = ["import hashlib", "", f'SEED = "{HEX}"  # hashlib.sha256 of the seed']
    assert rules(check_patch(new_file("pkg/seed.py", src), repo, CFG)) == ["secrets"]
    # A hex string of no digest's length next to a hashing call, in a test.
    odd = [
        "import hashlib",
        "def test_x():",
        f'    assert hashlib.md5(b"").hexdigest() != "{HEX[:50]}"',
    ]
    assert rules(check_patch(new_file("tests/test_odd.py", odd), repo, CFG)) == ["secrets"]
    # A provider key beside a hashing call, in a test: a format is never excused.
    key = [
        "import hashlib",
        "def test_x():",
        f'    assert hashlib.sha256(b"{KEYS["AWS Access Key"]}")',
    ]
    assert rules(check_patch(new_file("tests/test_key.py", key), repo, CFG)) == ["secrets"]


def test_ordinary_code_and_text_are_accepted(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    lines = [
        'MESSAGE = "a long message " "that continues on " + "and on"',
        'URL = "https://example.org/" "path/to/resource"',
        "# sk-ant-... keys go in the ANTHROPIC_API_KEY environment variable",
        'KEY = os.environ["ANTHROPIC_API_KEY"]',
    ]
    assert check_patch(new_file("b.py", lines), repo, CFG).accepted
    env = ["ANTHROPIC_API_KEY=", "DEBUG=1", "NAME=harness"]
    assert check_patch(new_file(".env.example", env), repo, CFG).accepted


def test_secrets_off_accepts_and_the_layer_runs_only_after_static(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    patch = new_file("b.py", [f'KEY = "{KEYS["Stripe Access Key"]}"'])
    assert check_patch(patch, repo, GuardConfig(secrets=False)).accepted
    # A static refusal (a path outside the lanes) stops the secrets layer.
    v = check_patch(patch, repo, GuardConfig(lanes=["docs/**"]))
    assert rules(v) == ["paths"] and ran(v) == {"static": True, "secrets": False}

"""Each policy rule refuses what it should and lets ordinary edits through."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.guard import Verdict, check_patch
from harness.guard.globs import match
from harness.policy import GuardConfig, SuppressionRule, load_policy

MakeRepo = Callable[..., Path]
CFG = GuardConfig()
LIB = "def add(a, b):\n    return a + b\n"

PYPROJECT = """[project]
name = "demo"
version = "1.0"

[tool.ruff]
line-length = 100

[tool.ruff.lint]
select = ["E", "F"]

[tool.other]
x = 1
"""

TESTS = """import pytest


def test_one():
    assert 1 == 1
    assert 2 == 2


class TestThing:
    def test_two(self):
        assert True
"""


def edit(path: str, old: str, new: str, ctx_before: str = "", ctx_after: str = "") -> str:
    """A one-hunk patch replacing line `old` with `new` (header numbers left to the repair)."""
    body = "".join(f" {c}\n" for c in ctx_before.splitlines())
    body += "".join(f"-{o}\n" for o in old.splitlines())
    body += "".join(f"+{n}\n" for n in new.splitlines())
    body += "".join(f" {c}\n" for c in ctx_after.splitlines())
    return f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n{body}"


def rules(v: Verdict) -> list[str]:
    return [x.rule for x in v.violations]


def test_size_limit_per_file_and_files_per_patch(make_repo: MakeRepo) -> None:
    repo = make_repo({"a.py": "x = 0\n", "b.py": "y = 0\n"})
    big = "--- a/a.py\n+++ b/a.py\n@@ -1 +1,21 @@\n x = 0\n" + "".join(
        f"+v{i} = {i}\n" for i in range(20)
    )
    assert check_patch(big, repo, CFG).accepted  # exactly 20 lines
    v = check_patch(big + "+v99 = 1\n", repo, CFG)
    assert rules(v) == ["size"] and "21 changed lines" in v.violations[0].message
    v = check_patch(big, repo, GuardConfig(count_method="max_side", max_changed_lines_per_file=19))
    assert rules(v) == ["size"] and "max(added, removed)" in v.violations[0].message
    two = edit("a.py", "x = 0", "x = 1") + edit("b.py", "y = 0", "y = 1")
    assert rules(check_patch(two, repo, GuardConfig(max_files_per_patch=1))) == ["size"]


def test_paths_lanes_forbidden_and_escapes(make_repo: MakeRepo) -> None:
    repo = make_repo({"lukhas/a.py": "x = 0\n", "tests/t.py": "y = 0\n", "docs/n.md": "n\n"})
    policy = load_policy()
    block1 = policy.guard_for_block(1, default_lanes=["tests/**"])  # a coverage block
    v = check_patch(edit("lukhas/a.py", "x = 0", "x = 1"), repo, block1)
    assert (
        rules(v) == ["paths"] and "outside this block's lanes (tests/**)" in v.violations[0].message
    )
    cfg = GuardConfig(forbidden=["docs/**"])
    assert rules(check_patch(edit("docs/n.md", "n", "m"), repo, cfg)) == ["paths"]
    for bad in ("../x.py", "/etc/passwd", ".git/config", "a/../../x", "sub//x.py"):
        v = check_patch(f"--- /dev/null\n+++ {bad}\n@@ -0,0 +1 @@\n+x\n", repo, CFG)
        assert not v.accepted and rules(v) == ["paths"], bad


def test_symlinks_binary_and_modes_are_refused(make_repo: MakeRepo) -> None:
    repo = make_repo({"real.py": "x = 0\n", "bin.dat": "a\x00b\n"})
    (repo / "link.py").symlink_to("real.py")
    v = check_patch(edit("link.py", "x = 0", "x = 1"), repo, CFG)
    assert rules(v) == ["paths"] and "symlink" in v.violations[0].message
    v = check_patch(edit("bin.dat", "a\x00b", "c"), repo, CFG)
    assert rules(v) == ["paths"] and "binary" in v.violations[0].message
    mode = "diff --git a/real.py b/real.py\nold mode 100644\nnew mode 100755\n"
    assert rules(check_patch(mode, repo, CFG)) == ["paths"]
    lnk = "diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+/etc\n"
    assert rules(check_patch(lnk, repo, CFG)) == ["paths"]
    binp = (
        "diff --git a/x.png b/x.png\nnew file mode 100644\n"
        "Binary files /dev/null and b/x.png differ\n"
    )
    assert rules(check_patch(binp, repo, CFG)) == ["paths"]
    # `git diff --binary` form: must not pass as an empty new text file.
    git_binary = (
        "diff --git a/x.png b/x.png\nnew file mode 100644\nindex 0000000..1234567\n"
        "GIT binary patch\nliteral 3\nKcmZ?wbN>Gu\n\nliteral 0\nHcmV?d00001\n\n"
    )
    v = check_patch(git_binary, repo, CFG)
    assert rules(v) == ["paths"] and "binary" in v.violations[0].message


def test_gate_config_is_protected_but_other_pyproject_tables_are_not(make_repo: MakeRepo) -> None:
    repo = make_repo(
        {
            "pyproject.toml": PYPROJECT,
            "ruff.toml": "x = 1\n",
            "setup.cfg": "[mypy]\nstrict = True\n\n[metadata]\nname = d\n",
        }
    )
    v = check_patch(
        edit("pyproject.toml", "line-length = 100", "line-length = 200", "[tool.ruff]"), repo, CFG
    )
    assert rules(v) == ["gate_config"] and "[tool.ruff]" in v.violations[0].message
    assert v.violations[0].line == 5
    v = check_patch(
        edit("pyproject.toml", 'version = "1.0"', 'version = "1.1"', 'name = "demo"'), repo, CFG
    )
    assert v.accepted, v.violations
    v = check_patch(edit("pyproject.toml", "x = 1", "x = 2", "[tool.other]"), repo, CFG)
    assert v.accepted
    # A dotted key elsewhere that reaches into [tool.ruff] is still caught.
    v = check_patch(
        edit(
            "pyproject.toml",
            "x = 1",
            'x = 1\n[tool.ruff.lint.per-file-ignores]\n"*" = ["E"]',
            "[tool.other]",
        ),
        repo,
        CFG,
    )
    assert rules(v) == ["gate_config"]
    assert rules(check_patch(edit("ruff.toml", "x = 1", "x = 2"), repo, CFG)) == ["gate_config"]
    assert rules(
        check_patch(edit("setup.cfg", "strict = True", "strict = False", "[mypy]"), repo, CFG)
    ) == ["gate_config"]
    assert check_patch(edit("setup.cfg", "name = d", "name = e", "[metadata]"), repo, CFG).accepted
    new_wf = "--- /dev/null\n+++ b/.github/workflows/ci.yml\n@@ -0,0 +1 @@\n+on: push\n"
    assert "gate_config" in rules(check_patch(new_wf, repo, CFG))
    assert check_patch(
        edit("ruff.toml", "x = 1", "x = 2"), repo, GuardConfig(protect_gate_config=False)
    ).accepted


def test_new_suppressions_are_refused_moved_ones_are_not(make_repo: MakeRepo) -> None:
    repo = make_repo({"m.py": "import os  # noqa: F401\nx = 1\n"})
    for sup in (
        "# noqa",
        "# noqa: E501",
        "# type: ignore[arg-type]",
        "# nosec B101",
        "# pragma: no cover",
        "# pylint: disable=foo",
        "# gitleaks:allow",
    ):
        v = check_patch(
            edit("m.py", "x = 1", f"x = 2  {sup}", "import os  # noqa: F401"), repo, CFG
        )
        assert rules(v) == ["suppression"], sup
        assert v.violations[0].line == 2
    moved = edit("m.py", "import os  # noqa: F401\nx = 1", "import os as o  # noqa: F401\nx = 1")
    assert check_patch(moved, repo, CFG).accepted
    budget = GuardConfig(suppressions=SuppressionRule(budget=1, require_justification=True))
    bare = edit(
        "m.py", "x = 1", "x = f()  # type: ignore[no-untyped-call]", "import os  # noqa: F401"
    )
    v = check_patch(bare, repo, budget)
    assert rules(v) == ["suppression"] and "justification" in v.violations[0].message
    why = edit(
        "m.py",
        "x = 1",
        "x = f()  # type: ignore[no-untyped-call]  # vendored lib has no stubs",
        "import os  # noqa: F401",
    )
    assert check_patch(why, repo, budget).accepted


def test_tests_may_not_be_weakened(make_repo: MakeRepo) -> None:
    repo = make_repo({"tests/test_x.py": TESTS, "lib.py": "x = 1\n"})
    cfg = CFG
    v = check_patch(
        edit("tests/test_x.py", "def test_one():", "@pytest.mark.skip\ndef test_one():", "\n"),
        repo,
        cfg,
    )
    assert "tests" in rules(v)
    v = check_patch(
        edit("tests/test_x.py", "    assert 2 == 2", "    pass", "    assert 1 == 1"), repo, cfg
    )
    assert rules(v) == ["tests"] and "loses 1 assert" in v.violations[0].message
    v = check_patch(
        edit(
            "tests/test_x.py",
            "    def test_two(self):",
            "    def check_two(self):",
            "class TestThing:",
        ),
        repo,
        cfg,
    )
    assert rules(v) == ["tests"] and "TestThing::test_two" in v.violations[0].message
    v = check_patch(
        edit(
            "tests/test_x.py",
            "    assert 1 == 1",
            "    pytest.skip('later')\n    assert 1 == 1",
            "def test_one():",
        ),
        repo,
        cfg,
    )
    assert rules(v) == ["tests"]
    delete = (
        "diff --git a/tests/test_x.py b/tests/test_x.py\ndeleted file mode 100644\n"
        "--- a/tests/test_x.py\n+++ /dev/null\n@@ -1,11 +0,0 @@\n"
    ) + "".join(f"-{ln}\n" for ln in TESTS.splitlines())
    v = check_patch(delete, repo, cfg)
    assert rules(v) == ["tests"] and "deletes test file" in v.violations[0].message
    more = edit(
        "tests/test_x.py",
        "    assert 2 == 2",
        "    assert 2 == 2\n    assert sum([1, 2]) == 3",
        "    assert 1 == 1",
    )
    assert check_patch(more, repo, cfg).accepted
    assert check_patch(
        edit("tests/test_x.py", "    assert 2 == 2", "    pass", "    assert 1 == 1"),
        repo,
        GuardConfig(protect_tests=False),
    ).accepted


def test_secrets_in_added_lines(make_repo: MakeRepo) -> None:
    repo = make_repo({"conf.py": "x = 1\n"})
    v = check_patch(edit("conf.py", "x = 1", 'aws = "AKIAIOSFODNN7EXAMPL3"'), repo, CFG)
    assert rules(v) == ["secrets"] and "AWS Access Key" in v.violations[0].message
    assert "AKIA" not in v.violations[0].message
    v = check_patch(edit("conf.py", "x = 1", 'password = os.environ["PASSWORD"]'), repo, CFG)
    assert v.accepted
    assert check_patch(
        edit("conf.py", "x = 1", 'aws = "AKIAIOSFODNN7EXAMPL3"'), repo, GuardConfig(secrets=False)
    ).accepted


def test_globs() -> None:
    assert match("tests/a/b.py", "tests/**")
    assert match("test_x.py", "**/test_*.py")
    assert match("a/b/test_x.py", "**/test_*.py")
    assert not match("lukhas/sub/x.py", "lukhas/*.py")
    assert match("lukhas/x.py", "lukhas/*.py")
    assert match("docs/audits/CLAUDE_PROGRESS.md", "docs/audits/CLAUDE_PROGRESS.md")
    assert match("anything/at/all", "**")
    assert match("docs/x", "docs")


def new_file(path: str, text: str) -> str:
    lines = text.splitlines()
    body = "".join(f"+{x}\n" for x in lines)
    return f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n{body}"


def test_conftest_hooks_are_gate_config_but_fixtures_are_not(make_repo: MakeRepo) -> None:
    conftest = "import pytest\n\n\n@pytest.fixture\ndef base():\n    return 1\n"
    repo = make_repo({"conftest.py": conftest, "tests/conftest.py": conftest, "a.py": "x = 0\n"})
    hooks = [
        "def pytest_collection_modifyitems(config, items):\n    items[:] = []",
        "@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    out = yield",
        'collect_ignore = ["tests/test_core.py"]',
        'collect_ignore_glob = ["*_core.py"]',
        'globals()["pytest_runtest_setup"] = print',
        "from some_plugin import *",
    ]
    for where in ("conftest.py", "tests/conftest.py"):
        for hook in hooks:
            patch = edit(
                where, "    return 1", "    return 1\n\n\n" + hook, ctx_before="def base():"
            )
            v = check_patch(patch, repo, CFG)
            assert rules(v) == ["gate_config"], (where, hook, v.violations)
            assert "pytest hooks" in v.violations[0].message
        fixture = edit(
            where, "    return 1", "    return 2\n\n\n@pytest.fixture\ndef more():\n    return 3"
        )
        assert check_patch(fixture, repo, CFG).accepted
    created = new_file("lukhas/conftest.py", "def pytest_runtest_setup(item):\n    pass")
    assert rules(check_patch(created, repo, CFG)) == ["gate_config"]
    assert check_patch(new_file("lukhas/conftest.py", "X = 1"), repo, CFG).accepted


def test_pytest_and_startup_files_ignore_files_and_stubs_are_protected(
    make_repo: MakeRepo,
) -> None:
    repo = make_repo(
        {"lukhas/core.py": "def add(a, b):\n    return a + b\n", ".gitignore": "build/\n*.log\n"}
    )
    for path in (
        "pytest.ini",
        ".pytest.ini",
        "pytest.toml",
        ".pytest.toml",
        "sitecustomize.py",
        "lukhas/usercustomize.py",
        "lukhas/hide.pth",
        ".ignore",
        "lukhas/.gitignore",
    ):
        v = check_patch(new_file(path, "x = 1"), repo, CFG)
        assert rules(v) == ["gate_config"], (path, v.violations)
    assert rules(check_patch(edit(".gitignore", "*.log", "*.log\nlukhas/"), repo, CFG)) == [
        "gate_config"
    ]
    stub = new_file("lukhas/core.pyi", "def add(a: int, b: int) -> int: ...")
    v = check_patch(stub, repo, CFG)
    assert rules(v) == ["gate_config"] and "hide lukhas/core.py" in v.violations[0].message
    v = check_patch(new_file("lukhas/other.pyi", "X: int"), repo, CFG)
    assert rules(v) == ["hiding.stub_package"], v.violations
    assert rules(check_patch(new_file("lukhas-stubs/core.py", "X = 1"), repo, CFG)) == [
        "hiding.stub_package"
    ]
    v = check_patch(
        new_file("build/gen.py", "X = 1") + new_file("lukhas/ok.py", "Y = 1"), repo, CFG
    )
    assert [(x.rule, x.path) for x in v.violations] == [("paths", "build/gen.py")]
    assert "ignored by git" in v.violations[0].message
    assert check_patch(new_file("lukhas/ok.py", "Y = 1"), repo, CFG).accepted


def test_suppression_spellings_are_found_in_comments_not_strings(make_repo: MakeRepo) -> None:
    base = "import os\nx = 1\n"
    repo = make_repo({"m.py": base})
    for added in (
        "x = 2  #noqa",
        "x = 2  # NOQA",
        "x = 2  # NoQa:E501",
        "# ruff: noqa\nx = 2",
        "# flake8: noqa\nx = 2",
        "# ruff: disable[F401]\nx = 2",
        "# isort: skip_file\nx = 2",
        "x = 2  # isort:skip",
        "x = 2  # type:ignore",
        "x = 2  # TYPE : IGNORE[misc]",
        "# mypy: ignore-errors\nx = 2",
        "# mypy: disable-error-code=arg-type\nx = 2",
        "# mypy: allow-untyped-defs\nx = 2",
        "x = 2  # NOSEC",
        "x = 2  #nosec:B101",
        "x = 2  # pragma no cover",
        "x = 2  # PRAGMA: NO COVER",
        "x = 2  # pylint:disable=unused-import",
        "x = 2  # pragma: allowlist secret",
        "# pragma: allowlist nextline secret\nx = 2",
        "x = 2  # pragma: whitelist secret",
        "x = 2  # ok # gitleaks:allow",
        "import typing\n@typing.no_type_check\ndef f(a): return a\nx = 2",
        "from typing import no_type_check\n@no_type_check\ndef f(a): return a\nx = 2",
        "from typing import no_type_check as ntc\n@ntc\ndef f(a): return a\nx = 2",
    ):
        v = check_patch(edit("m.py", "x = 1", added, "import os"), repo, CFG)
        assert rules(v) == ["suppression"], added
    for fine in (
        'x = 2\nHELP = "use # noqa sparingly, never # type: ignore"',
        "x = 2  # we removed every type: ignore here",
        "x = 2  # see the noqa policy",
    ):
        assert check_patch(edit("m.py", "x = 1", fine, "import os"), repo, CFG).accepted, fine


def test_suppressions_net_out_only_when_identical(make_repo: MakeRepo) -> None:
    text = "import os  # noqa: F401\nx = f()  # type: ignore[arg-type]\ny = 1\n"
    repo = make_repo({"m.py": text})
    same = edit("m.py", "import os  # noqa: F401", "import os as o  # noqa:F401")
    assert check_patch(same, repo, CFG).accepted
    for widened in (
        ("import os  # noqa: F401", "# ruff: noqa\nimport os"),
        ("import os  # noqa: F401", "import os  # noqa"),
        ("import os  # noqa: F401", "import os  # noqa: F401, E501"),
        ("x = f()  # type: ignore[arg-type]", "x = f()  # type: ignore"),
        ("x = f()  # type: ignore[arg-type]", "# mypy: ignore-errors\nx = f()"),
    ):
        v = check_patch(edit("m.py", *widened), repo, CFG)
        assert rules(v) == ["suppression"], widened
    moved = edit(
        "m.py",
        "import os  # noqa: F401\nx = f()  # type: ignore[arg-type]\ny = 1",
        "import os\nx = f()  # type: ignore[arg-type]\ny = 1  # noqa",
    )
    assert rules(check_patch(moved, repo, CFG)) == ["suppression"]


UT = """import unittest


class CoreCase(unittest.TestCase):
    def test_a(self):
        self.assertEqual(sum([1, 1]), 2)

    def test_b(self):
        self.assertTrue(callable(sum))
"""
PT = """import pytest
from lib import add


def test_add():
    assert add(1, 1) == 2
"""


def test_weakening_through_aliases_constants_returns_and_handlers(make_repo: MakeRepo) -> None:
    repo = make_repo({"tests/test_ut.py": UT, "tests/test_pt.py": PT, "lib.py": LIB})
    body = "    assert add(1, 1) == 2"
    for new in (
        "    assert True",
        "    assert add(1, 1) == 2 or True",
        "    assert 1",
        "    assert (add(1, 1) == 3, 'msg')",
        "    return\n" + body,
        "    if True:\n        return\n" + body,
        "    try:\n" + "    " + body + "\n    except AssertionError:\n        pass",
        "    try:\n" + "    " + body + "\n    except Exception:\n        pass",
        "    from pytest import skip\n    skip('later')\n" + body,
        "    import pytest as pt\n    pt.xfail('later')\n" + body,
        "    from pytest import importorskip\n    importorskip('nothing')\n" + body,
    ):
        v = check_patch(edit("tests/test_pt.py", body, new, "def test_add():"), repo, CFG)
        assert rules(v) == ["tests"], (new, v.violations)
    marked = edit(
        "tests/test_pt.py",
        "def test_add():",
        "from pytest import mark\n\n\n@mark.xfail\ndef test_add():",
        ctx_after=body,
    )
    assert rules(check_patch(marked, repo, CFG)) == ["tests"]
    for old, new in (
        ("        self.assertTrue(callable(sum))", "        pass"),
        ("    def test_b(self):", "    def check_b(self):"),
        ("    def test_b(self):", "    @unittest.skip('x')\n    def test_b(self):"),
        ("        self.assertTrue(callable(sum))", "        self.skipTest('x')"),
        ("        self.assertTrue(callable(sum))", "        self.assertTrue(True)"),
    ):
        v = check_patch(edit("tests/test_ut.py", old, new), repo, CFG)
        assert any(r.startswith("tests") for r in rules(v)), (old, new, v.violations)
    stronger = edit("tests/test_pt.py", body, body + "\n    assert add(2, 2) == 4")
    assert check_patch(stronger, repo, CFG).accepted
    expected = edit(
        "tests/test_pt.py",
        body,
        body + "\n    with pytest.raises(TypeError):\n        add(1, None)",
    )
    assert check_patch(expected, repo, CFG).accepted


def test_coverage_markers_from_the_repository_config_are_suppressions(make_repo: MakeRepo) -> None:
    coveragerc = "[report]\nexclude_lines =\n    nocov-ci\n    raise NotImplementedError\n"
    for config in (
        {".coveragerc": coveragerc},
        {"setup.cfg": coveragerc.replace("[report]", "[coverage:report]")},
    ):
        repo = make_repo({"m.py": "def f():\n    return 1\n", **config}, name=next(iter(config)))
        marked = edit("m.py", "    return 1", "    return 2  # nocov-ci", "def f():")
        v = check_patch(marked, repo, CFG)
        assert rules(v) == ["suppression"] and "nocov-ci" in v.violations[0].message
        # a code pattern in the config is code, not a marker: adding it is an ordinary edit
        code = edit("m.py", "    return 1", "    raise NotImplementedError", "def f():")
        assert check_patch(code, repo, CFG).accepted
    repo = make_repo({"m.py": "x = 1\n"}, name="plain")
    assert rules(check_patch(edit("m.py", "x = 1", "x = 2  # pragma: no branch"), repo, CFG)) == [
        "suppression"
    ]
    assert check_patch(edit("m.py", "x = 1", "x = 2  # nocov-ci"), repo, CFG).accepted


CURRY_TEST = """from lib import curry, foo


def test_curry_equality():
    f1 = curry(foo, 1, c=2)
    f2 = curry(foo, 1, c=2)
    result = foo(1, 2, 3)
    expected = result
    assert f1 == f2
    assert not (f1 != f2)
    assert result == 6
"""


def test_a_self_compare_refusal_says_what_the_assert_compares(make_repo: MakeRepo) -> None:
    """SIM202's fix on toolz (`assert not (f1 != f2)` to `assert f1 == f2`) was refused as
    "compares f1 with itself": f1 and f2 are two objects built alike, not one value."""
    repo = make_repo({"lib.py": LIB, "tests/test_curry.py": CURRY_TEST})
    path = "tests/test_curry.py"

    built = check_patch(edit(path, "    assert not (f1 != f2)", "    assert f1 == f2"), repo, CFG)
    assert rules(built) == ["tests.self_compare"]
    message = built.violations[0].message
    assert "f1 with itself" not in message
    assert "f1 with f2, two results of the same expression curry(foo, 1, c=2)" in message
    assert "not what the value should be" in message

    aliased = check_patch(edit(path, "    assert result == 6", "    assert result == expected"),
                          repo, CFG)  # fmt: skip
    assert rules(aliased) == ["tests.self_compare"]
    assert "expected is only another name for result, so it is always true" in (
        aliased.violations[0].message
    )

    itself = check_patch(edit(path, "    assert result == 6", "    assert result == result"),
                         repo, CFG)  # fmt: skip
    assert "compares result with itself, which is always true" in itself.violations[0].message

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.providers.base import ModelRequest
from harness.providers.builtin import (
    BuiltinProvider,
    _new,
    build_checked_fix_patch,
    build_fix_patch,
    ruff_stdin_linter,
)
from tests.conftest import git

MESSY = "".join(f"import mod{i}\n" for i in range(30)) + "\n\ndef f():\n    return 1\n"


def ruff_findings(repo: Path, path: str) -> list[dict[str, object]]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--isolated",
            "--select",
            "F401",
            "--output-format",
            "json",
            path,
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    rows = json.loads(out)
    return [
        {
            "gate": "ruff",
            "code": r["code"],
            "path": path,
            "line": r["location"]["row"],
            "message": r["message"],
            "fix": r["fix"],
        }
        for r in rows
    ]


def numstat(repo: Path) -> tuple[int, int]:
    added, removed, _ = git(repo, "diff", "--numstat").split("\t")
    return int(added), int(removed)


def test_patch_respects_limit_and_applies(make_repo) -> None:
    repo = make_repo({"pkg/m.py": MESSY})
    findings = ruff_findings(repo, "pkg/m.py")
    assert len(findings) == 30
    diff = build_fix_patch("pkg/m.py", MESSY, findings, max_lines=20)
    subprocess.run(["git", "apply", "-"], cwd=repo, input=diff, text=True, check=True)
    added, removed = numstat(repo)
    assert added + removed <= 20
    assert len(ruff_findings(repo, "pkg/m.py")) == 30 - (added + removed)


def test_repeated_patches_finish_the_file(make_repo) -> None:
    repo = make_repo({"pkg/m.py": MESSY})
    for _ in range(3):
        text = (repo / "pkg/m.py").read_text()
        diff = build_fix_patch("pkg/m.py", text, ruff_findings(repo, "pkg/m.py"), 20)
        if not diff:
            break
        subprocess.run(["git", "apply", "-"], cwd=repo, input=diff, text=True, check=True)
    assert ruff_findings(repo, "pkg/m.py") == []


def test_unsafe_or_missing_fixes_are_not_used() -> None:
    finding = {
        "gate": "ruff",
        "code": "X1",
        "path": "a.py",
        "line": 1,
        "message": "m",
        "fix": {
            "applicability": "unsafe",
            "edits": [
                {
                    "content": "",
                    "location": {"row": 1, "column": 1},
                    "end_location": {"row": 2, "column": 1},
                }
            ],
        },
    }
    assert build_fix_patch("a.py", "x = 1\n", [finding], 20) == ""
    assert build_fix_patch("a.py", "x = 1\n", [{**finding, "fix": None}], 20) == ""


def test_plan_names_what_it_cannot_do() -> None:
    req = ModelRequest(
        phase="plan",
        system="",
        messages=[],
        tools=[],
        context={"block": {"gates": ["pytest", "mypy"]}, "findings": {}},
    )
    resp = BuiltinProvider().complete(req)
    assert resp.tool == "submit_plan"
    assert resp.input is not None
    cannot = " ".join(resp.input["cannot_do"])
    assert "pytest" in cannot and "mypy" in cannot


def test_todo_respects_lanes(make_repo) -> None:
    repo = make_repo({"pkg/m.py": MESSY})
    findings = ruff_findings(repo, "pkg/m.py")
    ctx = {"block": {"gates": ["ruff"]}, "findings": {"ruff": findings}}
    provider = BuiltinProvider()
    inside = provider.complete(
        ModelRequest(
            phase="todo", system="", messages=[], tools=[], context={**ctx, "lanes": ["pkg/**"]}
        )
    )
    outside = provider.complete(
        ModelRequest(
            phase="todo", system="", messages=[], tools=[], context={**ctx, "lanes": ["tests/**"]}
        )
    )
    assert inside.input is not None and outside.input is not None
    assert [i["files"] for i in inside.input["items"]] == [["pkg/m.py"]]
    assert outside.input["items"] == []


TYPING = (
    "import time\nfrom typing import Callable, List\n\n\n"
    "def f(x: List[int], cb: Callable[[], None]) -> List[int]:\n    time.sleep(0)\n    return x\n"
)
LINT = [
    sys.executable,
    "-m",
    "ruff",
    "check",
    "--isolated",
    "--select",
    "F,I,UP",
    "--output-format",
    "json",
    "--no-cache",
    "--exit-zero",
]


def test_checked_patch_follows_ruffs_fix_point(make_repo) -> None:
    repo = make_repo({"m.py": TYPING})
    lint = ruff_stdin_linter(LINT, str(repo))
    before = lint("m.py", TYPING)
    # Taken one by one, these fixes leave new findings (unsorted imports, an unused import).
    naive = build_fix_patch("m.py", TYPING, before, 20)
    subprocess.run(["git", "apply", "-"], cwd=repo, input=naive, text=True, check=True)
    assert _new(before, lint("m.py", (repo / "m.py").read_text()))
    git(repo, "checkout", "--", "m.py")
    checked = build_checked_fix_patch("m.py", TYPING, lint, 20)
    subprocess.run(["git", "apply", "-"], cwd=repo, input=checked, text=True, check=True)
    assert lint("m.py", (repo / "m.py").read_text()) == []


def test_checked_patch_respects_limit(make_repo) -> None:
    repo = make_repo({"pkg/m.py": MESSY})
    lint = ruff_stdin_linter(LINT, str(repo))
    diff = build_checked_fix_patch("pkg/m.py", MESSY, lint, 7)
    subprocess.run(["git", "apply", "-"], cwd=repo, input=diff, text=True, check=True)
    added, removed = numstat(repo)
    assert 0 < added + removed <= 7


def test_skip_says_when_the_file_was_not_shown() -> None:
    # The loop hands over every readable file whole, and says why it could not read the others;
    # the skip must not claim there is nothing to fix in a file the provider never saw.
    item = {"id": "R1", "title": "t", "files": ["pkg/big.py"], "gate": "ruff"}
    finding = {"gate": "ruff", "code": "F401", "path": "pkg/big.py", "line": 1, "message": "m"}
    why = "not readable as UTF-8 text (UnicodeDecodeError)"
    req = ModelRequest(
        phase="execute",
        system="",
        messages=[],
        tools=[],
        context={
            "item": item,
            "files": {},
            "missing": {"pkg/big.py": why},
            "findings": [finding],
            "max_lines": 20,
        },
    )
    resp = BuiltinProvider().complete(req)
    assert resp.input is not None and resp.input["action"] == "skip"
    assert f"pkg/big.py ({why})" in resp.input["explanation"]
    shown = req.model_copy(update={"context": {**req.context, "files": {"pkg/big.py": "x = 1\n"}}})
    resp = BuiltinProvider().complete(shown)
    assert resp.input is not None and resp.input["explanation"] == "no safe fix applies"


# An import block shaped like python-dateutil 2.8.2's tz/tz.py after its other fixes, in a file
# long enough (>= 200 lines) for difflib's autojunk heuristic: ruff's single I001 edit is 20
# lines by `git diff --numstat` (what the guard counts) but 22 by a difflib count.
IMPORTS = (
    '"""Doc."""\nimport datetime\nimport struct\nimport time\nimport sys\nimport os\n'
    "import bisect\nimport weakref\nfrom collections import OrderedDict\n\nimport six\n"
    "from six import string_types\nfrom six.moves import _thread\n"
    "from ._common import tzname_in_python2, _tzinfo\nfrom ._common import tzrangebase, enfold\n"
    "from ._common import _validate_fromutc_inputs\n\n"
    "from ._factories import _TzSingleton, _TzOffsetFactory\n"
    "from ._factories import _TzStrFactory\n"
    "try:\n    from .win import tzwin, tzwinlocal\nexcept ImportError:\n"
    "    tzwin = tzwinlocal = None\n\n# For warning about rounding tzinfo\n\n"
    "ZERO = datetime.timedelta(0)\nEPOCH = datetime.datetime.utcfromtimestamp(0)\n\n\n"
    '__all__ = ["datetime", "struct", "time", "sys", "os", "bisect", "weakref", "OrderedDict"]\n'
) + "".join(f"\n\ndef f{i}():\n    return {i}\n" for i in range(60))


def test_limit_is_counted_as_the_guard_counts(make_repo) -> None:
    repo = make_repo({"pkg/tz.py": IMPORTS})
    lint = ruff_stdin_linter([*LINT[:6], "I", *LINT[7:]], str(repo))
    findings = lint("pkg/tz.py", IMPORTS)
    assert [f["code"] for f in findings] == ["I001"]
    diff = build_fix_patch("pkg/tz.py", IMPORTS, findings, 20)
    assert diff, "a fix of exactly 20 numstat lines fits a limit of 20"
    subprocess.run(["git", "apply", "-"], cwd=repo, input=diff, text=True, check=True)
    assert sum(numstat(repo)) == 20
    assert lint("pkg/tz.py", (repo / "pkg/tz.py").read_text()) == []
    assert build_fix_patch("pkg/tz.py", IMPORTS, findings, 19) == ""


def test_plan_says_truly_why_each_ruff_finding_is_left(make_repo) -> None:
    # A safe fix, an unsafe one, none at all, and a safe one outside the lanes: "no safe
    # automatic fix" must not be said of a finding that has one.
    code = (
        "import mod1\n\n\ndef g(x):\n    if x == None:\n        return 1\n    l = 2\n    return l\n"
    )
    repo = make_repo({"pkg/m.py": code, "tests/t.py": "import os\n"})
    lint = ruff_stdin_linter([*LINT[:6], "F,E", *LINT[7:]], str(repo))
    findings = lint("pkg/m.py", code) + lint("tests/t.py", "import os\n")
    ctx = {
        "block": {"gates": ["ruff"]},
        "findings": {"ruff": findings},
        "lanes": ["pkg/**"],
        "max_lines": 20,
    }
    resp = BuiltinProvider().complete(
        ModelRequest(phase="plan", system="", messages=[], tools=[], context=ctx)
    )
    assert resp.input is not None
    assert resp.input["steps"][0].startswith("Apply ruff's safe fixes (1 in 1 files)")
    assert resp.input["cannot_do"] == [
        "ruff: 1 finding has a safe fix, in a file outside this block's lanes",
        "ruff: 1 finding has no automatic fix",
        "ruff: 1 finding has only a fix ruff marks unsafe (it may change behaviour)",
    ]

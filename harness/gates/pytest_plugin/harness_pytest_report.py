"""A pytest plugin the harness loads into the TARGET's interpreter (`-p harness_pytest_report`,
its directory on PYTHONPATH): it writes what pytest itself decided, one JSON object a line, to
the file named by `--harness-report`.

It imports nothing from harness (the target's environment does not have it) and uses public
pytest hooks only. Records, in the order pytest makes them:

- {"kind": "start", "pid": ..., "rootdir": ...}          the plugin is configured
- {"kind": "collect_error", "id": ..., "message": ...}   a module or package failed to collect
- {"kind": "collect_skipped", "id": ..., "message": ...} one skipped itself while collected
- {"kind": "collected", "ids": [...]}                    the items that will run
- {"kind": "deselected", "ids": [...]}                   -k / -m / a plugin deselected them
- {"kind": "report", "id", "when", "outcome", "xfail", "message", "seconds"}   per test phase
- {"kind": "interrupted", "by": "exit" | "collection" | "interrupt", "message": ...}
                                                         pytest.exit(), collection errors, Ctrl-C
- {"kind": "finish", "exitstatus": N}                    the closing record

A file without the closing record means the process died before pytest finished its session
(os._exit, a crash, a kill): the harness treats that as a run it cannot trust.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import IO, Any

import pytest

_OPTION = "harness_report"


class _Writer:
    def __init__(self, path: str) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def write(self, record: dict[str, Any]) -> None:
        # Line-buffered: each record is handed to the OS as it is written, so whatever the
        # process did before it died (os._exit, a kill) is on disk, without opening the file
        # once per record (three records a test: 0.1 s of a 2,000-test suite's CPU).
        line = json.dumps(record) + "\n"
        try:
            if self._fh is None:
                self._fh = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
            self._fh.write(line)
        except (OSError, ValueError):
            # A test closed or replaced our descriptor (a daemon's closerange, say): reopen.
            self._fh = None
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line)

    def close(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError, ValueError):
                self._fh.close()
            self._fh = None


_writer: _Writer | None = None


def _text(value: object, limit: int = 300) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text[:limit] or None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(f"--{_OPTION.replace('_', '-')}", dest=_OPTION, default=None)


def pytest_configure(config: pytest.Config) -> None:
    global _writer
    path = config.getoption(_OPTION)
    # An xdist worker reports through the controller, which writes the one report.
    if not path or hasattr(config, "workerinput"):
        return
    _writer = _Writer(path)
    # Node ids are relative to pytest's rootdir, which need not be the repository's root.
    root = getattr(config, "rootpath", None) or getattr(config, "rootdir", "")
    _writer.write({"kind": "start", "pid": os.getpid(), "rootdir": str(root)})


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if _writer is None or report.passed:
        return
    # A module that raises Skipped while it is imported takes all its tests with it.
    kind = "collect_error" if report.failed else "collect_skipped"
    longrepr: Any = report.longrepr
    said = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else longrepr
    _writer.write({"kind": kind, "id": report.nodeid, "message": _text(said)})


def pytest_deselected(items: list[pytest.Item]) -> None:
    if _writer is not None:
        _writer.write({"kind": "deselected", "ids": [item.nodeid for item in items]})


def pytest_collection_finish(session: pytest.Session) -> None:
    if _writer is not None:
        _writer.write({"kind": "collected", "ids": [item.nodeid for item in session.items]})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _writer is None:
        return
    message = None
    if report.outcome != "passed":
        longrepr: Any = report.longrepr
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            # A skip's longrepr is (file, line, reason): the reason says why.
            message = _text(longrepr[2])
        else:
            # A failure's crash line ("AssertionError: ...") rather than the whole traceback.
            crash = getattr(longrepr, "reprcrash", None)
            message = _text(getattr(crash, "message", None) or longrepr)
    _writer.write(
        {
            "kind": "report",
            "id": report.nodeid,
            "when": report.when,
            "outcome": report.outcome,
            "xfail": hasattr(report, "wasxfail"),
            "message": message,
            "seconds": float(getattr(report, "duration", 0.0) or 0.0),
        }
    )


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    if _writer is None:
        return
    # pytest stops on collection errors through the same hook (Session.Interrupted).
    if excinfo.errisinstance(pytest.exit.Exception):
        by = "exit"
    elif excinfo.errisinstance(pytest.Session.Interrupted):
        by = "collection"
    else:
        by = "interrupt"
    _writer.write({"kind": "interrupted", "by": by, "message": _text(excinfo.value)})


# Last, so the status is the one the other plugins' sessionfinish hooks leave.
@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _writer is not None:
        _writer.write({"kind": "finish", "exitstatus": int(exitstatus)})


def pytest_unconfigure(config: pytest.Config) -> None:
    global _writer
    if _writer is not None:
        _writer.close()
    _writer = None

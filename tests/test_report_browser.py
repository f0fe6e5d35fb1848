"""The HTML report in a real browser: Debian's headless Chromium, driven through its own
chromedriver by selenium (the W3C WebDriver client the Selenium project keeps; with the driver
named, it fetches nothing). The page of each example run must load with no console error and
no request for anything, its key figures must be those of the run's summary.json, and a
screenshot of the whole page is saved with the test's files (HARNESS_TEST_ARTIFACTS: a
directory to copy it to as well).

Skipped, saying why, where chromium, chromedriver or selenium is missing: `.ci/run` installs
the first two (`apt-get install chromium chromium-driver`), `pip install -e '.[test]'` the last.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.outcome import SEED_KEYS
from tests.test_replay import example

# `.ci/run` installs chromium in the background while the venv is made and the suite runs;
# it names a file that the install writes its exit status to when it is done.
INSTALLING = "HARNESS_CHROMIUM_INSTALL"
INSTALL_WAIT_SECONDS = 600


def _browser_paths() -> tuple[str, str]:
    """chromium and chromedriver, after waiting for `.ci/run`'s install if one is under way;
    skip, saying why, where either is missing."""
    status = os.environ.get(INSTALLING)
    note = ""
    if status:
        done = Path(status)
        deadline = time.monotonic() + INSTALL_WAIT_SECONDS
        while not done.is_file() and time.monotonic() < deadline:
            time.sleep(1)
        code = done.read_text().strip() if done.is_file() else "still running"
        note = f"; .ci/run's install ended: {code}" if code != "0" else ""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip(
            "needs Debian's chromium and chromedriver (apt-get install chromium "
            f"chromium-driver; .ci/run installs them){note}"
        )
    return chromium, driver


# As the machine's notes have it: without the background-networking flags Chromium keeps
# trying hosts this closed network refuses, and logs each failure.
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1280,1000",
]  # fmt: skip
FIGURES = """return Object.fromEntries([...document.querySelectorAll('[data-figure]')]
    .map(e => [e.dataset.figure, e.textContent.trim()]))"""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    chromium, chromedriver = _browser_paths()
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def expected(summary: dict[str, Any]) -> dict[str, str]:
    """The figures the page must show, computed from summary.json alone."""
    want = {
        "cost_usd": f"${summary['cost_usd']:.4f}",
        "goals_met": "goals met" if summary["goals_met"] else "goals not met",
    }
    for block in summary["blocks"]:
        n = block["number"]
        want[f"block-{n}-status"] = block["status"]
        want[f"block-{n}-kept"] = str(len(block["commits"]))
        want[f"block-{n}-reverted"] = str(len(block["reverted"]))
        want[f"block-{n}-rejected"] = str(block["rejected"])
        for when in ("before", "after"):
            gates = block[when]["gates"]
            for gate, entry in gates.items():
                if isinstance(entry["findings"], int):
                    want[f"block-{n}-{gate}-{when}"] = str(entry["findings"])
            if "coverage" in gates:
                want[f"block-{n}-coverage-{when}"] = (
                    f"{gates['coverage']['findings']['percent']:.1f}%"
                )
            if "pytest" in gates:
                want[f"block-{n}-tests-passed-{when}"] = str(gates["pytest"]["findings"]["passed"])
    return want


@pytest.mark.parametrize("name", ["builtin", "scripted"])
def test_the_report_of_an_example_run_in_headless_chromium(
    name: str, browser: Any, tmp_path: Path
) -> None:
    run_dir = example(name)
    page = tmp_path / f"report-{name}.html"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "report", str(run_dir), "--html", str(page)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    browser.get(page.as_uri())

    assert browser.execute_script("return document.readyState") == "complete"
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert fetched == []  # self-contained: nothing loaded beyond the page itself

    summary = json.loads((run_dir / "summary.json").read_text())
    shown = browser.execute_script(FIGURES)
    want = expected(summary)
    assert {k: shown.get(k) for k in want} == want
    assert json.loads(shown["seed"]) == {k: summary[k] for k in SEED_KEYS}
    charts = browser.execute_script(
        "return [...document.querySelectorAll('svg.chart')]"
        ".map(s => [s.dataset.metric, s.getBoundingClientRect().width])"
    )
    assert [m for m, _ in charts] == ["ruff"] and all(w > 100 for _, w in charts)

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(int(height) + 100, 8000))
    shot = tmp_path / f"report-{name}.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    keep = os.environ.get("HARNESS_TEST_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)

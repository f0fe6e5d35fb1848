"""Recorded runs: runs/<run-id>/{manifest.json, events.jsonl, patches/, summary.json}.

events.jsonl is append-only and flushed per event, so a crash loses nothing already seen.
Everything is redacted before it is written.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from harness.redact import redact, redact_text


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Manifest(BaseModel):
    run_id: str
    harness_version: str
    tool_versions: dict[str, str] = Field(default_factory=dict)
    steps_path: str
    steps_sha256: str
    policy_path: str | None
    policy_sha256: str
    prompt_sha256: dict[str, str] = Field(default_factory=dict)
    repo: str
    base_commit: str
    branch: str
    provider: str
    model: str
    blocks: list[int]
    started: str
    finished: str | None = None
    exit_code: int | None = None


class Recorder:
    def __init__(self, runs_dir: Path, run_id: str) -> None:
        self.run_id = run_id
        self.dir = runs_dir / run_id
        (self.dir / "patches").mkdir(parents=True, exist_ok=False)
        self._seq = 0
        self._patches = 0
        self._events = (self.dir / "events.jsonl").open("a", encoding="utf-8")

    def event(self, kind: str, **data: Any) -> None:
        self._seq += 1
        line = {"seq": self._seq, "ts": utcnow(), "kind": kind, **redact(data)}
        self._events.write(json.dumps(line, default=str, ensure_ascii=False) + "\n")
        self._events.flush()
        os.fsync(self._events.fileno())

    def save_patch(self, name: str, diff: str) -> str:
        """Store a proposed diff; the running number keeps every proposal, even when a model
        reuses item ids across iterations."""
        self._patches += 1
        rel = f"patches/{self._patches:04d}-{name}.diff"
        (self.dir / rel).write_text(redact_text(diff), encoding="utf-8")
        return rel

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.dir / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(redact(obj), indent=2, default=str) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    def close(self) -> None:
        self._events.close()


def read_events(run_dir: Path) -> list[dict[str, Any]]:
    events = []
    with (run_dir / "events.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                events.append(json.loads(line))
    return events


def recorded_responses(run_dir: Path) -> list[dict[str, Any]]:
    """The model's answers, in order, as a scripted-provider script: enough to re-drive the run
    without the model."""
    return [
        {
            "phase": e["phase"],
            "tool": e.get("tool"),
            "input": e.get("input"),
            "text": e.get("text", ""),
        }
        for e in read_events(run_dir)
        if e["kind"] == "model_response"
    ]

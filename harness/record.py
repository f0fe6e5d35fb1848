"""Recorded runs: runs/<run-id>/{manifest.json, events.jsonl, bodies.jsonl.gz, patches/,
steps.md, policy.json, summary.json}.

events.jsonl is append-only, flushed and fsynced per event, so a crash (kill -9, a power
cut) loses nothing already seen; a last line cut short by a kill is dropped when read.
`harness resume` reopens the record where it stops (`Recorder(..., resume=True)`).
The large parts of events go to bodies.jsonl (compressed when the run ends) once each, by
content hash, and events refer to them: a request's system prompt, tools and messages, and each
gate result. A conversation
grows by a message or two per turn, and storing it whole in every request made the record grow
with the square of its length; a message that shows a file again after a small change shares
all but the changed lines with the earlier one (a message is stored as chunks of lines);
the gates at a block's end and at the next one's start measure the same tree.
`read_events` puts the bodies back, so readers see whole events, from old records too.
Everything is redacted before it is written.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from harness.providers.base import ModelRequest
from harness.redact import redact, redact_text

# 1: requests inline, no clock; 2: request bodies by hash, clock events, inputs in the record.
RECORD_FORMAT = 2
BODIES = "bodies.jsonl"
PACKED = BODIES + ".gz"
# A message is cut after each line that hashes to 0 modulo this: chunks of about this many
# lines, whose edges depend on the text, not on an offset (an edit changes the chunk it falls
# in, not every chunk after it).
_CHUNK_LINES = 16
# Fault injection for the resume tests: "applied:2" kills the process (SIGKILL, nothing runs
# after it) just before the second `applied` event would be written. Unset, it does nothing.
KILL_BEFORE = "HARNESS_KILL_BEFORE"


def new_run_id() -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def digest(obj: Any) -> str:
    return hashlib.sha256(canonical(obj).encode("utf-8")).hexdigest()


def rendered(request: ModelRequest) -> dict[str, Any]:
    """What the model is asked: the part of a request a replay must match exactly. The context
    is left out: it holds facts for offline providers, such as the worktree's path."""
    return {
        "phase": request.phase,
        "system": request.system,
        "messages": [m.model_dump() for m in request.messages],
        "tools": [t.model_dump() for t in request.tools],
        "tool_choice": request.tool_choice,
    }


def request_digest(request: ModelRequest) -> str:
    return digest(rendered(request))


class Manifest(BaseModel):
    run_id: str
    harness_version: str
    record_format: int = Field(1, description="how the record is written (RECORD_FORMAT)")
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
    identity: dict[str, str] = Field(
        default_factory=dict, description="who the run's commits are by (git's env variables)"
    )
    started: str
    finished: str | None = None
    exit_code: int | None = None
    resumed: list[str] = Field(
        default_factory=list, description="when `harness resume` continued the run"
    )


class Recorder:
    durable = True  # fsync each event: a crash loses nothing already seen

    def __init__(self, runs_dir: Path, run_id: str, *, resume: bool = False) -> None:
        """A new record, or with `resume` the existing one of an interrupted run, written on
        where it stops: the numbering of events and patches goes on, and the bodies stored
        already are not stored again."""
        self.run_id = run_id
        self.dir = runs_dir / run_id
        (self.dir / "patches").mkdir(parents=True, exist_ok=resume)
        self._seq = 0
        self._patches = 0
        self._stored: set[str] = set()
        kind, _, nth = os.environ.get(KILL_BEFORE, "").partition(":")
        self._kill: tuple[str, int] | None = (kind, int(nth or 1)) if kind else None
        self._kinds: dict[str, int] = {}
        if resume:
            events = read_events(self.dir, resolve=False)
            self._seq = max((int(e.get("seq", 0)) for e in events), default=0)
            self._patches = len(list((self.dir / "patches").glob("*.diff")))
            self._unpack()
        self._events = (self.dir / "events.jsonl").open("a", encoding="utf-8")
        self._bodies = (self.dir / BODIES).open("a", encoding="utf-8")

    def _unpack(self) -> None:
        """The bodies of a run that closed its record (Ctrl-C, a budget) are compressed: made
        plain again to be appended to; a killed run's are plain already."""
        plain, packed = self.dir / BODIES, self.dir / PACKED
        if packed.is_file() and not plain.is_file():
            tmp = plain.with_suffix(".tmp")
            with gzip.open(packed, "rb") as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst)
                dst.flush()
                os.fsync(dst.fileno())
            tmp.replace(plain)
            packed.unlink()
        if plain.is_file():
            _cut_partial_line(plain)
        self._stored = set(read_bodies(self.dir))

    def event(self, kind: str, **data: Any) -> None:
        self._kinds[kind] = self._kinds.get(kind, 0) + 1
        if self._kill == (kind, self._kinds[kind]):
            os.kill(os.getpid(), signal.SIGKILL)
        self._seq += 1
        line = {"seq": self._seq, "ts": utcnow(), "kind": kind, **redact(data)}
        self._events.write(json.dumps(line, default=str, ensure_ascii=False) + "\n")
        self._events.flush()
        if self.durable:
            os.fsync(self._events.fileno())

    def store(self, body: Any) -> str:
        """Keep `body` once (redacted), under the hash of what was written; return the hash."""
        clean = redact(body)
        key = digest(clean)
        if key not in self._stored:
            self._stored.add(key)
            self._bodies.write(canonical({"sha": key, "body": clean}) + "\n")
            self._bodies.flush()
            if self.durable:
                os.fsync(self._bodies.fileno())
        return key

    def store_text(self, text: str) -> list[str]:
        return [self.store(chunk) for chunk in chunks(text)]

    def store_message(self, message: dict[str, Any]) -> str:
        return self.store({"role": message["role"], "parts": self.store_text(message["content"])})

    def model_request(self, request: ModelRequest) -> str:
        """Record a request by reference; returns its digest (of the request as sent, before
        redaction: a replay compares what it would send with what was sent)."""
        shown = rendered(request)
        block = request.context.get("block")
        item = request.context.get("item")
        key = digest(shown)
        self.event(
            "model_request",
            phase=request.phase,
            block=block.get("number") if isinstance(block, dict) else None,
            item=item.get("id") if isinstance(item, dict) else None,
            request=key,
            system=self.store_text(shown["system"]),
            tools=self.store(shown["tools"]),
            tool_choice=shown["tool_choice"],
            messages=[self.store_message(m) for m in shown["messages"]],
        )
        return key

    def gates(
        self, label: str, tree: str, summary: Any, results: dict[str, Any], setup: str = ""
    ) -> None:
        """A gate run, each result by reference: the same tree measured again is stored once.
        `setup` is the digest of the configuration the gates ran with: a replay reuses the
        results where tree, setup and tool versions match."""
        refs = {name: self.store(result) for name, result in results.items()}
        self.event("gates", label=label, tree=tree, setup=setup, summary=summary, results=refs)

    def measured(self, layer: str, key: str, result: Any) -> None:
        """A measurement besides the gates (a guard layer, a re-run), by reference, under the
        key of what decides it (`Loop.measured`): a replay takes it from here."""
        self.event("measured", layer=layer, key=key, result=self.store(result))

    def save_patch(self, name: str, diff: str) -> str:
        """Store a proposed diff; the running number keeps every proposal, even when a model
        reuses item ids across iterations."""
        self._patches += 1
        rel = f"patches/{self._patches:04d}-{name}.diff"
        (self.dir / rel).write_text(redact_text(diff), encoding="utf-8")
        return rel

    def write_text(self, name: str, text: str) -> Path:
        path = self.dir / name
        path.write_text(redact_text(text), encoding="utf-8")
        return path

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.dir / name
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(json.dumps(redact(obj), indent=2, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())  # the manifest says what a resume finds: never half of it
        tmp.replace(path)
        return path

    def close(self) -> None:
        """Close the files; the finished bodies are compressed (a file shown again after a
        small change is mostly the same text: ten times smaller, measured on a builtin run)."""
        self._events.close()
        self._bodies.close()
        plain = self.dir / BODIES
        packed = self.dir / PACKED
        tmp = packed.with_suffix(".tmp")
        with (
            plain.open("rb") as src,
            tmp.open("wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as dst,
        ):
            shutil.copyfileobj(src, dst)
        tmp.replace(packed)
        plain.unlink()


def _cut_partial_line(path: Path) -> None:
    """Drop a last line a kill cut short, so what is appended starts a line of its own."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)
            fh.flush()
            os.fsync(fh.fileno())


def chunks(text: str) -> list[str]:
    """`text` cut into content-defined chunks (of lines) that join back to it."""
    out: list[str] = []
    start = 0
    for line in re.finditer(r"[^\n]*(?:\n|\Z)", text):
        end = line.end()
        if end == len(text) or _cut_after(line.group(0)):
            if end > start:
                out.append(text[start:end])
            start = end
        if end == len(text):
            break
    return out or [text]


def _cut_after(line: str) -> bool:
    mark = hashlib.sha1(line.encode("utf-8"), usedforsecurity=False).digest()[0]
    return mark % _CHUNK_LINES == 0


def read_bodies(run_dir: Path) -> dict[str, Any]:
    """The stored bodies by hash: compressed when the run finished, plain when it was killed."""
    packed, plain = run_dir / PACKED, run_dir / BODIES
    if packed.is_file():
        with gzip.open(packed, "rt", encoding="utf-8") as fh:
            return _bodies(fh)
    if plain.is_file():
        with plain.open(encoding="utf-8") as fh:
            return _bodies(fh)
    return {}


def _bodies(lines: Iterable[str]) -> dict[str, Any]:
    bodies: dict[str, Any] = {}
    for line in lines:
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError:
                if line.endswith("\n"):
                    raise
                break  # cut short by a kill: no event refers to it (it was written first)
            bodies[row["sha"]] = row["body"]
    return bodies


def _message(ref: str, bodies: dict[str, Any]) -> dict[str, Any]:
    stored = bodies[ref]
    return {"role": stored["role"], "content": "".join(bodies[p] for p in stored["parts"])}


def _resolved(event: dict[str, Any], bodies: dict[str, Any]) -> dict[str, Any]:
    try:
        if event["kind"] == "gates":
            return event | {"results": {k: bodies[v] for k, v in event["results"].items()}}
        if event["kind"] == "measured":
            return event | {"result": bodies[event["result"]]}
        return event | {
            "system": "".join(bodies[p] for p in event["system"]),
            "tools": bodies[event["tools"]],
            "messages": [_message(m, bodies) for m in event["messages"]],
        }
    except KeyError as exc:
        raise ValueError(
            f"event #{event.get('seq')}: request body {exc.args[0]} is not in {BODIES}"
        ) from None


def request_pairs(events: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each request with what came back: a response, or the provider's error."""
    pairs = []
    asked: dict[str, Any] | None = None
    for e in events:
        if e["kind"] == "model_request":
            asked = e
        elif e["kind"] in ("model_response", "model_error") and asked is not None:
            pairs.append((asked, e))
            asked = None
    return pairs


def read_events(
    run_dir: Path, *, resolve: bool = True, name: str = "events.jsonl"
) -> list[dict[str, Any]]:
    """The events in order. With `resolve`, each request's bodies are put back in place (old
    records hold them inline already); without, requests keep their references. `name` reads
    another log of the record (`events.interrupted-N.jsonl`, set aside by a resume)."""
    events = []
    with (run_dir / name).open(encoding="utf-8") as fh:
        lines = [line for line in fh if line.strip()]
    for n, line in enumerate(lines, 1):
        try:
            events.append(json.loads(line))
        except ValueError:
            if n < len(lines) or line.endswith("\n"):
                raise
            # A run killed in the middle of a write leaves its last line cut short: that event
            # was never seen whole, and what follows it was never written.
            break
    if not resolve or not any(_by_reference(e) for e in events):
        return events
    bodies = read_bodies(run_dir)
    return [_resolved(e, bodies) if _by_reference(e) else e for e in events]


def _by_reference(event: dict[str, Any]) -> bool:
    if event.get("kind") == "gates":
        return all(isinstance(v, str) for v in event.get("results", {}).values())
    if event.get("kind") == "measured":
        return isinstance(event.get("result"), str)
    return event.get("kind") == "model_request" and "request" in event


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
        for e in read_events(run_dir, resolve=False)
        if e["kind"] == "model_response"
    ]

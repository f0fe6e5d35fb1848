"""Responses read from a file, served in order: for tests and hand-written scenarios.

File format (JSON):
    {"model": "scripted",
     "responses": [{"phase": "plan", "tool": "submit_plan", "input": {...}, "text": "..."}]}
`phase` is optional; when given, a request of another phase is an error, so a scenario that
drifts out of step with the loop fails loudly instead of feeding the wrong answer.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.errors import ProviderError, UsageError
from harness.providers.base import ModelRequest, ModelResponse, Phase, Usage
from harness.record import recorded_responses


class ScriptedResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phase: Phase | None = Field(None, description="the phase this reply is for; None = any")
    tool: str | None = Field(None, description="tool the scripted model calls; None = text only")
    input: dict[str, Any] | None = Field(None, description="tool input, passed on unvalidated")
    text: str = ""
    usage: Usage = Field(default_factory=Usage, description="simulated usage, for budget tests")


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = "scripted"
    responses: list[ScriptedResponse]


def _first_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "<root>"
    return f"{source}: {loc}: {first['msg']}"


class ScriptedProvider:
    name = "scripted"

    def __init__(self, path: Path) -> None:
        if Path(path).is_dir():
            # A recorded run: replay the model's answers, in order, without the model.
            try:
                responses = recorded_responses(Path(path))
            except (OSError, ValueError, KeyError) as exc:
                raise UsageError(f"cannot replay run {path}: {exc}") from exc
            self._load({"model": f"replay:{Path(path).name}", "responses": responses}, str(path))
            return
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot read script {path}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise UsageError(f"script {path} is not valid JSON: {exc}") from exc
        self._load(raw, str(path))

    @classmethod
    def from_responses(
        cls, responses: Sequence[dict[str, Any] | ScriptedResponse], model: str = "scripted"
    ) -> ScriptedProvider:
        provider = cls.__new__(cls)
        items = [r.model_dump() if isinstance(r, ScriptedResponse) else r for r in responses]
        provider._load({"model": model, "responses": items}, "<responses>")
        return provider

    def _load(self, raw: Any, source: str) -> None:
        try:
            script = Script.model_validate(raw)
        except ValidationError as exc:
            raise UsageError(_first_error(exc, source)) from exc
        self.model = script.model
        self.responses = script.responses
        self.requests: list[ModelRequest] = []
        self.totals = Usage()
        self.calls = 0

    @property
    def phases(self) -> set[str]:
        """The phases the script answers: the loop asks for a review only where it has one."""
        return {r.phase for r in self.responses if r.phase is not None}

    @property
    def remaining(self) -> int:
        return len(self.responses) - self.calls

    def complete(self, request: ModelRequest) -> ModelResponse:
        index = self.calls
        if index >= len(self.responses):
            raise ProviderError(
                f"scripted provider: no response left for call #{index} (phase {request.phase}); "
                f"the script has {len(self.responses)}"
            )
        reply = self.responses[index]
        if reply.phase is not None and reply.phase != request.phase:
            raise ProviderError(
                f"scripted response #{index} expects phase '{reply.phase}', "
                f"but the request is for phase '{request.phase}'"
            )
        self.calls += 1
        self.requests.append(request)
        self.totals = self.totals + reply.usage
        return ModelResponse(
            tool=reply.tool,
            input=copy.deepcopy(reply.input),
            text=reply.text,
            usage=reply.usage.model_copy(),
            model=self.model,
            stop_reason="tool_use" if reply.tool else "end_turn",
        )

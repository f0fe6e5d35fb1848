"""The Model plug-in point: one Protocol, pydantic requests and responses."""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

Phase = Literal["plan", "todo", "execute", "review", "steps"]


class ToolSpec(BaseModel):
    name: str
    description: str
    input_schema: dict[str, Any]


class Message(BaseModel):
    """Plain-text turns; an earlier tool call is replayed to the model as JSON text."""

    role: Literal["user", "assistant"]
    content: str


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{k: getattr(self, k) + getattr(other, k) for k in Usage.model_fields})


class ModelRequest(BaseModel):
    phase: Phase
    system: str = Field(description="stable prefix (cached by providers that can)")
    messages: list[Message]
    tools: list[ToolSpec]
    tool_choice: str | None = Field(None, description="force this tool; None = any tool")
    context: dict[str, Any] = Field(
        default_factory=dict,
        description="structured facts (block, findings, files) for offline providers",
    )


class ModelResponse(BaseModel):
    tool: str | None = Field(None, description="name of the tool the model called, if any")
    input: dict[str, Any] | None = Field(None, description="the tool input, unvalidated")
    text: str = ""
    usage: Usage = Field(default_factory=Usage)
    model: str = ""
    stop_reason: str | None = None
    attempts: int = Field(
        1, ge=1, description="HTTP attempts the answer took, failed ones included: each was billed"
    )


@runtime_checkable
class Provider(Protocol):
    name: str
    model: str

    def complete(self, request: ModelRequest) -> ModelResponse: ...

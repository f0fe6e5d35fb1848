"""docs/policy.md, generated from the pydantic models so the reference cannot drift.

    python -m harness.policydoc > docs/policy.md

tests/test_policydoc.py fails when the file and the models disagree.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from harness.policy import Policy

INTRO = """# Policy reference

A policy is a TOML file: `harness.toml` at the repository root (written by `harness init`), or
`--policy FILE`, or else the shipped `policies/default.toml` (the seed's T4 guardrails, naming no
project). Unknown keys are errors, and every wrong value is reported at once. With `detect = true`
(the default) the gate settings a file leaves unset are detected from the repository: the
layout (`src/`, flat packages, a single module), the packages, the tests, the project's
`.venv`/`venv` interpreter, and which import-linter and bandit configs exist. The STEPS script's
gate commands then refine the policy for a run (`ruff check lukhas` sets the ruff gate's paths).

This page is generated from `harness/policy.py` by `python -m harness.policydoc`; do not edit it
by hand.
"""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " \\| ".join(json.dumps(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        return f"list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return f"table of {_type_name(get_args(tp)[1])}"
    if tp is type(None):
        return "none"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "table"
    return getattr(tp, "__name__", str(tp))


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        factory = typing.cast(Any, field.default_factory)
        value = factory()
        if isinstance(value, BaseModel):
            return "(table)"
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    return f"`{json.dumps(value)}`"


def _limits(field: FieldInfo) -> str:
    parts = []
    for meta in field.metadata:
        for name, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(meta, name, None)
            if bound is not None:
                parts.append(f"{sign} {bound}")
    return f" ({', '.join(parts)})" if parts else ""


def _model_of(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    if get_origin(tp) in (dict, list):
        inner = get_args(tp)[-1]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return None


def _section(model: type[BaseModel], prefix: str, out: list[str]) -> None:
    rows = []
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        sub = _model_of(field.annotation)
        if sub is not None:
            key = f"{prefix}.{name}" if prefix else name
            if get_origin(field.annotation) is dict:
                key += ".NAME" if name == "prices" else ".N"
            nested.append((key + "[]" if get_origin(field.annotation) is list else key, sub))
            if get_origin(field.annotation) is not list:
                continue  # a list of tables keeps its row too: it is a key of its table
        desc = (field.description or "").replace("|", "\\|")
        rows.append(
            f"| `{name}` | {_type_name(field.annotation)}{_limits(field)} | {_default(field)} | "
            f"{desc} |"
        )
    if rows:
        # A list of tables is TOML's array of tables: [[approve.rules]], one per entry.
        if prefix.endswith("[]"):
            out.append(f"## `[[{prefix.removesuffix('[]')}]]`")
        else:
            out.append(f"## `[{prefix}]`" if prefix else "## Top level")
        doc = (model.__doc__ or "").strip()
        if doc and prefix:
            out.append("")
            out.append(" ".join(doc.split()))
        out += ["", "| key | type | default | meaning |", "| --- | --- | --- | --- |", *rows, ""]
    for key, sub in nested:
        _section(sub, key, out)


def render() -> str:
    out = [INTRO]
    _section(Policy, "", out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")

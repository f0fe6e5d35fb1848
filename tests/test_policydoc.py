from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from harness import policydoc
from harness.policy import Policy

DOC = Path(__file__).resolve().parent.parent / "docs" / "policy.md"


def test_docs_policy_md_is_generated_from_the_models() -> None:
    assert DOC.read_text(encoding="utf-8") == policydoc.render(), (
        "docs/policy.md is stale: python -m harness.policydoc > docs/policy.md"
    )


def _models(model: type[BaseModel]) -> list[type[BaseModel]]:
    found = [model]
    for field in model.model_fields.values():
        sub = policydoc._model_of(field.annotation)
        if sub is not None:
            found += _models(sub)
    return found


def test_every_policy_key_says_what_it_means() -> None:
    missing = [
        f"{m.__name__}.{name}"
        for m in _models(Policy)
        for name, field in m.model_fields.items()
        if not field.description
    ]
    assert missing == []


def test_every_key_appears_in_the_reference() -> None:
    text = policydoc.render()
    for m in _models(Policy):
        for name in m.model_fields:
            assert f"`{name}`" in text or f"{name}]`" in text or f"{name}." in text, name

"""Prompt templates (`prompts/<name>.j2`), rendered with Jinja2 and StrictUndefined so a
missing variable is an error, never an empty hole in what the model reads."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)

from harness.errors import UsageError
from harness.resources import data_dir

SUFFIX = ".j2"


def prompts_dir() -> Path:
    return data_dir("prompts")


@lru_cache(maxsize=1)
def _environment() -> Environment:
    # Autoescape is off on purpose: the output is plain text for a model, not HTML, and code in
    # findings and files (`<`, `&`, quotes) must reach it unchanged.
    return Environment(  # nosec B701
        loader=FileSystemLoader(prompts_dir()),
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, **variables: Any) -> str:
    try:
        template = _environment().get_template(name + SUFFIX)
        return template.render(**variables)
    except TemplateNotFound as exc:
        raise UsageError(f"no prompt template '{name}{SUFFIX}' in {prompts_dir()}") from exc
    except TemplateSyntaxError as exc:
        raise UsageError(f"prompt template {name}{SUFFIX}:{exc.lineno}: {exc.message}") from exc
    except UndefinedError as exc:
        raise UsageError(f"prompt template {name}{SUFFIX}: {exc.message}") from exc


def prompt_hashes() -> dict[str, str]:
    """sha256 of every template file, by file name: recorded in run manifests."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(prompts_dir().glob("*" + SUFFIX))
    }

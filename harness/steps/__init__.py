"""STEPS scripts: markdown runbooks parsed into blocks, gates, targets and guardrails.

`parse.py` reads the script (markdown-it-py tokens, `text.py`); `commands.py` recognises and
maps commands; `targets.py` and `guardrails.py` read what the text states; `policy.py` applies
a script to a policy and remaps its paths; `render.py` writes a parse back as a script.
"""

from harness.steps.commands import map_command, not_a_command, split_commands
from harness.steps.guardrails import classify_guardrail
from harness.steps.model import (
    Block,
    GateMapping,
    GateName,
    Guardrail,
    GuardrailKind,
    Metric,
    StepsScript,
    Target,
)
from harness.steps.parse import load_steps, parse_steps, repair_text
from harness.steps.policy import (
    apply_to_policy,
    block_lanes,
    named_paths,
    parse_path_map,
    remap_paths,
)
from harness.steps.render import to_markdown

__all__ = [
    "Block",
    "GateMapping",
    "GateName",
    "Guardrail",
    "GuardrailKind",
    "Metric",
    "StepsScript",
    "Target",
    "apply_to_policy",
    "block_lanes",
    "classify_guardrail",
    "load_steps",
    "map_command",
    "named_paths",
    "not_a_command",
    "parse_path_map",
    "parse_steps",
    "remap_paths",
    "repair_text",
    "split_commands",
    "to_markdown",
]

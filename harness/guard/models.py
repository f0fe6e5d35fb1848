"""What the guard returns: a verdict with per-file counts and actionable violations."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

# The guard's layers, cheapest first; a refusal by one stops the more expensive ones.
# static: the diff and the files it writes (size, paths, lanes, suppressions, test AST rules);
# secrets: key formats in any added text; behaviour: pytest's collection and outcomes by test
# id before and after; mutation: new or changed tests must kill mutants of the code they cover;
# review: a second model's opinion on the accepted patch.
Layer = Literal["static", "secrets", "behaviour", "mutation", "review"]


class FileStat(BaseModel):
    """Changed lines of one file, counted like `git diff --numstat` on the applied change."""

    path: str = Field(description="repo-relative path after the patch (forward slashes)")
    added: int = Field(ge=0)
    removed: int = Field(ge=0)


class Violation(BaseModel):
    """One reason a patch is refused; the message tells the model what to change."""

    rule: str = Field(description="rule name: parse, locate, size, paths, gate_config, ...")
    layer: Layer = Field("static", description="the guard layer that refused")
    path: str | None = Field(None, description="file the violation is about, if any")
    line: int | None = Field(None, description="1-based line in the new (or old) file")
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


class LayerRun(BaseModel):
    """One guard layer as it ran on a patch: so a verdict says what was (and was not) checked."""

    layer: Layer
    ran: bool = Field(description="false: skipped (an earlier layer refused, or it cannot run)")
    why: str = Field("", description="why it was skipped, or what it covered")
    seconds: float = Field(0.0, ge=0)


class Verdict(BaseModel):
    """The guard's decision about one patch. Never a partial result: all files or none."""

    accepted: bool
    repaired: bool = Field(False, description="the patch needed a safe repair to apply")
    repairs: list[str] = Field(default_factory=list, description="what was repaired, one line each")
    files: list[FileStat] = Field(default_factory=list)
    violations: list[Violation] = Field(default_factory=list)
    layers: list[LayerRun] = Field(default_factory=list, description="the layers, in order")
    diff: str = Field("", description="the canonical diff that would be applied")
    contents: dict[str, bytes | None] = Field(
        default_factory=dict,
        exclude=True,
        description="new file contents by path; None deletes the file",
    )
    base: dict[str, str | None] = Field(
        default_factory=dict,
        exclude=True,
        description="sha256 of each touched file as checked (None: did not exist)",
    )

    def summary(self) -> str:
        """One line: what the verdict says."""
        if self.accepted:
            changed = ", ".join(f"{f.path} +{f.added}/-{f.removed}" for f in self.files)
            return f"accepted: {changed}" if changed else "accepted"
        first = self.violations[0] if self.violations else None
        more = f" (+{len(self.violations) - 1} more)" if len(self.violations) > 1 else ""
        return f"rejected: [{first.rule}] {first.message}{more}" if first else "rejected"

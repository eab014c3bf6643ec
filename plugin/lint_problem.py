"""A lint problem (or warning) with its file, line, column and rule, and a lint's result."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    col: int
    rule_id: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: [{self.rule_id or '-'}] {self.message}"

    @property
    def warning(self) -> bool:
        """A warning: the rule set is still valid."""
        return self.message.startswith("warning: ")


class LintResult(tuple):
    """``(ruleset, problems)`` as before (the ruleset is None when there are problems), and
    ``.warnings``: legal but unwise rules (a coupon that never expires, no holdout, ...)."""

    def __new__(cls, ruleset, problems, warnings=()):
        self = super().__new__(cls, (ruleset, problems))
        self.warnings = sorted(warnings)
        return self

    @property
    def ruleset(self):
        return self[0]

    @property
    def problems(self) -> list[Problem]:
        return self[1]

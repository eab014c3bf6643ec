"""Keepwell's error hierarchy: every error carries enough context to act on."""


class KeepwellError(Exception):
    """Base of every error Keepwell raises on purpose."""


class EventError(KeepwellError, ValueError):
    """A canonical event is malformed."""


class RuleError(KeepwellError):
    """A rule set failed validation; ``problems`` lists each one with file, line and rule."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

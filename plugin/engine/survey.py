"""A rule's one-question survey, asked on the personal page of its touches.

```yaml
survey:
  id: coffee_taste            # optional: the rule's id
  question: What did you think of the coffee?
  choices: [Loved it, It was fine, Not for me]   # optional: a free-text answer without
```

The customer's answer becomes a ``survey.answered`` event with data ``{question, answer, touch,
rule}``, which rules trigger on and test with the ``survey.*`` fields.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

MAX_QUESTION = 300
MAX_CHOICE = 100
#: A free-text answer is cut to this many characters.
MAX_ANSWER = 500
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Survey:
    id: str
    question: str
    choices: tuple[str, ...] = ()  # empty: the customer writes the answer


def parse(value: Any, path: tuple[Any, ...], report: Callable[[tuple[Any, ...], str], None],
          rule_id: str) -> Survey | None:
    """The rule's survey, or None with each problem reported (path, message)."""
    if not isinstance(value, dict):
        report(path, "survey: write a mapping with a question (and optional choices)")
        return None
    ok = True
    survey_id = value.get("id", rule_id)
    if not isinstance(survey_id, str) or not _ID.match(survey_id):
        report(path + ("id",), f"survey id {survey_id!r}: lower case letters, digits and underscores")
        ok = False
    question = value.get("question")
    if not isinstance(question, str) or not question.strip():
        report(path + ("question",), "survey: the question must not be empty")
        ok = False
    elif len(question) > MAX_QUESTION:
        report(path + ("question",), f"survey question is {len(question)} characters; keep it under {MAX_QUESTION}")
        ok = False
    choices = value.get("choices", [])
    if not isinstance(choices, list):
        report(path + ("choices",), "survey choices: write a list, e.g. [Loved it, It was fine]")
        return None
    seen: set[str] = set()
    for i, choice in enumerate(choices):
        text = choice.strip() if isinstance(choice, str) else ""
        if not text or len(text) > MAX_CHOICE:
            report(path + ("choices", i), f"survey choice {choice!r}: write 1 to {MAX_CHOICE} characters")
            ok = False
        elif text.casefold() in seen:
            report(path + ("choices", i), f"survey choice {choice!r} is listed twice")
            ok = False
        seen.add(text.casefold())
    if len(choices) == 1:
        report(path + ("choices",), "a survey with choices needs at least two (or none, for a written answer)")
        ok = False
    if not ok:
        return None
    assert isinstance(question, str)  # checked above
    return Survey(survey_id, question.strip(), tuple(str(c).strip() for c in choices))


def answer(survey: Survey, given: str | None) -> str | None:
    """The answer as recorded: one of the choices (as written in the rule), or the free text,
    trimmed; None when it is not an answer to this survey."""
    text = " ".join((given or "").split())
    if survey.choices:
        return next((c for c in survey.choices if c == text), None)
    return text[:MAX_ANSWER] or None

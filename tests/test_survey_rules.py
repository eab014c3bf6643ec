"""A rule's one-question survey: linted with file, line and rule; its answers are fields rules test."""
from datetime import datetime, timezone

import pytest

from plugin.engine.decide import decide
from plugin.engine.state import new_state
from plugin.engine.survey import Survey, answer
from plugin.events import Event
from plugin.rulefile import RULES_DIR, lint

RULE = """rules:
  - id: thanks
    trigger: customer.created
    actions:
      - email: {{template: welcome, subject: Hi}}
    survey:
{survey}
  - id: follow_up
    trigger: survey.answered
    when:
      all:
        - survey.question: {{equals: taste}}
        - survey.answer: {{equals: Not for me}}
    actions:
      - tag: unhappy
"""


def lint_survey(tmp_path, survey: str):
    path = tmp_path / "rules.yaml"
    path.write_text(RULE.format(survey=survey))
    ruleset, problems = lint([path], RULES_DIR / "templates")
    return ruleset, [str(p).replace(str(path), "rules.yaml") for p in problems]


def test_a_survey_with_choices_compiles(tmp_path):
    ruleset, problems = lint_survey(tmp_path, "      id: taste\n      question: How was it?\n"
                                              "      choices: [Loved it, Not for me]")
    assert problems == []
    assert ruleset.by_id["thanks"].survey == Survey("taste", "How was it?", ("Loved it", "Not for me"))


def test_a_survey_without_an_id_is_the_rules_and_takes_free_text(tmp_path):
    ruleset, problems = lint_survey(tmp_path, "      question: \"מה דעתך על הקפה?\"")
    assert problems == []
    survey = ruleset.by_id["thanks"].survey
    assert survey == Survey("thanks", "מה דעתך על הקפה?")
    assert answer(survey, "  טעים   מאוד ") == "טעים מאוד"
    assert answer(survey, "   ") is None
    assert answer(survey, "x" * 900) == "x" * 500


@pytest.mark.parametrize("survey, expected", [
    ("      question: How was it?\n      choices: [Loved it]",
     "rules.yaml:8:7: [thanks] a survey with choices needs at least two (or none, for a written answer)"),
    ("      question: How was it?\n      choices: [Loved it, loved it]",
     "rules.yaml:8:27: [thanks] survey choice 'loved it' is listed twice"),
    ("      question: \"   \"",
     "rules.yaml:7:7: [thanks] survey: the question must not be empty"),
    ("      question: How was it?\n      colour: red",
     None),  # the schema's: an unknown field
])
def test_survey_problems_name_file_line_and_rule(tmp_path, survey, expected):
    _, problems = lint_survey(tmp_path, survey)
    assert len(problems) == 1, problems
    if expected is not None:
        assert problems[0] == expected
    else:
        assert problems[0].startswith("rules.yaml:8:") and "colour" in problems[0]


def test_a_rule_triggers_on_the_answer(tmp_path):
    ruleset, problems = lint_survey(tmp_path, "      id: taste\n      question: How was it?\n"
                                              "      choices: [Loved it, Not for me]")
    assert problems == []
    now = datetime(2026, 12, 8, 9, tzinfo=timezone.utc)

    def answered(text):
        return Event(id=f"page:n:{text}", type="survey.answered", shop="s", customer_id="c", occurred_at=now,
                     data={"question": "taste", "answer": text, "touch": "k", "rule": "thanks"})

    fired = [d.rule_id for d in decide(answered("Not for me"), new_state("s", "c"), ruleset, now) if d.kind == "touch"]
    assert fired == ["follow_up"]
    assert not [d for d in decide(answered("Loved it"), new_state("s", "c"), ruleset, now) if d.kind == "touch"]

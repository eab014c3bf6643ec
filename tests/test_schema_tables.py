"""rules/schema.json names the operators, trigger events, occasions and action types a rule may
use (editors complete them from it); the engine keeps its own tables of the same names. These
tests fail as soon as one side gains a name the other lacks."""
from __future__ import annotations

import json

import pytest

from plugin.engine.conditions import OPERATORS
from plugin.engine.ruleset import OCCASIONS, Problems, compile_ruleset
from plugin.engine.triggers import TRIGGER_EVENTS
from plugin.rulefile import SCHEMA_PATH, _validator

DEFS = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))["$defs"]
TRIGGER = DEFS["trigger"]["oneOf"]

# One valid spec per action type the schema allows: an action type added to the schema needs one here.
ACTION_SPECS = {
    "coupon": {"discount": "10%"},
    "email": {"template": "welcome", "subject": "Welcome"},
    "sms": {"template": "welcome"},
    "message": {"channel": ["sms", "email"], "sms": {"template": "welcome"}, "email": {"template": "welcome", "subject": "Hi"}},
    "tag": "vip",
    "tier": "gold",
    "signal": {"event": "referral.converted", "to": "referrer"},
}


def test_the_schema_offers_exactly_the_engine_operators():
    assert list(DEFS["test"]["properties"]) == list(OPERATORS)


def test_the_schema_offers_exactly_the_engine_trigger_events():
    event = next(t for t in TRIGGER if t["type"] == "string")
    assert event["examples"] == list(TRIGGER_EVENTS)


def test_the_schema_offers_exactly_the_engine_occasions():
    occasion = next(t for t in TRIGGER if "occasion" in t.get("properties", {}))
    assert occasion["properties"]["occasion"]["examples"] == list(OCCASIONS)


def test_every_action_type_of_the_schema_has_a_spec_here():
    assert set(DEFS["action"]["properties"]) == set(ACTION_SPECS)


@pytest.mark.parametrize("kind", sorted(ACTION_SPECS))
def test_each_action_type_of_the_schema_compiles_to_that_action(kind):
    doc = {"rules": [{"id": f"with_{kind}", "trigger": "order.paid", "actions": [{kind: ACTION_SPECS[kind]}]}]}
    assert list(_validator().iter_errors(doc)) == []
    problems = Problems()
    ruleset = compile_ruleset([("t.yaml", doc)], None, problems)
    assert ruleset is not None, problems
    (action,) = ruleset.rules[0].actions
    assert (action["type"] if isinstance(action, dict) else action.type) == kind

"""Typed actions: the JSON form the ledger holds reads back exactly, a malformed one is refused
when read, and every action kind the rule schema allows has a spec, an action and an effect handler."""
from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from plugin.effects import HANDLERS
from plugin.engine.actions import ACTIONS, Coupon, Email, Signal, Tag, Tier, action_from_dict
from plugin.engine.specs import SPECS
from plugin.engine.decisions import Decision, Kind
from plugin.events import Money, event_from_dict
from plugin.simulate import simulate, time_ordered
from plugin.sample_history import generate
from engine_helpers import SHOP, day, shipped_rules

SCHEMA = Path(__file__).resolve().parents[1] / "rules" / "schema.json"

PERSONAL = {
    "type": "coupon", "key": "shop-1:winback:7421852987654321123:lapse:5101:0",
    "code": "MISSYOU-K3J5Q2ZX7ABC", "title": "Win-back MISSYOU-K3J5Q2ZX7ABC",
    "discount_type": "percent", "value": "20", "currency": None,
    "expires_at": "2026-11-14T13:12:35+00:00", "starts_at": "2026-10-14T13:12:35+00:00",
    "minimum_subtotal": None, "products": [], "collections": ["brewing"],
    "customer_id": "7421852987654321123", "email": "ana.silva@example.com",
    "usage_limit": 1, "once_per_customer": True,
}
REFERRAL = {**PERSONAL, "key": "shop-1:referral_invite:25:order.paid:727:0", "code": "REF-7Q2MPX4K",
            "title": "Friend discount", "discount_type": "fixed", "value": "10.50", "currency": "ILS",
            "expires_at": None, "minimum_subtotal": {"amount": "30", "currency": "ILS"}, "products": ["42"],
            "collections": [], "customer_id": None, "email": None, "usage_limit": None}
#: JSON forms as ledger rows written before typed actions hold them (Decision.to_dict()["actions"][i])
LEDGER = [
    PERSONAL,
    REFERRAL,
    {"type": "email", "key": "shop-1:welcome:25:customer.created:1", "template": "welcome",
     "subject": "Welcome, {{ customer.first_name }}", "customer_id": "25", "to": "john.doe@example.com"},
    {"type": "email", "key": "shop-1:remind:25:captured:o1:2026-12-20:1", "template": "occasion",
     "subject": "Soon: {{ occasion.title }}", "customer_id": "25", "to": None,
     "occasion": {"kind": "birthday", "title": "Birthday", "recipient": "אמא", "date": "2026-12-20"}},
    {"type": "sms", "key": "shop-1:remind_sms:25:captured:o1:2026-12-20:1", "template": "occasion_reminder",
     "customer_id": "25", "to": "+972525551234",
     "occasion": {"kind": "birthday", "title": "Birthday", "recipient": "אמא", "date": "2026-12-20"}},
    {"type": "sms", "key": "shop-1:second:25:order.paid:727:0", "template": "second", "customer_id": "25", "to": None},
    {"type": "tag", "tag": "vip-gold", "key": "shop-1:gold:25:order.paid:727:1"},
    {"type": "tier", "tier": "gold", "key": "shop-1:gold:25:order.paid:727:0"},
    {"type": "signal", "key": "shop-1:referral_signal:31:order.paid:9:0", "event": "referral.converted",
     "customer_id": "25", "data": {"friend_id": "31", "friend_email": None, "order_id": "9",
                                   "order_total": {"amount": "64.90", "currency": "USD"}}},
    {"type": "signal", "key": "shop-1:referral_signal:32:order.paid:10:0", "event": "referral.converted",
     "customer_id": None, "data": {"friend_id": "32", "friend_email": "b@example.com"}},
]


@pytest.mark.parametrize("row", LEDGER, ids=lambda r: f"{r['type']}:{r['key'].rsplit(':', 2)[-2]}")
def test_a_ledger_row_reads_back_exactly(row):
    action = action_from_dict(json.loads(json.dumps(row)))
    assert type(action) is ACTIONS[row["type"]]
    assert action.to_dict() == row
    assert action_from_dict(json.loads(json.dumps(action.to_dict()))) == action


def test_the_typed_values_are_native():
    coupon, referral = action_from_dict(PERSONAL), action_from_dict(REFERRAL)
    assert coupon == Coupon(key=PERSONAL["key"], code="MISSYOU-K3J5Q2ZX7ABC", title="Win-back MISSYOU-K3J5Q2ZX7ABC",
                            discount_type="percent", value=Decimal("20"), currency=None,
                            expires_at=datetime(2026, 11, 14, 13, 12, 35, tzinfo=timezone.utc),
                            starts_at=datetime(2026, 10, 14, 13, 12, 35, tzinfo=timezone.utc),
                            collections=("brewing",), customer_id="7421852987654321123",
                            email="ana.silva@example.com", usage_limit=1)
    assert referral.minimum_subtotal == Money(Decimal("30"), "ILS") and referral.value == Decimal("10.50")
    with pytest.raises(FrozenInstanceError):
        coupon.code = "OTHER"  # type: ignore[misc]


@pytest.mark.parametrize("row, problem", [
    ({**PERSONAL, "value": "ten"}, "value 'ten' is not a number"),
    ({**PERSONAL, "value": "-5"}, "is not a positive number"),
    ({**PERSONAL, "discount_type": "bogo"}, "discount_type 'bogo' is not one of percent, fixed"),
    ({**PERSONAL, "starts_at": "yesterday"}, "malformed coupon"),
    ({**PERSONAL, "minimum_subtotal": {"amount": "x", "currency": "USD"}}, "minimum_subtotal 'x' is not a number"),
    ({k: v for k, v in PERSONAL.items() if k != "code"}, "malformed coupon"),
    ({"type": "email", "key": "k:0", "template": "welcome"}, "malformed email action 'k:0': KeyError"),
    ({"type": "fax", "key": "k:0", "text": "hi"}, "not an action"),
    ({"type": "sms", "key": "k:0", "text": "hi"}, "malformed sms action .k:0.: KeyError"),
    ("coupon", "not an action"),
])
def test_a_malformed_ledger_row_is_refused_when_read(row, problem):
    with pytest.raises(ValueError, match=problem):
        action_from_dict(row)


def test_every_action_kind_of_the_schema_has_a_spec_an_action_and_a_handler():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    kinds = set(schema["$defs"]["action"]["properties"])
    # a message is the action of the channel it chooses (an email or an sms): no kind of its own
    assert kinds == set(SPECS) == set(ACTIONS) | {"message"} and set(ACTIONS) == set(HANDLERS)
    for kind in kinds - {"message"}:
        assert SPECS[kind].type == ACTIONS[kind].type == kind


def test_the_marketing_kinds_need_consent():
    assert {k for k, s in SPECS.items() if s.marketing} == {"coupon", "email", "sms", "message"}


def test_every_touch_of_the_shipped_packs_round_trips_through_the_ledger_form():
    """What the engine makes from every shipped pack over a generated year, written and read back."""
    rules = shipped_rules()
    events = time_ordered(event_from_dict(e) for e in generate(customers=300, days=365, seed=7, shop=SHOP, start=day(0)))
    report = simulate(events, rules, until=day(400))
    touches = [d for d in report.ledger.values() if d.kind == Kind.TOUCH]
    kinds = {a.type for d in touches for a in d.actions}
    assert kinds == {"coupon", "email", "tag", "tier"}, kinds  # signals: the LEDGER rows above, tests/test_engine.py
    for d in touches:
        text = json.dumps(d.to_dict())
        back = Decision.from_dict(json.loads(text))
        assert back == d and json.dumps(back.to_dict()) == text


def test_an_action_is_made_from_its_spec_once_per_touch():
    """A spec is what the rule says (checked at load); the action adds what one touch needs."""
    tag, tier = Tag(key="k:0", tag="vip"), Tier(key="k:1", tier="gold")
    assert tag.describe() == "tag vip" and tier.describe() == "tier gold"
    email = Email(key="k:2", template="welcome", subject="Hi", customer_id="25")
    assert email.to_dict() == {"type": "email", "key": "k:2", "template": "welcome", "subject": "Hi",
                               "customer_id": "25", "to": None}
    signal = Signal(key="k:3", event="referral.converted", customer_id=None, data={})
    assert signal.describe() == "referral.converted for customer None"
    coupon = action_from_dict(PERSONAL)
    assert replace(coupon, code="MISSYOU-X").describe() == "coupon MISSYOU-X"
    assert coupon.expires_at - coupon.starts_at == timedelta(days=31)

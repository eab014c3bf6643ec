"""The customer's channels in the canonical model and the fold: SMS consent (separate from
email's), the mobile number it is for, and the channel the customer prefers."""
from __future__ import annotations

from plugin.engine import apply, new_state
from plugin.engine.state import state_from_dict, state_to_dict
from plugin.events import event_from_dict, event_to_dict
from tests.engine_helpers import SHOP, _event, customer_created, day


def customer_updated(customer_id, at, event_id, **customer):
    return _event("customer.updated", event_id, customer_id, at, customer={"id": customer_id, **customer})


def test_sms_consent_and_phone_fold_newest_wins():
    s = apply(new_state(SHOP, "7"), customer_created("7", day(0), accepts_marketing=False))
    assert (s.sms_consent, s.sms_phone, s.accepts_marketing) == (False, None, False)
    s = apply(s, customer_updated("7", day(1), "u1", phone="+972 52-555-0101", sms_consent=True))
    assert (s.sms_consent, s.sms_phone, s.sms_consent_at) == (True, "+972 52-555-0101", day(1))
    assert s.accepts_marketing is False  # email consent is its own
    # an older delivery arriving late neither withdraws consent nor replaces the number
    s2 = apply(s, customer_updated("7", day(0.5), "u0", phone="+1 415 555 0100", sms_consent=False))
    assert (s2.sms_consent, s2.sms_phone) == (True, "+972 52-555-0101")
    s3 = apply(s, customer_updated("7", day(2), "u2", sms_consent=False))
    assert (s3.sms_consent, s3.sms_phone, s3.sms_consent_at) == (False, "+972 52-555-0101", day(2))


def test_a_payload_that_does_not_say_keeps_what_is_known():
    s = apply(new_state(SHOP, "7"), customer_updated("7", day(1), "u1", phone="+14155550100", sms_consent=True))
    s = apply(s, customer_updated("7", day(2), "u2", first_name="Dana"))
    assert (s.sms_consent, s.sms_phone, s.first_name) == (True, "+14155550100", "Dana")


def test_preference_changed_sets_and_clears_the_preferred_channel():
    s = new_state(SHOP, "7")
    s = apply(s, _event("customer.preference_changed", "p1", "7", day(1), data={"preferred_channel": "sms"}))
    assert s.preferred_channel == "sms"
    s = apply(s, _event("customer.preference_changed", "p2", "7", day(2), data={"preferred_channel": None}))
    assert s.preferred_channel is None


def test_state_and_event_json_round_trip_the_channel_fields():
    s = apply(new_state(SHOP, "7"), customer_updated("7", day(1), "u1", phone="+14155550100", sms_consent=True))
    s = apply(s, _event("customer.preference_changed", "p1", "7", day(2), data={"preferred_channel": "sms"}))
    assert state_from_dict(state_to_dict(s)) == s
    e = customer_updated("7", day(1), "u1", phone="+14155550100", sms_consent=False)
    assert event_from_dict(event_to_dict(e)) == e
    assert e.customer.sms_consent is False and e.customer.phone == "+14155550100"


def test_a_state_stored_before_channels_reads_as_no_sms_consent():
    d = state_to_dict(new_state(SHOP, "7"))
    for k in ("sms_phone", "sms_consent", "sms_consent_at", "preferred_channel"):
        d.pop(k)
    s = state_from_dict(d)
    assert (s.sms_consent, s.sms_phone, s.preferred_channel) == (False, None, None)

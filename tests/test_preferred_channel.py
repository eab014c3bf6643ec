"""The preferred channel: a ``message`` action picks, at decision time and in the pure engine, the
channel among those the customer consented to and can be reached on: the one they stated, else
the one whose messages they answered most (a personal page opened from them, page.opened
data.channel, or their coupon redeemed in a paid order), else the shop's default
order; ``channel: [sms, email]`` is an explicit fallback order. The cap counts touches across
channels, and lint reports a message that names a channel it says nothing for."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from plugin.engine.decisions import Kind, Reason
from plugin.engine.ruleset import Problems, compile_ruleset
from plugin.engine.state import state_from_dict, state_to_dict
from engine_helpers import Shell, _event, iso, order_paid, rules_from

NOON = datetime(2026, 12, 10, 10, tzinfo=timezone.utc)  # 12:00 in Jerusalem
BOTH = {"email": {"template": "thanks", "subject": "תודה"}, "sms": {"template": "thanks"}}


def rule(channel, rule_id="thanks", **extra):
    return {"id": rule_id, "name": "Thanks", "trigger": "order.paid", "holdout": "0%",
            "actions": [{"coupon": {"discount": "15%"}}, {"message": {"channel": channel, **BOTH}}], **extra}


def customer(cid, *, email=True, sms=True, phone="+972525551234"):
    c = {"id": cid, "email": f"dana.{cid}@example.co.il", "first_name": "דנה", "accepts_marketing": email,
         "phone": phone, "sms_consent": sms, "created_at": iso(NOON - timedelta(days=1))}
    return _event("customer.created", f"cc-{cid}", cid, NOON - timedelta(days=1),
                  customer={k: v for k, v in c.items() if v is not None})


def prefers(cid, channel, at):
    return _event("customer.preference_changed", f"pref-{cid}-{iso(at)}", cid, at, data={"preferred_channel": channel})


def opened(cid, channel, n):
    return _event("page.opened", f"open-{cid}-{n}", cid, NOON - timedelta(hours=n), data={"touch": None, "channel": channel})


def channel_of(decision):
    (message,) = [a for a in decision.actions if a.type in ("email", "sms")]
    return message.type


def decide_for(rules, *events, order="9001"):
    shell = Shell(rules)
    for e in events:
        shell.handle(e)
    return shell.handle(order_paid(events[0].customer_id, order, NOON))


@pytest.mark.parametrize("events, settings, expected", [
    ([customer("1")], None, "email"),  # nothing known: the shop's default order (email first)
    ([customer("1")], {"sms": {"channels": ["sms", "email"]}}, "sms"),  # a shop that texts first
    ([customer("1"), prefers("1", "sms", NOON - timedelta(hours=1))], None, "sms"),  # stated
    ([customer("1"), opened("1", "sms", 1), opened("1", "sms", 2), opened("1", "email", 3)], None, "sms"),  # learned
    ([customer("1"), prefers("1", "email", NOON - timedelta(minutes=5)), opened("1", "sms", 1)], None, "email"),  # stated wins
    ([customer("1", sms=False), prefers("1", "sms", NOON - timedelta(hours=1))], None, "email"),  # no SMS consent
    ([customer("1", phone=None), prefers("1", "sms", NOON - timedelta(hours=1))], None, "email"),  # no number
    ([customer("1", email=False)], None, "sms"),  # email consent withdrawn: the text
])
def test_preferred(events, settings, expected):
    (d,) = decide_for(rules_from([rule("preferred")], settings), *events)
    assert d.kind == Kind.TOUCH and channel_of(d) == expected


def test_an_explicit_fallback_order_and_a_single_channel():
    (d,) = decide_for(rules_from([rule(["sms", "email"])]), customer("1"))
    assert channel_of(d) == "sms"
    (d,) = decide_for(rules_from([rule(["sms", "email"])]), customer("1", sms=False))
    assert channel_of(d) == "email"
    (d,) = decide_for(rules_from([rule("sms")]), customer("1", sms=False))
    assert (d.kind, d.reason, d.detail) == (Kind.SUPPRESSED, Reason.CONSENT, "customer has not opted in to SMS marketing")
    (d,) = decide_for(rules_from([rule(["sms", "email"])]), customer("1", sms=False, email=False))
    assert (d.reason, d.detail) == (Reason.CONSENT, "customer has not opted in to marketing on any of email, sms")


def test_the_cap_counts_touches_across_channels():
    rules = rules_from([rule("sms", "by_text", limit={"once_per_customer": True}), rule("email", "by_mail", priority=-1)],
                       {"frequency_cap": {"touches": 1, "per": "7d", "when_capped": "skip"}})
    shell = Shell(rules)
    shell.handle(customer("1"))
    outranked, first = shell.handle(order_paid("1", "9001", NOON))
    assert channel_of(first) == "sms" and outranked.reason == Reason.PRIORITY
    once, capped = shell.handle(order_paid("1", "9002", NOON + timedelta(days=1)))
    assert once.reason == Reason.LIMIT
    assert capped.rule_id == "by_mail" and capped.reason == Reason.CAP  # the text counted: no email either
    (d,) = [d for d in shell.handle(order_paid("1", "9003", NOON + timedelta(days=8))) if d.kind == Kind.TOUCH]
    assert channel_of(d) == "email"


def test_the_learned_counts_survive_the_stored_state():
    shell = Shell(rules_from([rule("preferred")]))
    for e in (customer("1"), opened("1", "sms", 1), opened("1", "sms", 2), opened("1", None, 3)):
        shell.handle(e)
    state = shell.state("1")
    assert dict(state.channel_opens) == {"sms": 2}
    assert state_from_dict(state_to_dict(state)) == state


def test_a_channel_whose_coupons_the_customer_redeems_is_learned():
    """An order paying with a text's coupon counts for texts; the shop's default (email first) gives
    way to it for the next message on the preferred channel. Without the redemption: email."""
    rules = rules_from([rule("sms", "by_text", trigger="customer.updated"), rule("preferred")])
    for redeem in (True, False):
        shell = Shell(rules)
        shell.handle(customer("1"))
        (text,) = shell.handle(_event("customer.updated", "cu-1", "1", NOON - timedelta(hours=2),
                                      customer={"id": "1", "first_name": "דנה"}))
        code = next(a.code for a in text.actions if a.type == "coupon")
        assert channel_of(text) == "sms"
        (d,) = [d for d in shell.handle(order_paid("1", "9001", NOON, codes=(code,) if redeem else ()))
                if d.kind == Kind.TOUCH]
        assert channel_of(d) == ("sms" if redeem else "email")
        state = shell.state("1")
        assert (code.lower() in state.redeemed_codes) is redeem and state.coupon_channels[code.lower()] == "sms"
        assert state_from_dict(state_to_dict(state)) == state
        shell.handle(order_paid("1", "9001", NOON, codes=(code,) if redeem else (), event_id="op-9001-again"))
        assert shell.state("1").redeemed_codes == state.redeemed_codes  # a re-delivery counts once


@pytest.mark.parametrize("message, problem", [
    ({"channel": ["sms", "email"], "sms": {"template": "thanks"}}, "names email but says nothing to send there: add email:"),
    ({"channel": "preferred"}, "names no channel"),
])
def test_a_message_without_what_to_send_is_a_problem(message, problem):
    problems = Problems()
    doc = {"rules": [{"id": "r", "trigger": "order.paid", "actions": [{"message": message}]}]}
    compile_ruleset([("t.yaml", doc)], None, problems)
    assert any(problem in m for _, m, _ in problems.items), problems.items

"""decide(), apply() and record(): the gates in order, timers, signals, keys and the fold."""
import itertools
import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from engine_helpers import (CODES, DRIPPER, HOUSE_BLEND, SHOP, T0, Shell, action, consent_changed, customer_created,
                            customer_updated, day, order_cancelled, order_created, order_paid, order_refunded,
                            rules_from, shipped_rules, state_after)
from plugin.engine import Decision, Kind, Reason, decide, new_state, record
from plugin.engine.decisions import coupon_code
from plugin.engine.ruleset import Problems, compile_ruleset
from plugin.engine.referral import decode_referral_code, referral_code
from plugin.engine.state import state_from_dict, state_to_dict
from plugin.events import Event, Money


def email(template="hello"):
    return {"email": {"template": template, "subject": "Hello"}}


def coupon(discount="10%", **spec):
    return {"coupon": {"discount": discount, **spec}}


def rule(rule_id, trigger="order.paid", actions=None, **fields):
    return {"id": rule_id, "trigger": trigger, "actions": actions or [email()], **fields}


def only(decisions, rule_id=None, kind=None):
    found = [d for d in decisions if (rule_id is None or d.rule_id == rule_id) and (kind is None or d.kind == kind)]
    assert len(found) == 1, [(d.rule_id, d.kind, d.reason) for d in decisions]
    return found[0]


def kinds(decisions):
    return {d.rule_id: (d.kind.value, d.reason.value if d.reason else None) for d in decisions}


def signed_up(shell, customer_id="7001", accepts_marketing=True, at=T0, **kw):
    return shell.handle(customer_created(customer_id, at, accepts_marketing, **kw))


# --- gates, in order ------------------------------------------------------------------------

def test_conditions_gate():
    shell = Shell(rules_from([rule("repeat", when={"customer.orders_count": {"at_least": 2}})]))
    signed_up(shell)
    first = only(shell.handle(order_paid("7001", "5101", day(1))))
    assert (first.kind, first.reason) == (Kind.SUPPRESSED, Reason.CONDITIONS)
    second = only(shell.handle(order_paid("7001", "5102", day(20))))
    assert second.kind == Kind.TOUCH
    assert second.key == f"{SHOP}:repeat:7001:order.paid:5102"


def test_delay_schedules_a_timer_that_touches_when_it_fires():
    shell = Shell(rules_from([rule("later", delay="3d")]))
    signed_up(shell)
    paid = order_paid("7001", "5101", day(1))
    scheduled = only(shell.handle(paid))
    assert (scheduled.kind, scheduled.reason) == (Kind.SCHEDULED, Reason.DELAY)
    assert scheduled.wake_at == day(4)
    timer = scheduled.timer
    assert (timer.type, timer.occurred_at, timer.customer_id) == ("timer", day(4), "7001")
    assert timer.data["kind"] == "delay" and timer.data["rule"] == "later"
    assert timer.data["anchor"] == "order.paid:5101" and timer.data["event"] == paid
    touch = only(shell.fire(scheduled))
    assert touch.kind == Kind.TOUCH and touch.at == day(4)
    assert touch.key == scheduled.key == f"{SHOP}:later:7001:order.paid:5101"


def test_delay_rechecks_conditions_and_cancels():
    shell = Shell(rules_from([rule("one_order_only", delay="14d", when={"customer.orders_count": {"equals": 1}})]))
    signed_up(shell)
    scheduled = only(shell.handle(order_paid("7001", "5101", day(1))))
    shell.handle(order_paid("7001", "5102", day(10)))  # came back before the delay ended
    cancelled = only(shell.fire(scheduled))
    assert (cancelled.kind, cancelled.reason) == (Kind.SUPPRESSED, Reason.CANCELLED)
    assert cancelled.detail == "conditions no longer hold when re-checked"


def test_delay_rechecks_consent_when_it_fires():
    shell = Shell(rules_from([rule("later", delay="3d")]))
    signed_up(shell)
    scheduled = only(shell.handle(order_paid("7001", "5101", day(1))))
    shell.handle(consent_changed("7001", day(2), False))
    assert only(shell.fire(scheduled)).reason == Reason.CONSENT


def test_once_per_customer():
    shell = Shell(rules_from([rule("once", limit={"once_per_customer": True})]))
    signed_up(shell)
    first = only(shell.handle(order_paid("7001", "5101", day(1))))
    assert first.kind == Kind.TOUCH
    second = only(shell.handle(order_paid("7001", "5102", day(40))))
    assert (second.kind, second.reason, second.detail) == (Kind.SUPPRESSED, Reason.LIMIT, "once per customer")
    # a redelivery of the first order's webhook is the same touch again, not a second one
    again = only(shell.handle(order_paid("7001", "5101", day(41), created=day(1) - timedelta(minutes=4),
                                         event_id="op-5101-retry")))
    assert (again.kind, again.key) == (Kind.TOUCH, first.key)
    assert shell.state("7001").history["once"].count == 1


def test_cooldown():
    shell = Shell(rules_from([rule("thanks", limit={"cooldown": "30d"})]))
    signed_up(shell)
    assert only(shell.handle(order_paid("7001", "5101", day(1)))).kind == Kind.TOUCH
    blocked = only(shell.handle(order_paid("7001", "5102", day(10))))
    assert (blocked.kind, blocked.reason) == (Kind.SUPPRESSED, Reason.LIMIT)
    assert blocked.detail == f"cooldown until {day(31).isoformat()}"
    assert only(shell.handle(order_paid("7001", "5103", day(31)))).kind == Kind.TOUCH  # cooldown over, to the second


def test_consent_gate_applies_to_marketing_rules_only():
    shell = Shell(rules_from([rule("mail"), rule("tagger", actions=[{"tag": "buyer"}])]))
    signed_up(shell, accepts_marketing=False)
    decisions = shell.handle(order_paid("7001", "5101", day(1)))
    assert kinds(decisions) == {"mail": ("suppressed", "consent"), "tagger": ("touch", None)}
    assert only(decisions, "mail").detail == "customer has not opted in to marketing"
    assert "buyer" in shell.state("7001").tags


def test_conditions_are_checked_before_consent():
    shell = Shell(rules_from([rule("big", when={"order.total": {"at_least": "100 USD"}})]))
    signed_up(shell, accepts_marketing=False)
    assert only(shell.handle(order_paid("7001", "5101", day(1)))).reason == Reason.CONDITIONS


def test_limit_is_checked_before_priority():
    rules = rules_from([rule("high", priority=90, limit={"once_per_customer": True}), rule("low", priority=10)])
    shell = Shell(rules)
    signed_up(shell)
    assert kinds(shell.handle(order_paid("7001", "5101", day(1)))) == {
        "high": ("touch", None), "low": ("suppressed", "priority")}
    # the high-priority rule is used up: the lower one gets its turn
    assert kinds(shell.handle(order_paid("7001", "5102", day(30)))) == {
        "high": ("suppressed", "limit"), "low": ("touch", None)}


def test_priority_lets_one_marketing_rule_through():
    rules = rules_from([
        rule("cross_sell", priority=30), rule("vip_welcome", priority=80), rule("thanks", priority=50),
        rule("tagger", priority=10, actions=[{"tag": "buyer"}]),
    ])
    shell = Shell(rules)
    signed_up(shell)
    decisions = shell.handle(order_paid("7001", "5101", day(1)))
    assert kinds(decisions) == {"vip_welcome": ("touch", None), "thanks": ("suppressed", "priority"),
                                "cross_sell": ("suppressed", "priority"), "tagger": ("touch", None)}
    assert only(decisions, "thanks").detail == "outranked by vip_welcome"


def test_equal_priorities_are_broken_by_rule_id():
    shell = Shell(rules_from([rule("beta"), rule("alpha")]))
    signed_up(shell)
    assert kinds(shell.handle(order_paid("7001", "5101", day(1)))) == {
        "alpha": ("touch", None), "beta": ("suppressed", "priority")}


HOLDOUT = {rid: rules_from([rule(rid, holdout="10%")]) for rid in ("thanks", "other")}


def _held_out(rule_id, customer_id, shop=SHOP):
    event = order_paid(customer_id, "5101", T0, shop=shop)
    state = state_after([customer_created(customer_id, T0, shop=shop), event], shop=shop)
    return only(decide(event, state, HOLDOUT[rule_id], T0)).reason == Reason.HOLDOUT


def test_holdout_is_stable_and_roughly_the_configured_share():
    ids = [str(7_000_000_001 + i) for i in range(10_000)]
    held = {cid for cid in ids if _held_out("thanks", cid)}
    assert 900 <= len(held) <= 1100
    sample = ids[:2000]
    assert {cid for cid in sample if _held_out("thanks", cid)} == held & set(sample)
    # another rule or another shop draws its own control group
    assert {cid for cid in sample if _held_out("other", cid)} != held & set(sample)
    assert {cid for cid in sample if _held_out("thanks", cid, shop="other-shop.myshopify.com")} != held & set(sample)


def test_holdout_suppresses_the_winner_and_reports_the_group():
    cid = next(str(n) for n in itertools.count(7_000_000_001) if _held_out("thanks", str(n)))
    shell = Shell(HOLDOUT["thanks"])
    signed_up(shell, cid)
    d = only(shell.handle(order_paid(cid, "5101", day(1))))
    assert (d.kind, d.reason, d.detail) == (Kind.SUPPRESSED, Reason.HOLDOUT, "in the 10% control group")
    assert not shell.state(cid).touches


def _cap_shell(when_capped):
    rules = rules_from([rule("note", trigger="customer.updated", actions=[coupon(), email()]),
                        rule("tagger", trigger="customer.updated", actions=[{"tag": "active"}])],
                       {"frequency_cap": {"touches": 2, "per": "7d", "when_capped": when_capped}})
    shell = Shell(rules)
    signed_up(shell)
    return shell


def test_frequency_cap_skip():
    shell = _cap_shell("skip")
    assert only(shell.handle(customer_updated("7001", day(1))), "note").kind == Kind.TOUCH
    assert only(shell.handle(customer_updated("7001", day(3))), "note").kind == Kind.TOUCH
    decisions = shell.handle(customer_updated("7001", day(5)))
    capped = only(decisions, "note")
    assert (capped.kind, capped.reason, capped.detail) == (Kind.SUPPRESSED, Reason.CAP, "2 touches per 7d reached; skipped")
    assert only(decisions, "tagger").kind == Kind.TOUCH  # non-marketing touches are not capped
    assert not [d for d in decisions if d.kind == Kind.SCHEDULED]
    assert only(shell.handle(customer_updated("7001", day(8))), "note").kind == Kind.TOUCH  # day 1 left the window


def test_frequency_cap_defer_fires_later_and_touches():
    shell = _cap_shell("defer")
    shell.handle(customer_updated("7001", day(1)))
    shell.handle(customer_updated("7001", day(3)))
    decisions = shell.handle(customer_updated("7001", day(5), event_id="cu-third"))
    capped = only(decisions, "note", Kind.SUPPRESSED)
    assert capped.reason == Reason.CAP
    assert capped.detail == f"2 touches per 7d reached; deferred to {day(8).isoformat()}"
    deferred = only(decisions, "note", Kind.SCHEDULED)
    assert (deferred.reason, deferred.wake_at) == (Reason.DEFERRED, day(8))
    assert deferred.timer.data["event"].id == "cu-third"
    touch = only(shell.fire(deferred))
    assert (touch.kind, touch.at, touch.key) == (Kind.TOUCH, day(8), capped.key)
    assert shell.state("7001").touches == (day(1), day(3), day(8))


def test_frequency_cap_lets_the_same_touch_through_again():
    shell = _cap_shell("skip")
    first = only(shell.handle(customer_updated("7001", day(1), event_id="cu-1")), "note")
    shell.handle(customer_updated("7001", day(2)))
    retry = only(shell.handle(customer_updated("7001", day(3), event_id="cu-1")), "note")
    assert (retry.kind, retry.key) == (Kind.TOUCH, first.key)


def test_a_deferred_winback_is_cancelled_when_the_customer_ordered_again():
    rules = rules_from([rule("winback", trigger={"lapsed": "30d"}), rule("note", trigger="customer.updated")],
                       {"frequency_cap": {"touches": 1, "per": "7d", "when_capped": "defer"}})
    shell = Shell(rules)
    signed_up(shell)
    lapse = only(shell.handle(order_paid("7001", "5101", day(0), created=day(0))))
    shell.handle(customer_updated("7001", day(29)))
    deferred = only(shell.fire(lapse), kind=Kind.SCHEDULED)
    assert (deferred.reason, deferred.wake_at) == (Reason.DEFERRED, day(36))
    shell.handle(order_paid("7001", "5102", day(32)))
    d = only(shell.fire(deferred))
    assert (d.kind, d.reason) == (Kind.SUPPRESSED, Reason.CANCELLED)


def test_cap_detail_names_a_window_shorter_than_a_day():
    rules = rules_from([rule("note", trigger="customer.updated")],
                       {"frequency_cap": {"touches": 1, "per": "12h", "when_capped": "skip"}})
    shell = Shell(rules)
    signed_up(shell)
    shell.handle(customer_updated("7001", day(1)))
    capped = only(shell.handle(customer_updated("7001", day(1, 2))))
    assert capped.detail == "1 touch per 12h reached; skipped"


def test_frequency_cap_sees_a_touch_later_than_now():
    rules = rules_from([rule("note", trigger="customer.updated")],
                       {"frequency_cap": {"touches": 1, "per": "7d", "when_capped": "skip"}})
    shell = Shell(rules)
    signed_up(shell)
    shell.handle(customer_updated("7001", day(5)))
    late = only(shell.handle(customer_updated("7001", day(3))))  # delivered after the day-5 touch
    assert late.reason == Reason.CAP


def test_frequency_cap_counts_marketing_touches_only():
    shell = _cap_shell("skip")
    for n in range(5):  # the tagger touches every time: it never counts against the cap
        shell.handle(customer_updated("7001", day(1 + n * 7)))
    assert len(shell.state("7001").touches) == 5


# --- lapse timers -----------------------------------------------------------------------------

def _lapse_rules():
    return rules_from([rule("winback", trigger={"lapsed": "90d"}, actions=[coupon("20%", code_prefix="MISSYOU"), email()],
                            when={"customer.orders_count": {"at_least": 1}})])


def test_lapse_timer_fires_after_the_last_order():
    shell = Shell(_lapse_rules())
    signed_up(shell)
    lapse = only(shell.handle(order_paid("7001", "5101", day(1), created=day(1, -1))))
    assert (lapse.kind, lapse.reason) == (Kind.SCHEDULED, Reason.LAPSE)
    assert lapse.wake_at == day(91, -1)  # 90 days after the order was placed
    assert lapse.timer.data["anchor"] == "lapse:5101"
    touch = only(shell.fire(lapse))
    assert touch.kind == Kind.TOUCH
    assert action(touch, "coupon").code.startswith("MISSYOU-")


def test_lapse_timer_is_cancelled_when_the_customer_ordered_again():
    shell = Shell(_lapse_rules())
    signed_up(shell)
    first = only(shell.handle(order_paid("7001", "5101", day(1))))
    second = only(shell.handle(order_paid("7001", "5102", day(60))))
    cancelled = only(shell.fire(first))
    assert (cancelled.kind, cancelled.reason, cancelled.detail) == (
        Kind.SUPPRESSED, Reason.CANCELLED, "the customer ordered again")
    assert only(shell.fire(second)).kind == Kind.TOUCH


def test_lapse_counts_from_the_previous_order_when_the_last_one_is_cancelled():
    shell = Shell(_lapse_rules())
    signed_up(shell)
    first = only(shell.handle(order_paid("7001", "5101", day(1))))
    second = only(shell.handle(order_paid("7001", "5102", day(10))))
    shell.handle(order_cancelled("7001", "5102", day(11), "14.50 USD"))
    assert only(shell.fire(first)).kind == Kind.TOUCH
    cancelled = only(shell.fire(second))
    assert (cancelled.reason, cancelled.detail) == (Reason.CANCELLED, "the order the lapse counted from was cancelled")


def test_lapse_is_touched_once_per_lapse():
    shell = Shell(_lapse_rules())
    signed_up(shell)
    first = only(shell.handle(order_paid("7001", "5101", day(1))))
    touch = only(shell.fire(first))
    assert only(shell.fire(first)).key == touch.key  # a timer fired twice is the same touch
    second = only(shell.handle(order_paid("7001", "5102", day(120))))
    again = only(shell.fire(second))
    assert again.kind == Kind.TOUCH and again.key != touch.key
    assert shell.state("7001").history["winback"].count == 2


def test_a_late_paid_event_for_an_older_order_schedules_no_lapse():
    shell = Shell(_lapse_rules())
    signed_up(shell)
    assert only(shell.handle(order_paid("7001", "5102", day(10)))).reason == Reason.LAPSE
    assert shell.handle(order_paid("7001", "5101", day(11), created=day(2))) == []


def test_a_timer_for_a_removed_or_disabled_rule_does_nothing():
    shell = Shell(_lapse_rules())
    signed_up(shell)
    lapse = only(shell.handle(order_paid("7001", "5101", day(1))))
    state = shell.state("7001")
    removed = rules_from([rule("other")])
    disabled = rules_from([rule("winback", trigger={"lapsed": "90d"}, enabled=False)])
    assert decide(lapse.timer, state, removed, lapse.wake_at) == []
    assert decide(lapse.timer, state, disabled, lapse.wake_at) == []


def test_a_disabled_rule_is_not_triggered():
    shell = Shell(rules_from([rule("off", enabled=False), rule("on")]))
    signed_up(shell)
    assert kinds(shell.handle(order_paid("7001", "5101", day(1)))) == {"on": ("touch", None)}


# --- occasion timers --------------------------------------------------------------------------

def _birthday_rules():
    return rules_from([rule("birthday", trigger={"occasion": "birthday", "before": "7d"},
                            actions=[coupon("20%", code_prefix="BDAY"), email()])])


def test_birthday_reminder_seven_days_before_at_nine_utc():
    shell = Shell(_birthday_rules())
    timer = only(signed_up(shell, birthday="1990-06-14"))
    assert (timer.kind, timer.reason) == (Kind.SCHEDULED, Reason.OCCASION)
    assert timer.wake_at == datetime(2026, 6, 7, 9, 0, tzinfo=timezone.utc)
    assert timer.timer.data["anchor"] == "birthday:2026-06-14"
    decisions = shell.fire(timer)
    touch = only(decisions, kind=Kind.TOUCH)
    assert action(touch, "coupon").code.startswith("BDAY-")
    next_year = only(decisions, kind=Kind.SCHEDULED)
    assert next_year.wake_at == datetime(2027, 6, 7, 9, 0, tzinfo=timezone.utc)
    assert next_year.timer.data["anchor"] == "birthday:2027-06-14"


def test_birthday_already_past_this_year_is_scheduled_next_year():
    shell = Shell(_birthday_rules())
    timer = only(signed_up(shell, birthday="1985-03-05"))  # T0 is 2 March: the reminder was due 26 February
    assert timer.wake_at == datetime(2027, 2, 26, 9, 0, tzinfo=timezone.utc)


def test_february_29_birthday_in_a_common_year():
    shell = Shell(_birthday_rules())
    timer = only(signed_up(shell, birthday="2000-02-29", at=datetime(2027, 1, 10, tzinfo=timezone.utc)))
    assert timer.timer.data["anchor"] == "birthday:2027-02-28"
    assert timer.wake_at == datetime(2027, 2, 21, 9, 0, tzinfo=timezone.utc)
    decisions = shell.fire(timer)
    assert only(decisions, kind=Kind.TOUCH).rule_id == "birthday"
    leap = only(decisions, kind=Kind.SCHEDULED)
    assert leap.timer.data["anchor"] == "birthday:2028-02-29"
    assert leap.wake_at == datetime(2028, 2, 22, 9, 0, tzinfo=timezone.utc)


def test_an_occasion_reminder_far_ahead_never_crashes_decide():
    problems = Problems()
    data = {"rules": [rule("early", trigger={"occasion": "birthday", "before": "400d"})]}
    rules = compile_ruleset([("test.yaml", data)], None, problems)
    if rules is None:  # refused at load time: fine too
        assert [path[-1] for path, _, _ in problems.items] == ["before"]
        return
    now = datetime(2026, 12, 31, 12, tzinfo=timezone.utc)
    timer = only(Shell(rules).handle(customer_created("7001", now, birthday="1990-01-01")))
    assert timer.wake_at > now


def test_changed_birthday_cancels_the_old_reminder():
    shell = Shell(_birthday_rules())
    old = only(signed_up(shell, birthday="1990-06-14"))
    new = only(shell.handle(customer_updated("7001", day(5), birthday="1990-08-01")))
    assert new.timer.data["anchor"] == "birthday:2026-08-01"
    cancelled = only(shell.fire(old))
    assert (cancelled.reason, cancelled.detail) == (Reason.CANCELLED, "the birthday changed")
    assert only(shell.fire(new), kind=Kind.TOUCH).kind == Kind.TOUCH


# --- referral signal --------------------------------------------------------------------------

REFERRER, FRIEND = "7001", "7002"


def _referral_shell():
    shell = Shell(shipped_rules())
    signed_up(shell, REFERRER)
    shell.handle(order_paid(REFERRER, "5101", day(1)))
    signed_up(shell, FRIEND, at=day(5))
    return shell


def _friend_order(shell, codes, at=day(6)):
    decisions = shell.handle(order_paid(FRIEND, "5201", at, products=(HOUSE_BLEND, DRIPPER), codes=codes))
    return only(decisions, "referral_qualified")


def test_referral_converts_after_the_return_window_and_rewards_the_referrer():
    shell = _referral_shell()
    code = referral_code(CODES, SHOP, REFERRER)
    assert decode_referral_code(CODES, SHOP, code.lower()) == REFERRER
    scheduled = _friend_order(shell, [code.lower()])  # WooCommerce lower-cases coupon codes
    assert shell.state(FRIEND).referred_by == REFERRER
    assert (scheduled.kind, scheduled.wake_at) == (Kind.SCHEDULED, day(36))
    signal = only(shell.fire(scheduled))
    assert signal.kind == Kind.TOUCH and not signal.marketing
    a = action(signal, "signal")
    assert (a.event, a.customer_id) == ("referral.converted", REFERRER)
    assert a.data == {"friend_id": FRIEND, "friend_email": f"olivia.{FRIEND}@example.com", "order_id": "5201",
                         "order_total": {"amount": "38.50", "currency": "USD"}}
    converted = Event(id=a.key, type=a.event, shop=SHOP, customer_id=a.customer_id, occurred_at=day(36),
                      data=a.data)
    reward = only(shell.handle(converted), "referral_reward")
    assert reward.kind == Kind.TOUCH and reward.customer_id == REFERRER
    assert reward.key == f"{SHOP}:referral_reward:{REFERRER}:referral:5201"
    c = action(reward, "coupon")
    assert c.code.startswith("THANKYOU-") and (c.discount_type, c.value, c.currency) == ("fixed", Decimal("10"), "USD")


def test_self_referral_is_ignored():
    shell = _referral_shell()
    own = referral_code(CODES, SHOP, FRIEND)
    d = _friend_order(shell, [own])
    assert shell.state(FRIEND).referred_by is None
    assert (d.kind, d.reason) == (Kind.SUPPRESSED, Reason.CONDITIONS)


def test_a_code_of_another_shop_is_not_a_referral():
    shell = _referral_shell()
    d = _friend_order(shell, [referral_code(CODES, "another-shop.myshopify.com", REFERRER)])
    assert shell.state(FRIEND).referred_by is None and d.reason == Reason.CONDITIONS


@pytest.mark.parametrize("undo", ["refund", "cancel"])
def test_refunded_or_cancelled_friend_order_earns_no_reward(undo):
    shell = _referral_shell()
    scheduled = _friend_order(shell, [referral_code(CODES, SHOP, REFERRER)])
    if undo == "refund":
        shell.handle(order_refunded(FRIEND, "5201", day(20), "38.50 USD", refunded="24.00 USD"))
    else:
        shell.handle(order_cancelled(FRIEND, "5201", day(7), "38.50 USD"))
    d = only(shell.fire(scheduled))
    assert (d.kind, d.reason) == (Kind.SUPPRESSED, Reason.CANCELLED)


def test_referral_invite_carries_the_customers_own_code():
    shell = Shell(shipped_rules())
    signed_up(shell)
    invite = only(shell.handle(order_paid("7001", "5101", day(1))), "referral_invite")
    touch = only(shell.fire(invite))
    c = action(touch, "coupon")
    assert c.code == referral_code(CODES, SHOP, "7001")
    assert (c.customer_id, c.usage_limit, c.title) == (None, None, "Friend discount")


def test_no_coupon_without_a_code():
    shell = Shell(rules_from([rule("invite", actions=[coupon(code="referral"), email()])]))
    signed_up(shell, "guest-4471")  # not a numeric id: no referral code can be derived
    touch = only(shell.handle(order_paid("guest-4471", "5101", day(1))))
    assert [a.type for a in touch.actions] == ["email"]


# --- decisions as data ------------------------------------------------------------------------

def _all_kinds_of_decisions():
    shell = Shell(shipped_rules())
    signed_up(shell, birthday="1990-06-14")
    out = list(shell.decisions)
    for d in shell.handle(order_paid("7001", "5101", day(1), products=(HOUSE_BLEND,))):
        out.append(d)
        if d.kind == Kind.SCHEDULED:
            out.extend(shell.fire(d))
    return out


def test_decisions_round_trip_through_json():
    decisions = _all_kinds_of_decisions()
    assert {d.kind for d in decisions} == {Kind.TOUCH, Kind.SUPPRESSED, Kind.SCHEDULED}
    for d in decisions:
        text = json.dumps(d.to_dict())
        back = Decision.from_dict(json.loads(text))
        assert back.to_dict() == d.to_dict()
        if d.kind != Kind.TOUCH:
            assert back == d
        if d.timer is not None:
            assert back.timer == d.timer
            assert back.timer.data.get("event") == d.timer.data.get("event")


def test_a_timer_read_back_from_json_decides_the_same():
    rules = shipped_rules()
    shell = Shell(rules)
    signed_up(shell)
    scheduled = only(shell.handle(order_paid("7001", "5101", day(1))), "icebreaker")
    back = Decision.from_dict(json.loads(json.dumps(scheduled.to_dict())))
    state = shell.state("7001")
    assert decide(back.timer, state, rules, back.wake_at) == decide(scheduled.timer, state, rules, scheduled.wake_at)


def test_keys_and_coupon_codes_are_deterministic():
    rules = shipped_rules()
    state = state_after([customer_created("7001", T0), order_paid("7001", "5101", day(1))])
    timer = only(decide(order_paid("7001", "5101", day(1)), state, rules, day(1)), "icebreaker").timer
    a = only(decide(timer, state, rules, day(15)), "icebreaker")
    # the same order's webhook delivered again, under another event id, later: same key and code
    retry = order_paid("7001", "5101", day(3), created=day(1) - timedelta(minutes=4), event_id="op-5101-retry")
    timer_b = only(decide(retry, state, rules, day(3)), "icebreaker").timer
    b = only(decide(timer_b, state, rules, day(17)), "icebreaker")
    assert a.key == b.key == f"{SHOP}:icebreaker:7001:order.paid:5101"
    code = action(a, "coupon").code
    assert code == action(b, "coupon").code == coupon_code("THANKS", a.key)
    assert re.fullmatch(r"THANKS-[A-Z2-7]{10,}", code)
    assert action(a, "coupon").key == f"{a.key}:0" and action(a, "email").key == f"{a.key}:1"
    other = coupon_code("THANKS", f"{SHOP}:icebreaker:7002:order.paid:5102")
    assert other != code


def test_decide_is_pure():
    rules = shipped_rules()
    state = state_after([customer_created("7001", T0, birthday="1990-06-14"), order_paid("7001", "5101", day(1))])
    snapshot = state_to_dict(state)
    event = order_paid("7001", "5101", day(1))
    assert decide(event, state, rules, day(1)) == decide(event, state, rules, day(1))
    assert state_to_dict(state) == snapshot


# --- the fold ---------------------------------------------------------------------------------

def _order_events():
    return [
        order_created("7001", "5101", day(1)),
        order_paid("7001", "5101", day(1, 1), created=day(1)),
        order_refunded("7001", "5101", day(5), "14.50 USD", refunded="4.50 USD", refund_id="93001", created=day(1)),
        order_paid("7001", "5102", day(20), products=(DRIPPER,), created=day(20)),
        order_cancelled("7001", "5102", day(21), "24.00 USD", created=day(20)),
        order_paid("7001", "5103", day(30), products=(HOUSE_BLEND, DRIPPER), codes=["spring10"], created=day(30)),
    ]


def test_fold_aggregates_orders():
    state = state_after([customer_created("7001", T0)] + _order_events())
    assert state.orders_count == 2
    assert state.total_spent == Money(Decimal("48.50"), "USD")  # 14.50 - 4.50 + 38.50; the cancelled order counts 0
    assert (state.first_order_id, state.last_order_id) == ("5101", "5103")
    assert (state.first_order_at, state.last_order_at) == (day(1), day(30))
    assert state.products_bought == {HOUSE_BLEND, DRIPPER}
    assert state.collections_bought == {"coffee", "brewing"}


def test_fold_ignores_duplicated_paid_and_refund_events():
    events = _order_events()
    once = state_after(events)
    twice = state_after(events[:3] + [events[1], events[2], events[2]] + events[3:] + events)
    assert twice == once


def test_two_different_refunds_both_count():
    events = _order_events()[:3] + [
        order_refunded("7001", "5101", day(6), "14.50 USD", refunded="5.00 USD", refund_id="93002")]
    assert state_after(events).total_spent == Money(Decimal("5.00"), "USD")


def test_fold_is_insensitive_to_the_order_of_order_events():
    events = _order_events()
    expected = state_after(events)
    for perm in itertools.permutations(events):
        assert state_after(perm) == expected


def test_orders_in_two_currencies_are_not_added_together():
    usd = order_paid("7001", "5101", day(1), currency="USD")
    eur = order_paid("7001", "5102", day(2), currency="EUR")
    a, b = state_after([usd, eur]), state_after([eur, usd])
    assert a == b
    assert a.total_spent != Money(Decimal("29.00"), a.total_spent.currency)


def test_a_redelivered_signup_does_not_undo_an_unsubscribe():
    created = customer_created("7001", T0, accepts_marketing=True)
    state = state_after([created, consent_changed("7001", day(5), False), created])
    assert state.accepts_marketing is False


def test_record_is_idempotent_and_applies_tags_and_tiers():
    rules = rules_from([rule("gold", actions=[{"tier": "gold"}, {"tag": "vip-gold"}]), rule("mail")])
    state = state_after([customer_created("7001", T0), order_paid("7001", "5101", day(1))])
    decisions = decide(order_paid("7001", "5101", day(1)), state, rules, day(1))
    once = state
    for d in decisions:
        once = record(once, d)
    twice = once
    for d in decisions + decisions:
        twice = record(twice, d)
    assert twice == once
    assert once.tier == "gold" and "vip-gold" in once.tags
    assert once.history["gold"].count == 1 and once.history["mail"].count == 1
    assert once.touches == (day(1),)  # only the marketing touch counts
    assert once.history["mail"].keys == {f"{SHOP}:mail:7001:order.paid:5101"}


def test_record_ignores_other_kinds_and_other_customers():
    rules = rules_from([rule("mail", when={"customer.orders_count": {"at_least": 2}}), rule("later", delay="1d")])
    state = state_after([customer_created("7001", T0), order_paid("7001", "5101", day(1))])
    decisions = decide(order_paid("7001", "5101", day(1)), state, rules, day(1))
    assert sorted(d.kind.value for d in decisions) == ["scheduled", "suppressed"]
    for d in decisions:
        assert record(state, d) is state
    touch = only(decide(order_paid("7001", "5101", day(1)), state, rules_from([rule("mail")]), day(1)))
    other = new_state(SHOP, "7002")
    assert record(other, touch) is other


def test_state_survives_its_json_form():
    state = state_after([customer_created("7001", T0, birthday="1990-06-14")] + _order_events())
    touch = only(decide(_order_events()[-1], state, rules_from([rule("mail")]), day(30)))
    state = record(state, touch)
    assert state_from_dict(json.loads(json.dumps(state_to_dict(state)))) == state

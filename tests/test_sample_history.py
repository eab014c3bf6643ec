"""The synthetic store history: deterministic, time-ordered, canonical and shaped like a real store."""
from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from plugin.engine import apply, new_state
from plugin.engine.referral import decode_referral_code
from plugin.events import event_from_dict
from plugin.rulefile import load_rules
from plugin.engine.ruleset import Settings, for_shop
from plugin.sample_history import SAMPLE_REFERRAL_KEY, generate
from plugin.simulate import simulate

SHOP = "demo.myshopify.com"


@pytest.fixture(scope="module")
def history() -> list[dict]:
    return list(generate(2000, seed=7))


@pytest.fixture(scope="module")
def events(history):
    return [event_from_dict(d) for d in history]


def _paid_by_customer(events) -> dict[str, list]:
    paid = defaultdict(list)
    for e in events:
        if e.type == "order.paid":
            paid[e.customer_id].append(e)
    return paid


def test_same_seed_same_history_different_seed_different():
    first = [json.dumps(d, sort_keys=True) for d in generate(300, seed=5)]
    again = [json.dumps(d, sort_keys=True) for d in generate(300, seed=5)]
    other = [json.dumps(d, sort_keys=True) for d in generate(300, seed=6)]
    assert first == again
    assert first != other


def test_every_dict_is_a_canonical_event_in_time_order(history, events):
    assert len(events) == len(history) > 4000
    times = [e.occurred_at for e in events]
    assert times == sorted(times)
    assert all(t.utcoffset() == timedelta(0) for t in times)
    assert len({e.id for e in events}) == len(events)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert start <= times[0] and times[-1] < start + timedelta(days=365)
    assert {e.shop for e in events} == {SHOP}
    # the JSON form survives a round trip through json, as the CLI writes it
    assert [event_from_dict(json.loads(json.dumps(d))) for d in history[:200]] == events[:200]


def test_start_days_shop_and_currency_are_honoured():
    start = datetime(2025, 6, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    events = [event_from_dict(d) for d in generate(200, seed=3, start=start, days=30, shop="x.example", currency="EUR")]
    assert all(start <= e.occurred_at < start + timedelta(days=30) for e in events)
    assert {e.shop for e in events} == {"x.example"}
    orders = [e.order for e in events if e.order is not None]
    assert orders and {o.total.currency for o in orders} == {"EUR"}
    assert {li.price.currency for o in orders for li in o.line_items} == {"EUR"}


def test_no_customers_no_events():
    assert list(generate(0)) == []


def test_customers_look_like_real_signups(events):
    created = [e.customer for e in events if e.type == "customer.created"]
    assert len(created) == 2000
    assert len({c.id for c in created}) == 2000 and all(c.id.isdigit() and int(c.id) > 2**32 for c in created)
    assert 0.55 <= sum(c.accepts_marketing for c in created) / 2000 <= 0.65
    assert 0.35 <= sum(c.birthday is not None for c in created) / 2000 <= 0.45
    assert 0.07 <= sum(c.anniversary is not None for c in created) / 2000 <= 0.13
    names = "".join(c.first_name or "" for c in created)
    for sample in ("é", "ü"):  # accented Latin
        assert sample in names
    for low, high in (("\u0600", "\u06ff"), ("\u0590", "\u05ff"), ("\u3040", "\u9fff")):  # Arabic, Hebrew, Japanese
        assert any(low <= ch <= high for ch in names)
    assert all(c.email and c.email.isascii() and "@example." in c.email for c in created)
    assert {c.locale for c in created} >= {"en", "fr", "ar", "he", "ja"}
    assert any(e.type == "customer.consent_changed" and e.customer.accepts_marketing for e in events)
    assert any(e.type == "customer.consent_changed" and not e.customer.accepts_marketing for e in events)


def test_purchase_shape(events):
    paid = _paid_by_customer(events)
    buyers = len(paid)
    assert 0.65 <= buyers / 2000 <= 0.85  # about a quarter never buys
    repeat = sum(len(orders) >= 2 for orders in paid.values()) / buyers
    assert 0.15 <= repeat <= 0.40
    gaps = sorted((b.occurred_at - a.occurred_at).days for orders in paid.values() for a, b in itertools.pairwise(orders))
    assert 30 <= gaps[len(gaps) // 2] <= 60
    counts = Counter(e.type for e in events)
    assert 0.02 <= counts["order.refunded"] / counts["order.paid"] <= 0.06
    assert 0 < counts["order.cancelled"] / counts["order.paid"] <= 0.03
    baskets = [e.order for orders in paid.values() for e in orders]
    assert {len(o.line_items) for o in baskets} == {1, 2, 3, 4}
    assert {c for o in baskets for li in o.line_items for c in li.collections} == {
        "coffee", "brewing", "tea", "accessories", "gifts"}


def test_each_order_is_created_then_paid_and_refunds_fit_the_order(events):
    created, paid = {}, {}
    for e in events:
        if e.type == "order.created":
            created[e.order.id] = e
        elif e.type == "order.paid":
            assert e.order.id in created and e.occurred_at > created[e.order.id].occurred_at
            assert e.order == created[e.order.id].order
            paid[e.order.id] = e
        elif e.type in ("order.refunded", "order.cancelled"):
            assert e.order.id in paid and e.occurred_at > paid[e.order.id].occurred_at
            assert e.customer_id == paid[e.order.id].customer_id
            if e.type == "order.refunded":
                assert e.data["refund_id"] and Decimal(0) < e.order.refunded.amount <= e.order.total.amount
    for e in paid.values():
        o = e.order
        items = sum(li.price.amount * li.quantity for li in o.line_items)
        assert o.subtotal.amount <= items and o.total.amount >= o.subtotal.amount


def test_referral_codes_name_an_earlier_buyer_and_self_referrals_are_ignored(events):
    first_paid = {cid: orders[0].occurred_at for cid, orders in _paid_by_customer(events).items()}
    referred, self_referred = set(), set()
    for e in events:
        if e.type != "order.paid":
            continue
        for code in e.order.discount_codes:
            referrer = decode_referral_code(Settings(referral_key=SAMPLE_REFERRAL_KEY), SHOP, code)
            if referrer == e.customer_id:
                self_referred.add(e.customer_id)
            elif referrer is not None:
                assert first_paid[referrer] < e.occurred_at
                referred.add(e.customer_id)
    assert 0.04 <= len(referred) / len(first_paid) <= 0.12
    assert self_referred

    states = {}
    for e in events:
        if e.customer_id in referred | self_referred:
            states[e.customer_id] = apply(states.get(e.customer_id) or new_state(SHOP, e.customer_id), e,
                                           Settings(referral_key=SAMPLE_REFERRAL_KEY))
    assert all(states[cid].referred_by is None for cid in self_referred - referred)
    assert all(states[cid].referred_by not in (None, cid) for cid in referred)


def test_shipped_rules_all_find_customers_to_touch(events):
    report = simulate(events, for_shop(load_rules(), SAMPLE_REFERRAL_KEY))
    touched = {rule_id for rule_id, r in report.rules.items() if r.touches}
    assert touched >= {"icebreaker", "welcome", "cross_sell_brewing", "referral_invite", "referral_reward",
                       "winback", "birthday"}

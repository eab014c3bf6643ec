"""Properties of the shipped rules over generated small store histories, replayed in the simulator.

Histories hold a few customers: a signup with random consent (and maybe a birthday), consent
changes, and paid orders that may be refunded (in full or in part) or cancelled, some with a
friend's (or their own) referral code. Runs are derandomized so a failure reproduces.
"""
from collections import Counter, defaultdict
from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


from engine_helpers import (CODES, PRODUCTS, SENCHA, SHOP, T0, consent_changed, customer_created, day, order_cancelled,
                            order_paid, order_refunded, shipped_rules)
from plugin.engine.referral import referral_code
from plugin.simulate import Simulator

CUSTOMERS = ("7000000001", "7000000002", "7000000003")
ONCE_PER_CUSTOMER = {r.id for r in shipped_rules().rules if r.once_per_customer}
CAP = shipped_rules().settings.frequency_cap

fast = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _hours(draw, lo, hi):
    return timedelta(hours=draw(st.integers(lo, hi)), minutes=draw(st.sampled_from((0, 7, 30))))


@st.composite
def histories(draw):
    """A time-ordered list of canonical events for one to three customers."""
    events = []
    n = draw(st.integers(1, len(CUSTOMERS)))
    for i, cid in enumerate(CUSTOMERS[:n]):
        signup = T0 + _hours(draw, 0, 24 * 20)
        birthday = draw(st.none() | st.dates(date(1960, 1, 1), date(2005, 12, 31)))
        events.append(customer_created(cid, signup, draw(st.booleans()),
                                       birthday=birthday and birthday.isoformat(), event_id=f"cc-{cid}"))
        for k in range(draw(st.integers(0, 2))):
            events.append(consent_changed(cid, signup + _hours(draw, 1, 24 * 150), draw(st.booleans()),
                                          event_id=f"consent-{cid}-{k}"))
        placed = signup
        for k in range(draw(st.integers(0, 4))):
            placed = placed + _hours(draw, 0, 24 * 100)
            order_id = f"51{i}{k}"
            products = draw(st.lists(st.sampled_from(sorted(PRODUCTS)), min_size=1, max_size=3, unique=True))
            total = draw(st.sampled_from((None, None, "250.00 USD", "520.00 USD")))
            codes = draw(st.sampled_from(([], [], ["SPRING10"]) + tuple([referral_code(CODES, SHOP, c)] for c in CUSTOMERS)))
            paid = order_paid(cid, order_id, placed + timedelta(minutes=5), products, total=total, codes=codes,
                              created=placed)
            events.append(paid)
            amount = f"{paid.order.total.amount} USD"
            fate = draw(st.sampled_from(("kept", "kept", "kept", "refunded", "part-refunded", "cancelled")))
            later = placed + _hours(draw, 1, 24 * 40)
            if fate == "refunded":
                events.append(order_refunded(cid, order_id, later, amount, refund_id=f"93{i}{k}"))
            elif fate == "part-refunded":
                events.append(order_refunded(cid, order_id, later, amount, refunded="5.00 USD", refund_id=f"93{i}{k}"))
            elif fate == "cancelled":
                events.append(order_cancelled(cid, order_id, later, amount))
    return sorted(events, key=lambda e: e.occurred_at)


@st.composite
def with_duplicates(draw, adjacent: bool):
    """A history with some events delivered again, any number of times, right after or later."""
    events = draw(histories())
    extra = []
    for i in draw(st.lists(st.integers(0, len(events) - 1), max_size=8)):
        after = i if adjacent else draw(st.integers(i, len(events) - 1))
        extra.append((after, len(extra) + 1, events[i]))
    keyed = [(i, 0, e) for i, e in enumerate(events)] + extra
    return events, [e for _, _, e in sorted(keyed, key=lambda x: (x[0], x[1]))]


def _until(events):
    return max(e.occurred_at for e in events) + timedelta(days=120)


def replay(deliveries, until):
    sim = Simulator(shipped_rules())
    for e in deliveries:
        sim.feed(e)
    sim.finish(until)
    return sim


@fast
@given(histories())
def test_same_history_same_decisions(events):
    a, b = replay(events, _until(events)), replay(events, _until(events))
    assert a.report.ledger == b.report.ledger
    assert a.report.to_dict() == b.report.to_dict()
    assert a.states == b.states


@fast
@given(with_duplicates(adjacent=True))
def test_duplicates_delivered_right_away_add_no_touches(case):
    events, deliveries = case
    until = _until(events)
    assert set(replay(deliveries, until).report.ledger) == set(replay(events, until).report.ledger)


@fast
@given(with_duplicates(adjacent=False))
def test_duplicates_delivered_later_add_no_touches(case):
    events, deliveries = case
    until = _until(events)
    assert set(replay(deliveries, until).report.ledger) <= set(replay(events, until).report.ledger)


def _ledger_keys(deliveries, until):
    return set(replay(deliveries, until).report.ledger)


def test_a_redelivered_signup_after_an_unsubscribe_adds_no_touches():
    signup = customer_created("7000000001", T0, True)
    paid = order_paid("7000000001", "5101", day(1), products=(SENCHA,))
    unsubscribe = consent_changed("7000000001", day(1, 2), False)
    history = [signup, paid, unsubscribe]
    assert _ledger_keys(history + [signup], day(60)) == _ledger_keys(history, day(60))


def test_a_paid_webhook_redelivered_after_an_opt_in_adds_no_touches():
    paid = order_paid("7000000001", "5101", day(0, 1), products=(SENCHA,))
    history = [customer_created("7000000001", T0, False), paid, consent_changed("7000000001", day(20), True)]
    assert _ledger_keys(history + [paid], day(60)) == _ledger_keys(history, day(60))


@fast
@given(histories().flatmap(st.permutations))
def test_reordered_delivery_touches_once_per_customer_rules_at_most_once(deliveries):
    sim = replay(deliveries, _until(deliveries))
    per_rule = Counter((d.customer_id, d.rule_id) for d in sim.report.ledger.values() if d.rule_id in ONCE_PER_CUSTOMER)
    assert max(per_rule.values(), default=0) <= 1, per_rule


@fast
@given(with_duplicates(adjacent=True))
def test_frequency_cap_is_never_exceeded(case):
    _, deliveries = case
    sim = replay(deliveries, _until(deliveries))
    times = defaultdict(list)
    for d in sim.report.ledger.values():
        if d.marketing:
            times[d.customer_id].append(d.at)
    for cid, ts in times.items():
        ts.sort()
        for end in ts:  # the fullest window of `per` ends at a touch
            in_window = [t for t in ts if end - CAP.per < t <= end]
            assert len(in_window) <= CAP.touches, (cid, in_window)


@fast
@given(with_duplicates(adjacent=False))
def test_no_marketing_touch_without_consent_at_decision_time(case):
    _, deliveries = case
    sim = Simulator(shipped_rules())
    seen = set()

    def check():
        for key, d in sim.report.ledger.items():
            if key not in seen:
                seen.add(key)
                if any(a.type in ("coupon", "email") for a in d.actions):
                    assert d.marketing
                    assert sim.states[(d.shop, d.customer_id)].accepts_marketing, d

    for e in deliveries:
        sim.advance(e.occurred_at)  # timers due first: they decide on the state before this event
        check()
        sim.feed(e)
        check()
    sim.advance(_until(deliveries))
    check()

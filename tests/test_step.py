"""``step``: the decision and ledger policy the worker and ``simulate`` share, on plain data."""
from datetime import timedelta

from engine_helpers import (SHOP, T0, consent_changed, customer_created, customer_updated, day, order_cancelled,
                            order_paid, rules_from, shipped_rules)
from plugin.engine import Kind, Reason
from plugin.engine.decide import decision_key
from plugin.engine.step import (MAX_TIMER_ATTEMPTS, UNSUBSCRIBE_PREFIX, Amend, Entry, Recorded, TimerEntry, Write,
                                step)
from plugin.events import Event
from plugin.simulate import Simulator

HELLO = {"id": "hello", "name": "Hello", "trigger": "customer.updated", "priority": 50,
         "actions": [{"email": {"template": "welcome", "subject": "Hi"}}]}
CAPPED = rules_from([HELLO], {"frequency_cap": {"touches": 1, "per": "1h", "when_capped": "defer"}})
CID = "7000000001"


def _signed_up():
    return step(customer_created(CID, T0, True), None, CAPPED, T0, Recorded()).state


def test_a_rule_that_does_not_apply_leaves_no_row_and_a_touch_is_a_pending_row():
    state = _signed_up()
    out = step(customer_updated(CID, T0, event_id="u1", email="o@example.com"), state, CAPPED, T0, Recorded())
    (w,) = out.ledger
    assert isinstance(w, Write) and w.status == "pending" and not w.replaces
    assert out.touches == (w.decision,) and out.seen
    assert out.state.touches == (T0,)  # recorded in the state, for the cap


def test_a_capped_touch_is_deferred_then_goes_out_in_place_of_its_row():
    state = step(customer_updated(CID, T0, event_id="u1"), _signed_up(), CAPPED, T0, Recorded()).state
    out = step(customer_updated(CID, T0 + timedelta(minutes=5), event_id="u2"), state, CAPPED,
               T0 + timedelta(minutes=5), Recorded())
    (w,) = out.ledger
    assert (w.decision.reason, w.status) == (Reason.CAP, "suppressed")
    (timer,) = out.timers
    assert timer.wake_at == T0 + timedelta(hours=1) and timer.event is not None
    key = w.decision.key
    fired = step(timer.event, out.state, CAPPED, timer.wake_at,
                 Recorded({key: Entry("suppressed", "cap", "suppressed")}, {timer.id: TimerEntry(timer.wake_at)}))
    (w2,) = fired.ledger
    assert (w2.decision.kind, w2.status, w2.replaces) == (Kind.TOUCH, "pending", True)


def test_a_touch_capped_again_only_updates_when_it_is_deferred_to():
    state = step(customer_updated(CID, T0, event_id="u1"), _signed_up(), CAPPED, T0, Recorded())
    later = T0 + timedelta(minutes=5)
    out = step(customer_updated(CID, later, event_id="u2"), state.state, CAPPED, later, Recorded())
    key = out.ledger[0].decision.key
    again = step(customer_updated(CID, later, event_id="u2"), state.state, CAPPED, later,
                 Recorded({key: Entry("suppressed", "cap", "suppressed")}))
    assert again.ledger == (Amend(key, detail=out.ledger[0].decision.detail),)
    assert again.timers[0].event is not None  # a deferral to a new moment is a new timer


def test_a_touch_decided_before_is_not_decided_again():
    key = decision_key(SHOP, "hello", CID, "customer.updated:u1")
    for entry in (Entry("touch", None, "done"), Entry("suppressed", "consent", "suppressed")):
        out = step(customer_updated(CID, T0, event_id="u1"), _signed_up(), CAPPED, T0, Recorded({key: entry}))
        assert out.ledger == () and out.touches == ()


def test_our_unsubscribe_outranks_a_later_opt_in_in_the_worker_and_in_simulate():
    out = step(consent_changed(CID, T0, True), _signed_up(), CAPPED, T0, Recorded(unsubscribed=True))
    assert not out.state.accepts_marketing
    unsubscribe = Event(id=f"{UNSUBSCRIBE_PREFIX}{CID}:1", type="customer.consent_changed", shop=SHOP,
                        customer_id=CID, occurred_at=day(1), data={})
    rules = shipped_rules()
    sim = Simulator(rules)
    for e in (customer_created(CID, T0, True), unsubscribe, consent_changed(CID, day(2), True),
              order_paid(CID, "5101", day(3))):
        sim.feed(e)
    sim.finish(day(60))
    assert not sim.states[(SHOP, CID)].accepts_marketing
    assert not [d for d in sim.report.ledger.values() if d.marketing and d.at > day(1)]


def test_a_timer_fired_early_is_armed_again_then_failed_with_its_touch():
    timer = Event(id="t1", type="timer", shop=SHOP, customer_id=CID, occurred_at=day(1),
                  data={"kind": "delay", "rule": "hello", "anchor": "customer.updated:u1", "version": "v"})
    early = day(1) - timedelta(seconds=2)
    out = step(timer, _signed_up(), CAPPED, early, Recorded(timers={"t1": TimerEntry(day(1), 0, "fired")}))
    assert out.state is None and not out.seen and out.ledger == ()
    (t,) = out.timers
    assert (t.status, t.attempts, t.wake_at) == ("pending", 1, day(1) + timedelta(seconds=4))
    out = step(timer, _signed_up(), CAPPED, early,
               Recorded(timers={"t1": TimerEntry(day(1), MAX_TIMER_ATTEMPTS, "fired")}))
    assert out.timers[0].status == "failed"
    (w,) = out.ledger
    assert (w.status, w.decision.key) == ("failed", decision_key(SHOP, "hello", CID, "customer.updated:u1"))


def test_a_lapse_stood_down_by_a_later_order_goes_out_when_that_order_is_cancelled():
    rules = shipped_rules()
    sim = Simulator(rules)
    for e in (customer_created(CID, T0, True), order_paid(CID, "5100", day(0, 1)), order_paid(CID, "5101", day(10)),
              order_cancelled(CID, "5101", day(95), "14.50 USD")):
        sim.feed(e)
    sim.finish(day(200))
    winback = [d for d in sim.report.ledger.values() if d.rule_id == "winback"]
    assert [d.key for d in winback] == [decision_key(SHOP, "winback", CID, "lapse:5100")]

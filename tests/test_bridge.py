"""The live worker and ``simulate`` run one policy: the same history gives the same ledger.

For every shipped pack (each alone, and all of them together), generated store histories --
signups with or without consent and birthdays, consent changes, paid orders (some with a
checkout occasion or a friend's referral code) that may be refunded or cancelled, under
frequency caps from loose to tight, deferring or skipping -- go through the live pipeline (the
real hand-off and drains on a real RQ worker, Redis, SQLite, SMTP and the store API mocked at
the HTTP layer) and through ``simulate``. Time passes on the worker's clock: every timer
(delays, lapses, occasions, deferrals) fires when it is due, through RQ's scheduled job when it
has one and through the tick's sweep of the timers table. Both sides must end with the same
ledger (every row: kind, reason, detail; the status of each suppression), the same timers and
the same customer states.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from itertools import count

import pytest
import responses
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine_helpers import (PRODUCTS, consent_changed, customer_created, order_cancelled, order_paid,
                            order_refunded)
from live import FakeWoo, running, scheduled, woo_customer, work
from plugin.db import CustomerRow, DecisionRow, ShopRow, TimerRow
from plugin.engine.referral import referral_code
from plugin.engine.ruleset import Settings, for_shop
from plugin.engine.state import state_to_dict
from plugin.engine.step import Amend
from plugin.events import event_to_dict
from plugin.rulefile import RULES_DIR
from plugin.shops import compile_files, install_rules, read_rule_dir, to_shop
from plugin.simulate import Simulator
from plugin.timers import sweep_timers

FILES = read_rule_dir(RULES_DIR)
PACKS = sorted(n for n in FILES if n.endswith(".yaml") and n != "settings.yaml")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
CUSTOMERS = ("7000000001", "7000000002", "7000000003")
FIRE = "plugin.jobs.fire_timer"
SHOPS = count(1)


@pytest.fixture(scope="module")
def live(request, redis_server, tmp_path_factory):
    from aiosmtpd.controller import Controller

    from conftest import Mailbox, free_port  # one SMTP server for the module: hypothesis runs many examples

    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.url = f"smtp://127.0.0.1:{port}"
    with running(request, redis_server, box, tmp_path_factory.mktemp("bridge")) as live:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            live.rsps = rsps
            yield live
    controller.stop()


def _gap(draw, lo_h: int, hi_h: int) -> timedelta:
    """A gap of minutes (touches crowding the cap) or of hours to months."""
    if draw(st.booleans()):
        return timedelta(minutes=draw(st.integers(0, 90)))
    return timedelta(hours=draw(st.integers(lo_h, hi_h)), minutes=draw(st.sampled_from((0, 7, 30))))


@st.composite
def histories(draw):
    """(settings.yaml text, history as a function of (shop id, referral key))."""
    text = FILES["settings.yaml"].replace("touches: 2", f"touches: {draw(st.integers(1, 2))}")
    text = text.replace("per: 7d", f"per: {draw(st.sampled_from(('7d', '30d', '2h')))}")
    text = text.replace("when_capped: defer", f"when_capped: {draw(st.sampled_from(('defer', 'skip')))}")
    plan = []
    for i, cid in enumerate(CUSTOMERS[:draw(st.integers(1, len(CUSTOMERS)))]):
        signup = T0 + _gap(draw, 0, 24 * 10)
        birthday = draw(st.none() | st.dates(date(1970, 3, 1), date(1999, 8, 31)))
        plan.append(("signup", cid, signup, draw(st.sampled_from((True, True, False))), birthday))
        for k in range(draw(st.integers(0, 2))):
            plan.append(("consent", cid, signup + _gap(draw, 1, 24 * 100), draw(st.booleans()), k))
        placed = signup
        for k in range(draw(st.integers(0, 4))):
            placed += _gap(draw, 1, 24 * 60)
            order_id = f"51{i}{k}"
            products = tuple(draw(st.lists(st.sampled_from(sorted(PRODUCTS)), min_size=1, max_size=2, unique=True)))
            friend = draw(st.none() | st.sampled_from(CUSTOMERS))
            occasion = draw(st.none() | st.integers(20, 200))
            plan.append(("order", cid, placed, (order_id, products, friend, occasion)))
            fate = draw(st.sampled_from(("kept", "kept", "refunded", "part-refunded", "cancelled")))
            if fate != "kept":
                plan.append((fate, cid, placed + _gap(draw, 1, 24 * 40), (order_id, products, f"93{i}{k}")))
    return text, sorted(plan, key=lambda p: p[2])


def events_of(plan, shop_id: str, key: str) -> list:
    codes = Settings(referral_key=key)
    out = []
    for kind, cid, at, *rest in plan:
        if kind == "signup":
            consent, birthday = rest
            out.append(customer_created(cid, at, consent, birthday=birthday and birthday.isoformat(),
                                        event_id=f"cc-{cid}", shop=shop_id))
        elif kind == "consent":
            out.append(consent_changed(cid, at, rest[0], event_id=f"consent-{cid}-{rest[1]}", shop=shop_id))
        elif kind == "order":
            order_id, products, friend, occasion = rest[0]
            attributes = None
            if occasion is not None:
                attributes = {"keepwell_occasion": "Birthday", "keepwell_occasion_for": "Mum",
                              "keepwell_occasion_date": (at + timedelta(days=occasion)).date().isoformat(),
                              "keepwell_occasion_remind": "yes"}
            out.append(order_paid(cid, order_id, at + timedelta(minutes=5), products, created=at, shop=shop_id,
                                  codes=[referral_code(codes, shop_id, friend)] if friend else [],
                                  attributes=attributes))
        else:
            order_id, products, refund_id = rest[0]
            total = f"{sum(int(PRODUCTS[p][2].replace('.', '')) for p in products) / 100:.2f} USD"
            if kind == "cancelled":
                out.append(order_cancelled(cid, order_id, at, total, shop=shop_id))
            else:
                out.append(order_refunded(cid, order_id, at, total, refunded=None if kind == "refunded" else "1.00 USD",
                                          refund_id=refund_id, shop=shop_id))
    return out


def run_live(live, shop_id: str, events: list, until: datetime) -> None:
    """Deliver each event at its time; before it, fire every timer due (RQ's scheduled job when
    it has one, then the tick's sweep), each at its own time, until ``until``."""
    events = list(events)
    for _ in range(5000):
        with live.rt.sessions() as session:
            wake = session.query(TimerRow.wake_at).filter(TimerRow.shop_id == shop_id, TimerRow.status == "pending") \
                .order_by(TimerRow.wake_at).limit(1).scalar()
        if wake is not None and wake <= until and (not events or wake <= events[0].occurred_at):
            live.clock.now = max(live.clock.now, wake)
            registry = live.rt.queue.scheduled_job_registry
            for job, when in scheduled(live, FIRE):
                if when <= live.clock.now:
                    registry.requeue(job.id)
            work(live)
            sweep_timers(live.rt, grace=timedelta(0))
        elif events:
            event = events.pop(0)
            live.clock.now = max(live.clock.now, event.occurred_at)
            live.rt.handoff.push_event(shop_id, event_to_dict(event))
        else:
            return
        work(live)
    raise AssertionError("the history never settled")


def simulated(rules, events: list, until: datetime):
    ledger, timers = {}, set()

    def keep(event, outcome):
        for w in outcome.ledger:
            if isinstance(w, Amend):
                kind, reason, detail, status = ledger[w.key]
                ledger[w.key] = (kind, reason, w.detail if w.detail is not None else detail, w.status or status)
            else:
                d = w.decision.to_dict()
                ledger[d["key"]] = (d["kind"], d["reason"], d["detail"], "touch" if d["kind"] == "touch" else w.status)
        timers.update(t.id for t in outcome.timers)

    sim = Simulator(rules, on_outcome=keep)
    for e in events:
        sim.feed(e)
    sim.finish(until)
    return sim, ledger, timers


HOUSE = sorted(PRODUCTS)[0]
#: The lapse counted from the first order stood down when a second came; the second is cancelled
#: 85 days on, so the lapse counts from the first again and the win-back goes out after all.
LAPSE_AFTER_CANCEL = (FILES["settings.yaml"], [
    ("signup", "7000000001", T0, True, None),
    ("order", "7000000001", T0 + timedelta(hours=1), ("5100", (HOUSE,), None, None)),
    ("order", "7000000001", T0 + timedelta(days=10), ("5101", (HOUSE,), None, None)),
    ("cancelled", "7000000001", T0 + timedelta(days=95), ("5101", (HOUSE,), "9301")),
])


@pytest.mark.parametrize("pack", PACKS + ["all"])
@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=histories())
@example(case=LAPSE_AFTER_CANCEL)
def test_live_pipeline_and_simulate_keep_the_same_ledger(live, pack, case):
    cap, plan = case
    files = {n: t for n, t in FILES.items() if pack == "all" or n == pack or n.startswith("templates/")}
    files["settings.yaml"] = cap
    n = next(SHOPS)
    shop_id, _ = live.add_shop("woocommerce", f"https://bridge{n}.example", consumer_key="ck_test",
                               consumer_secret="cs_test", settings={"name": "Bridge Coffee"})
    store = FakeWoo(live.rsps, f"https://bridge{n}.example")
    for cid in CUSTOMERS:  # tags are written to the customer record
        store.customers[cid] = woo_customer(int(cid), email=f"olivia.{cid}@example.com")
    with live.rt.sessions.begin() as session:
        install_rules(session, shop_id, files)
        key = to_shop(session.get(ShopRow, shop_id), live.config).referral_key
    events = events_of(plan, shop_id, key)
    until = events[-1].occurred_at + timedelta(days=120)
    live.clock.now = T0
    run_live(live, shop_id, events, until)

    sim, ledger, timers = simulated(for_shop(compile_files(files), key), events, until)
    rows = live.rows(DecisionRow, shop_id=shop_id)
    assert not [(r.key, r.status, r.error) for r in rows if r.kind == "touch" and r.status != "done"]
    got = {r.key: (r.kind, r.reason, r.detail, "touch" if r.kind == "touch" else r.status) for r in rows}
    assert got == ledger
    assert {t.key for t in live.rows(TimerRow, shop_id=shop_id)} == timers
    states = {c.customer_id: c.state for c in live.rows(CustomerRow, shop_id=shop_id)}
    assert states == {cid: state_to_dict(s) for (_, cid), s in sim.states.items()}
    assert sorted(r.key for r in rows if r.kind == "touch") == sorted(sim.report.ledger)

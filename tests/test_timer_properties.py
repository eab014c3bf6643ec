"""A touch the frequency cap deferred is never lost, whatever the clocks do.

For random caps, touch times (to the millisecond) and a skew of up to ±2 s between RQ's
scheduler and the worker, one history runs through the live pipeline (the real edge hand-off,
drains and effects on a real RQ worker, Redis, SQLite and SMTP) and through ``simulate``. A
scheduler model stands in for RQ's: it moves a scheduled job to the queue once its own clock
reaches the job's whole-second score, looking once a second; the tick sweeps the timers table
every minute on the worker's clock. Both must give the same ledger, and every capped touch
ends sent or recorded with a reason.
"""
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from itertools import count
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_helpers import customer_created, customer_updated
from live import running, scheduled, work
from plugin.db import DecisionRow, TimerRow
from plugin.events import event_to_dict
from plugin.shops import compile_files, install_rules, read_rule_dir
from plugin.simulate import Simulator
from plugin.timers import sweep_timers

RULES = read_rule_dir(Path(__file__).resolve().parent / "fixtures" / "rules_capped")
T0 = datetime(2026, 12, 6, 11, 59, 0, tzinfo=timezone.utc)
TICK = timedelta(minutes=1)
FIRE = "plugin.jobs.fire_timer"
SHOPS = count(1)


@pytest.fixture(scope="module")
def live(request, redis_server, tmp_path_factory):
    from conftest import Mailbox  # a module-wide SMTP server: hypothesis runs many examples per test
    from aiosmtpd.controller import Controller

    from conftest import free_port

    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.url = f"smtp://127.0.0.1:{port}"
    with running(request, redis_server, box, tmp_path_factory.mktemp("props")) as live:
        yield live
    controller.stop()


def ms(lo: int, hi: int):
    return st.integers(lo, hi).map(lambda n: timedelta(milliseconds=n))


@st.composite
def cases(draw):
    """(cap settings text, time-ordered events, scheduler skew, scheduler poll delay)."""
    touches = draw(st.integers(1, 2))
    per = draw(st.sampled_from(("2s", "3s", "5s", "1m", "20m")))  # 20m: beyond RQ's horizon, the tick fires it
    events = []
    for c in range(draw(st.integers(1, 2))):
        cid = str(7100 + c)
        at = T0 + draw(ms(0, 3000))
        events.append(customer_created(cid, at, True, event_id=f"cc-{cid}"))
        for k in range(draw(st.integers(1, 4))):
            at += draw(ms(0, 2500))
            events.append(customer_updated(cid, at, event_id=f"cu-{cid}-{k}", email=f"c{cid}@example.com",
                                           accepts_marketing=True))
    skew = draw(ms(-2000, 2000))
    poll = draw(ms(0, 999))
    text = RULES["settings.yaml"].replace("touches: 1", f"touches: {touches}").replace("per: 2s", f"per: {per}")
    return text, sorted(events, key=lambda e: e.occurred_at), skew, poll


def run_live(live, shop_id: str, events, skew: timedelta, poll: timedelta) -> None:
    """Deliver the events at their times; fire timers as RQ's scheduler (``skew`` ahead of the
    worker, looking ``poll`` after each second) and the minutely tick would; until nothing is left."""
    events = list(events)
    next_tick = T0 + TICK
    for _ in range(2000):
        jobs = scheduled(live, FIRE)
        # the scheduler's clock reads `when` at worker time `when - skew`; it looks `poll` later
        rq_at = min((when - skew + poll for _, when in jobs), default=None)
        with live.rt.sessions() as session:
            pending = session.query(TimerRow).filter(TimerRow.shop_id == shop_id, TimerRow.status == "pending").count()
        candidates = [t for t in (events[0].occurred_at if events else None, rq_at,
                                  next_tick if pending else None) if t is not None]
        if not candidates:
            return
        now = min(candidates)
        live.clock.now = max(live.clock.now, now)
        if events and events[0].occurred_at == now:
            live.rt.handoff.push_event(shop_id, event_to_dict(events.pop(0)))
        elif rq_at == now:
            registry = live.rt.queue.scheduled_job_registry
            for job, when in jobs:
                if when - skew + poll <= now:
                    registry.requeue(job.id)
        else:
            sweep_timers(live.rt, grace=timedelta(0))
            next_tick += TICK
        work(live)
    raise AssertionError("the timers never settled")


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cases())
def test_deferred_touches_are_sent_or_recorded_and_the_ledger_matches_simulate(live, case):
    cap, events, skew, poll = case
    shop_id, _ = live.add_shop("woocommerce", f"https://store{next(SHOPS)}.example", consumer_key="ck",
                               consumer_secret="cs")
    files = {**RULES, "settings.yaml": cap}
    with live.rt.sessions.begin() as session:
        install_rules(session, shop_id, files)
    events = [replace(e, shop=shop_id) for e in events]
    live.clock.now = T0
    run_live(live, shop_id, events, skew, poll)

    rows = sorted(live.rows(DecisionRow, shop_id=shop_id), key=lambda r: r.id)
    # none vanishes: every decision went out, or says why it did not
    assert all((r.kind, r.status) == ("touch", "done") or (r.kind == "suppressed" and r.reason and r.detail)
               for r in rows), [(r.key, r.kind, r.status, r.reason, r.error) for r in rows]
    assert not [r for r in rows if r.status == "failed"]
    assert not live.rows(TimerRow, shop_id=shop_id, status="pending")

    sim = Simulator(compile_files(files))
    for e in events:
        sim.feed(e)
    report = sim.finish(events[-1].occurred_at + timedelta(days=1))
    assert report.timers_pending == 0
    assert sorted(r.key for r in rows if r.kind == "touch") == sorted(report.ledger)
    assert len(rows) == len(report.ledger) == len(events)  # one touch per signup and per update

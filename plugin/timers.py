"""Timers (delays, lapses, occasions, cap deferrals): durable rows beside RQ's scheduler.

A timer acts at its ``wake_at``, never before. RQ's scheduled-job registry keeps whole seconds
and truncates, and the machines' clocks differ, so the job that fires a timer may run early:
times are rounded up when scheduled, and the worker checks the time again when it processes the
timer's event (``plugin.pipeline``). A timer that runs early, or that the engine defers to its
own moment again, is armed again with one more attempt; one with no attempts left is failed,
and its touch is recorded as failed on the ledger with the reason.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from plugin.db import TimerRow
from plugin.events import parse_time
from plugin.handoff import job_id

#: Timers due sooner than this go to RQ's scheduler; later ones are fired by the minutely tick
#: from the timers table, so days-long delays cost no Redis job.
RQ_TIMER_HORIZON = timedelta(minutes=15)
#: An early timer comes back within a second or two of clock skew; this many attempts without
#: acting means something else is wrong (a clock far off, a deferral that never frees).
MAX_TIMER_ATTEMPTS = 10


def due(wake_at: datetime, now: datetime) -> bool:
    """The one rule for every path (RQ's job, the tick's sweep, the worker): due at its time, not before."""
    return wake_at <= now


def whole_second_up(t: datetime) -> datetime:
    """``t`` rounded up to a whole second: RQ's registry truncates, which would make the job early."""
    return t if t.microsecond == 0 else t.replace(microsecond=0) + timedelta(seconds=1)


def schedule_timer(rt, shop_id: str, key: str, at: datetime, attempt: int = 0) -> None:
    """Ask RQ's scheduler to fire a timer that is due soon; the TimerRow is the durable copy that
    the minutely tick fires when its time comes (and the safety net if Redis lost the job)."""
    if at - rt.clock() > RQ_TIMER_HORIZON:
        return
    rt.queue.enqueue_at(whole_second_up(at), "plugin.jobs.fire_timer", shop_id, key,
                        job_id=f"timer-{job_id(shop_id, key, str(attempt))}", result_ttl=60)


def arm_again(row: TimerRow, why: str) -> bool:
    """Make a fired timer pending again with one more attempt; False (and the row failed) when
    it has used its attempts."""
    if row.attempts >= MAX_TIMER_ATTEMPTS:
        row.status, row.error = "failed", f"{why}; not armed again after {row.attempts} attempts"
        return False
    row.status, row.attempts, row.error = "pending", row.attempts + 1, why
    return True


def fire_timer(rt, shop_id: str, key: str) -> bool:
    """Put a timer's event on the shop's backlog (once). Its customer's timers due in the same
    second go with it, in order: RQ would run them in the order of their job ids."""
    with rt.sessions() as session:
        row = session.get(TimerRow, (shop_id, key))
        if row is None or row.status != "pending":
            return False
        second = whole_second_up(row.wake_at)
        rows = session.scalars(select(TimerRow).where(
            TimerRow.shop_id == shop_id, TimerRow.customer_id == row.customer_id, TimerRow.status == "pending",
            TimerRow.wake_at > second - timedelta(seconds=1), TimerRow.wake_at <= second)).all()
    return (shop_id, key) in _fire(rt, rows)


def sweep_timers(rt, grace: timedelta = timedelta(minutes=2)) -> int:
    """Fire every pending timer due by now (less ``grace``): the tick's job for timers beyond
    RQ's horizon, and the safety net for RQ jobs lost with Redis."""
    with rt.sessions() as session:
        rows = session.scalars(select(TimerRow).where(
            TimerRow.status == "pending", TimerRow.wake_at <= rt.clock() - grace)).all()
    return len(_fire(rt, rows))


def _firing_order(row: TimerRow):
    """By time; a tie (deferrals to the same free slot) by when the deferred touch was due."""
    origin = (row.event.get("data") or {}).get("event") or {}
    return row.wake_at, parse_time(origin.get("occurred_at")) or row.wake_at, row.key


def _fire(rt, rows: list[TimerRow]) -> set[tuple[str, str]]:
    """Queue the timers' events, then mark them fired. The push comes first: a crash in between
    leaves them pending, and the next push is deduped by event id. A timer armed again meanwhile
    (its attempt count moved on) stays pending."""
    rows = sorted(rows, key=_firing_order)
    for r in rows:
        rt.handoff.push_event(r.shop_id, dict(r.event), r.attempts)
    if rows:
        with rt.sessions.begin() as session:
            for r in rows:
                session.execute(update(TimerRow).where(
                    TimerRow.shop_id == r.shop_id, TimerRow.key == r.key, TimerRow.status == "pending",
                    TimerRow.attempts == r.attempts).values(status="fired"))
    return {(r.shop_id, r.key) for r in rows}


__all__ = ["RQ_TIMER_HORIZON", "MAX_TIMER_ATTEMPTS", "due", "whole_second_up", "schedule_timer", "arm_again",
           "fire_timer", "sweep_timers"]

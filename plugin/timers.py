"""Timers (delays, lapses, occasions, cap deferrals): durable rows beside RQ's scheduler.

A timer acts at its ``wake_at``, never before. RQ's scheduled-job registry keeps whole seconds
and truncates, and the machines' clocks differ, so the job that fires a timer may run early:
times are rounded up when scheduled, and the worker checks the time again when it processes the
timer's event (``plugin.engine.step``). A timer that runs early, or that the engine defers to its
own moment again, is armed again with one more attempt; one with no attempts left is failed,
and its touch is recorded as failed on the ledger with the reason.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from plugin.db import TimerRow
from plugin.engine.step import MAX_TIMER_ATTEMPTS, due, origin_time, timer_order
from plugin.handoff import job_id

#: Timers due sooner than this go to RQ's scheduler; later ones are fired by the minutely tick
#: from the timers table, so days-long delays cost no Redis job.
RQ_TIMER_HORIZON = timedelta(minutes=15)


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
    return timer_order(row.wake_at, origin_time(row.event.get("data") or {}), row.key)


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


__all__ = ["RQ_TIMER_HORIZON", "MAX_TIMER_ATTEMPTS", "due", "whole_second_up", "schedule_timer", "fire_timer",
           "sweep_timers"]

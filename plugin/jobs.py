"""RQ job functions: small, named, idempotent. Each builds its Runtime from the environment."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import select

from plugin import consent, drain as draining, effects, pipeline
from plugin.db import DecisionRow, ShopRow
from plugin.runtime import runtime

log = logging.getLogger("keepwell.jobs")
TICK_EVERY = timedelta(seconds=60)
# A decision still pending after this lost its place in the shop's effect line or its retry job:
# longer than the longest backoff (an hour; a retry being scheduled refreshes the decision's
# updated_at, so a retry that honours the store's Retry-After is never run early) and than a
# flash sale's line. A runner that died is replaced within minutes (plugin.effects.line).
STALE_PENDING = timedelta(hours=2)
RECONCILE_EVERY = timedelta(minutes=15)
#: A tick that has not armed its successor for this long is lost: any drain re-arms it.
TICK_LOST_AFTER = timedelta(minutes=3)


def drain(shop_id: str) -> int:
    """Work through a shop's backlog of webhooks, timers and signals."""
    rt = runtime()
    try:
        return draining.drain(rt, shop_id)
    finally:
        ensure_tick(rt)


def drain_lane(shop_id: str, lane: int) -> int:
    """Work through one lane of a busy shop's backlog (plugin.lanes)."""
    return draining.drain_lane(runtime(), shop_id, lane)


def fire_timer(shop_id: str, key: str) -> bool:
    """A delay, lapse, occasion or deferral is due: queue its event for the shop."""
    return pipeline.fire_timer(runtime(), shop_id, key)


def execute(shop_id: str, decision_key: str) -> str:
    """(Re)try a touch's pending effects, within the shop's effect slots."""
    return effects.execute_now(runtime(), shop_id, decision_key)


def run_effects(shop_id: str, runner: int = 0) -> int:
    """One of a shop's effect runners: run the touches waiting in its line."""
    rt = runtime()
    try:
        return effects.run_line(rt, shop_id, runner)
    finally:
        ensure_tick(rt)


def moments(shop_id: str) -> int:
    """A dated or yearly rule's moment came: give each of the shop's customers their timer."""
    from plugin.fanout import fan_out

    return fan_out(runtime(), shop_id)


def write_back_unsubscribe(shop_id: str, customer_id: str) -> str:
    """Tell the store a customer unsubscribed (retried with backoff on its own)."""
    return consent.write_back(runtime(), shop_id, customer_id)


def write_back_sms_consent(shop_id: str, customer_id: str) -> str:
    """Tell the store of a customer's SMS opt-out or re-subscription (retried with backoff on its own)."""
    from plugin.sms_consent import writeback

    return writeback.write_back(runtime(), shop_id, customer_id)


def purge() -> dict:
    """Retention: delete old data request exports, erase customers quiet for the retention period."""
    from plugin.data_requests import purge as run_purge

    return run_purge(runtime())


def reconcile(shop_id: str) -> int:
    """Feed orders and customers changed since the last sync through the normal path."""
    from plugin.reconcile import reconcile_shop

    return reconcile_shop(runtime(), shop_id)


def import_history(shop_id: str, since: str | None = None, continuing: bool = False) -> str:
    """Import (or continue importing) the shop's customers and paid orders, acting on none of it."""
    from plugin.errors import UnknownShop
    from plugin.events import parse_time
    from plugin.importing import run

    try:
        return run(runtime(), shop_id, parse_time(since), continuing=continuing).status
    except UnknownShop:
        log.info("shop %s is gone: its history import is dropped", shop_id)
        return "gone"


def tick() -> dict:
    """Housekeeping every minute: lost timers, stranded decisions, idle backlogs, reconciliation,
    history imports a dead worker left unfinished.

    The next tick is armed first, and every step (and every shop within a step) has its own
    error boundary: one poisoned record is logged and skipped, never the end of housekeeping."""
    from plugin.importing import resume_stopped

    rt = runtime()
    schedule_tick(rt)
    now = rt.clock()
    out = {"timers": 0, "moments": 0, "retried": 0, "drains": 0, "runners": 0, "reconciling": 0, "imports": 0,
           "unsubscribes": 0, "errors": 0}
    with _boundary(out, "timer sweep"):
        out["timers"] = pipeline.sweep_timers(rt, grace=timedelta(0))
    stale, shops = [], []
    with _boundary(out, "listing shops and stale decisions"):
        with rt.sessions() as session:
            stale = session.execute(select(DecisionRow.shop_id, DecisionRow.key).where(
                DecisionRow.status == "pending", DecisionRow.updated_at < now - STALE_PENDING)).all()
            shops = session.execute(select(ShopRow.id, ShopRow.last_sync_at).where(ShopRow.active)).all()
    for shop_id, key in stale:
        with _boundary(out, f"shop {shop_id}: retrying decision {key}"):
            effects.execute_now(rt, shop_id, key, wait_s=0)  # all the shop's slots busy: it joins the line
            out["retried"] += 1
    slot = now.strftime("%Y%m%d%H") + str(now.minute // 15)
    for shop_id, synced in shops:
        with _boundary(out, f"shop {shop_id}: drain, effect runners and reconciliation"):
            out["drains"] += rt.handoff.ensure_drain(shop_id)
            out["runners"] += effects.ensure_runners(rt, shop_id)  # one that died left touches behind
            if synced is None or synced < now - RECONCILE_EVERY:
                job_id = f"{rt.config.queue}-reconcile-{shop_id}-{slot}"  # job ids are global in Redis: namespace them
                if rt.queue.fetch_job(job_id) is None:
                    rt.queue.enqueue("plugin.jobs.reconcile", shop_id, job_id=job_id, result_ttl=3600)
                out["reconciling"] += 1
        with _boundary(out, f"shop {shop_id}: dated and yearly rules"):
            out["moments"] += _enqueue_moments(rt, shop_id, now)
    with _boundary(out, "sending lost consent write-backs again"):
        out["unsubscribes"] = consent.resend_lost(rt)
    with _boundary(out, "sending lost SMS consent write-backs again"):
        from plugin.sms_consent import writeback

        out["unsubscribes"] += writeback.resend_lost(rt)
    with _boundary(out, "resuming history imports"):
        out["imports"] = resume_stopped(rt)
    with _boundary(out, "the daily purge"):
        purge_id = f"{rt.config.queue}-purge-{now:%Y%m%d}"  # once a day
        if rt.queue.fetch_job(purge_id) is None:
            rt.queue.enqueue("plugin.jobs.purge", job_id=purge_id, result_ttl=2 * 24 * 3600)
    return out


def _enqueue_moments(rt, shop_id: str, now) -> int:
    """Start the fan-out of the shop's dated and yearly rules whose moment came (once a minute
    at most; a fan-out cut off resumes at the next tick)."""
    from plugin.fanout import due

    if not due(rt, shop_id):
        return 0
    job_id = f"{rt.config.queue}-moments-{shop_id}-{now:%Y%m%d%H%M}"
    if rt.queue.fetch_job(job_id) is None:
        rt.queue.enqueue("plugin.jobs.moments", shop_id, job_id=job_id, result_ttl=3600)
    return 1


@contextmanager
def _boundary(out: dict, what: str):
    try:
        yield
    except Exception:
        out["errors"] += 1
        log.exception("tick: %s failed; housekeeping goes on", what)


def _tick_key(rt) -> str:
    return f"{rt.config.queue}:tick:armed"


def schedule_tick(rt) -> None:
    """Arm the next tick; one job id per minute, so many workers arm it once."""
    at = rt.clock() + TICK_EVERY
    job_id = f"{rt.config.queue}-tick-{at.strftime('%Y%m%d%H%M')}"
    if rt.queue.fetch_job(job_id) is None:
        rt.queue.enqueue_at(at, "plugin.jobs.tick", job_id=job_id, result_ttl=300)
    # outlives a tick period or two: a lost tick job lets it expire, and the next drain re-arms
    rt.redis.set(_tick_key(rt), job_id, ex=int(TICK_LOST_AFTER.total_seconds()))


def ensure_tick(rt) -> bool:
    """Re-arm the tick if it stopped arming itself (its job lost with Redis, or deleted); one
    EXISTS per call, so every drain can afford it. True when it had to re-arm."""
    if rt.redis.exists(_tick_key(rt)):
        return False
    log.warning("the housekeeping tick was not armed; arming it")
    schedule_tick(rt)
    return True

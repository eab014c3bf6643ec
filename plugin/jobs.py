"""RQ job functions: small, named, idempotent. Each builds its Runtime from the environment."""
from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from plugin import pipeline
from plugin.db import DecisionRow, ShopRow
from plugin.runtime import runtime

log = logging.getLogger("keepwell.jobs")
TICK_EVERY = timedelta(seconds=60)
# A decision still pending after this lost its retry job (longer than the longest backoff,
# so a retry that honours the store's Retry-After is never run early).
STALE_PENDING = timedelta(hours=2)
RECONCILE_EVERY = timedelta(minutes=15)


def drain(shop_id: str) -> int:
    """Work through a shop's backlog of webhooks, timers and signals."""
    return pipeline.drain(runtime(), shop_id)


def fire_timer(shop_id: str, key: str) -> bool:
    """A delay, lapse, occasion or deferral is due: queue its event for the shop."""
    return pipeline.fire_timer(runtime(), shop_id, key)


def execute(shop_id: str, decision_key: str) -> str:
    """(Re)try a touch's pending effects."""
    return pipeline.execute_decision(runtime(), shop_id, decision_key)


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
    """Housekeeping every minute: lost timers, stranded decisions, idle backlogs, history imports
    a dead worker left unfinished; then re-arm."""
    from plugin.importing import resume_stopped

    rt = runtime()
    fired = pipeline.sweep_timers(rt, grace=timedelta(0))
    now = rt.clock()
    with rt.sessions() as session:
        stale = session.execute(select(DecisionRow.shop_id, DecisionRow.key).where(
            DecisionRow.status == "pending", DecisionRow.updated_at < now - STALE_PENDING)).all()
        shops = session.execute(select(ShopRow.id, ShopRow.last_sync_at).where(ShopRow.active)).all()
    for shop_id, key in stale:
        pipeline.execute_decision(rt, shop_id, key)
    drains = sum(rt.handoff.ensure_drain(shop_id) for shop_id, _ in shops)
    due = [shop_id for shop_id, synced in shops if synced is None or synced < now - RECONCILE_EVERY]
    for shop_id in due:
        slot = now.strftime("%Y%m%d%H") + str(now.minute // 15)
        job_id = f"{rt.config.queue}-reconcile-{shop_id}-{slot}"  # job ids are global in Redis: namespace them
        if rt.queue.fetch_job(job_id) is None:
            rt.queue.enqueue("plugin.jobs.reconcile", shop_id, job_id=job_id, result_ttl=3600)
    imports = resume_stopped(rt)
    schedule_tick(rt)
    return {"timers": fired, "retried": len(stale), "drains": drains, "reconciling": len(due), "imports": imports}


def schedule_tick(rt) -> None:
    """Arm the next tick; one job id per minute, so many workers arm it once."""
    at = rt.clock() + TICK_EVERY
    job_id = f"{rt.config.queue}-tick-{at.strftime('%Y%m%d%H%M')}"
    if rt.queue.fetch_job(job_id) is None:
        rt.queue.enqueue_at(at, "plugin.jobs.tick", job_id=job_id, result_ttl=300)

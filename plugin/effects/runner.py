"""Running a touch's effects, in order, each by the handler of its action type (``registry``).

Each effect row is marked done as soon as it succeeded, so a retried job skips it. Coupon codes
come from the decision key: a retry asks the store for the same code, and "already exists"
counts as success. A failed effect is given to the one ``retry_policy``: retried later with
backoff, or the touch fails with the reason and the effects after it (an email that would show a
missing coupon) are skipped. An effect that raises something no check foresaw fails its touch
instead of aborting the job; only our own services being down (OUTAGES) still raise, so the job
is retried rather than the touch given up. What can be checked before any side effect (an email
to an address that is not exactly one valid address) skips the whole touch.
"""
from __future__ import annotations

import logging

from sqlalchemy import select

import connectors
from plugin.db import DecisionRow, EffectRow, utcnow
from plugin.effects.registry import HANDLERS, Job
from plugin.effects.retry import OUTAGES, GiveUp, Retry, retry_later, retry_policy
from plugin.engine.actions import action_from_dict
from plugin.handoff import job_id

log = logging.getLogger("keepwell.effects")
#: The exec lock: one run of a touch at a time, whoever runs it (a runner, a retry, the tick).
EXEC_LOCK_S = 300


def execute(rt, shop_id: str, key: str) -> str:
    """Run the touch's pending effects under its exec lock; "busy" when another run holds it."""
    lock = rt.redis.lock(f"{rt.config.queue}:{{{shop_id}}}:exec:{job_id(key)}", timeout=EXEC_LOCK_S, blocking=False)
    if not lock.acquire():
        return "busy"
    try:
        return run(rt, shop_id, key)
    finally:
        lock.release()


def run(rt, shop_id: str, key: str) -> str:
    """Run the touch's pending effects; returns the decision's status (or "missing")."""
    with rt.sessions() as session:
        drow = session.scalar(select(DecisionRow).where(DecisionRow.shop_id == shop_id, DecisionRow.key == key))
        if drow is None or drow.status != "pending":
            return drow.status if drow else "missing"
        shop = rt.shop(shop_id)
        if shop is None:
            return "pending"
        effects = session.scalars(select(EffectRow).where(EffectRow.shop_id == shop_id, EffectRow.decision_key == key)
                                  .order_by(EffectRow.id)).all()
        try:
            actions = {a.key: a for a in map(action_from_dict, drow.decision["actions"])}
        except ValueError as exc:
            log.error("shop %s: touch %s: %s", shop_id, key, exc)
            return _give_up(session, drow, effects, None, f"ledger: {exc}")
        job = Job(rt, session, shop, drow, connectors.get(shop.platform))
        refused = _refused(job, effects, actions)
        if refused is not None:
            return _give_up(session, drow, effects, None, refused, "skipped")
        for eff in effects:
            action, handler = actions[eff.key], HANDLERS[eff.type]
            if eff.status in ("done", "skipped"):
                if handler.resume is not None:
                    handler.resume(job, action, eff)
                continue
            try:
                handler.run(job, action, eff)
            except OUTAGES:
                raise
            except Exception as exc:
                return _failed(job, effects, eff, exc)
            eff.attempts += 1
            if eff.status == "pending":
                eff.status = "done"
                eff.error = None  # an earlier attempt's failure; a skip keeps its reason
            session.commit()
        drow.status = "done"
        session.commit()
        return "done"


def _refused(job: Job, effects, actions) -> str | None:
    """Why the touch can never go out, from the checks of its pending effects' handlers; or None."""
    for eff in effects:
        check = HANDLERS[eff.type].check
        if eff.status == "pending" and check is not None and (why := check(job, actions[eff.key])) is not None:
            return f"{eff.type}: {why}"
    return None


def _failed(job: Job, effects, eff, exc: Exception) -> str:
    """Called in an ``except`` block: retry the touch later or give it up, as the policy says."""
    shop_id, key = job.shop.id, job.decision.key
    verdict = retry_policy(exc, eff.attempts + 1)
    if isinstance(verdict, GiveUp) and verdict.unexpected:
        log.exception("shop %s: %s for %s raised; the touch fails", shop_id, eff.type, key)
        job.session.rollback()  # whatever the effect left half-done in the session
    eff.attempts += 1
    eff.error = verdict.reason
    if isinstance(verdict, Retry):
        job.decision.updated_at = utcnow()  # a retry is waiting: the tick's stale sweep leaves the touch alone
        job.session.commit()
        retry_later(job.rt, shop_id, key, eff.attempts, verdict.delay)
        log.warning("shop %s: %s for %s failed (%s); retry in %.0fs", shop_id, eff.type, key, verdict.reason,
                    verdict.delay)
        return "pending"
    if not verdict.unexpected:
        log.error("shop %s: %s for %s failed for good: %s", shop_id, eff.type, key, verdict.reason)
    return _give_up(job.session, job.decision, effects, eff, f"{eff.type}: {verdict.reason}")


def _give_up(session, drow, effects, eff, reason: str, status: str = "failed") -> str:
    """Fail the touch: ``eff`` (the effect that failed, if any) gets ``status``, every effect
    still pending is skipped, and the decision records ``reason``."""
    if eff is not None:
        eff.status = status
    for other in effects:
        if other.status == "pending":
            other.status = "skipped"
            other.error = other.error or reason
    drow.status = "failed"
    drow.error = reason
    session.commit()
    return "failed"

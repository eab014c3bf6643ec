"""Consent kept in step with the store, both ways.

Into Keepwell: the store's consent webhooks (``connectors``), and for a customer Keepwell meets
without a known consent, one look-up in the store (``first_seen``) before the first decision.

Out to the store: a one-click unsubscribe is written back (``write_back``, an RQ job) --
Shopify's ``customerEmailMarketingConsentUpdate`` to UNSUBSCRIBED, WooCommerce's consent meta
to "no". Retryable failures (429, 5xx, timeouts) are retried with backoff up to
MAX_ATTEMPTS; the unsubscribe row keeps the outcome (``store_status``: pending, done, skipped,
failed, with the store's message), and the minutely tick re-sends write-backs whose job was lost.
"""
from __future__ import annotations

import hashlib
import logging
from datetime import timedelta

from sqlalchemy import select

import connectors
from connectors.base import ConsentLookup
from plugin.db import CustomerRow, ShopRow, UnsubscribeRow
from plugin.errors import StoreError

log = logging.getLogger("keepwell.consent")

MAX_ATTEMPTS = 8
#: A pending write-back untouched this long lost its job (beyond the longest backoff).
STALE = timedelta(hours=2)
#: A customer's consent is looked up once; the mark that it was expires after this.
LOOKED_UP_TTL_S = 180 * 24 * 3600


def _backoff(attempts: int, retry_after: float | None) -> float:
    return max(retry_after or 0.0, min(3600.0, 5.0 * 3 ** (attempts - 1)))


# --- out: the unsubscribe written back --------------------------------------------------------------

def enqueue_write_back(queue, shop_id: str, customer_id: str, attempt: int = 0, delay_s: float = 0.0) -> None:
    """Queue the write-back of one unsubscribe on the RQ ``queue`` (one job id per attempt, so
    queueing an attempt twice runs it once)."""
    job_id = f"{queue.name}-unsub-{_digest(shop_id, customer_id)}-{attempt}"  # job ids are global in Redis
    if queue.fetch_job(job_id) is not None:
        return
    if delay_s > 0:
        queue.enqueue_in(timedelta(seconds=delay_s), "plugin.jobs.write_back_unsubscribe", shop_id, customer_id,
                         job_id=job_id, result_ttl=300)
    else:
        queue.enqueue("plugin.jobs.write_back_unsubscribe", shop_id, customer_id, job_id=job_id, result_ttl=300)


def write_back(rt, shop_id: str, customer_id: str) -> str:
    """Tell the store the customer unsubscribed; the row's new store_status."""
    lock = rt.redis.lock(f"{rt.config.queue}:{{{shop_id}}}:unsub:{_digest(customer_id)}", timeout=120, blocking=False)
    if not lock.acquire():
        return "busy"
    try:
        return _write_back(rt, shop_id, customer_id)
    finally:
        lock.release()


def _write_back(rt, shop_id: str, customer_id: str) -> str:
    with rt.sessions() as session:
        row = session.get(UnsubscribeRow, (shop_id, customer_id))
        if row is None or row.store_status != "pending":
            return row.store_status if row else "missing"
        shop = rt.shop(shop_id)
        if shop is None:
            return "pending"  # uninstalled or paused: nothing to write to now
        row.store_attempts += 1
        row.store_tried_at = rt.clock()
        try:
            outcome = connectors.get(shop.platform).unsubscribe(shop, customer_id, row.at)
        except StoreError as exc:
            row.store_error = exc.message
            if exc.retryable and row.store_attempts < MAX_ATTEMPTS:
                session.commit()
                delay = _backoff(row.store_attempts, exc.retry_after)
                enqueue_write_back(rt.queue, shop_id, customer_id, row.store_attempts, delay)
                log.warning("shop %s: unsubscribe of %s not written back (%s); retry in %.0fs", shop_id, customer_id,
                            exc.message, delay)
                return "pending"
            row.store_status = "failed"
            session.commit()
            log.error("shop %s: unsubscribe of %s not written back, for good: %s", shop_id, customer_id, exc.message)
            return "failed"
        row.store_status, _, why = outcome.partition(": ")
        row.store_error = why or None
        session.commit()
        log.info("shop %s: unsubscribe of %s written back: %s", shop_id, customer_id, outcome)
        return row.store_status


def resend_lost(rt) -> int:
    """Queue again the write-backs still pending long after their last try (their job was lost),
    for shops that are installed (an uninstalled shop's wait until it is back)."""
    cutoff = rt.clock() - STALE
    with rt.sessions() as session:
        rows = session.execute(select(UnsubscribeRow.shop_id, UnsubscribeRow.customer_id, UnsubscribeRow.store_attempts)
                               .join(ShopRow, ShopRow.id == UnsubscribeRow.shop_id)
                               .where(ShopRow.active, UnsubscribeRow.store_status == "pending",
                                      ((UnsubscribeRow.store_tried_at.is_(None) & (UnsubscribeRow.at < cutoff))
                                       | (UnsubscribeRow.store_tried_at < cutoff)))).all()
    for shop_id, customer_id, attempts in rows:
        enqueue_write_back(rt.queue, shop_id, customer_id, attempts)
    return len(rows)


# --- in: the first look-up --------------------------------------------------------------------------

def first_seen(rt, shop, event) -> ConsentLookup | None:
    """The store's consent for the event's customer when Keepwell knows none yet: looked up once
    per customer (its SMS consent and phone come with the same answer where the store has them).
    None when the event brings one, it is known, the store cannot say, or the look-up failed (the
    next event of the customer tries again)."""
    customer = event.customer
    if customer is not None and customer.accepts_marketing is not None:
        return None
    cid = event.customer_id
    if not cid or cid.startswith("guest:"):
        return None
    mark = f"{rt.config.queue}:{{{shop.id}}}:consent-looked-up:{_digest(cid)}"
    if rt.redis.exists(mark):
        return None
    with rt.sessions() as session:
        crow = session.get(CustomerRow, (shop.id, cid))
        if crow is not None and crow.state.get("consent_at") is not None:
            return None  # a consent event (or an earlier look-up) already told us
    try:
        found = connectors.get(shop.platform).marketing_consent(shop, cid)
    except StoreError as exc:
        log.warning("shop %s: consent of customer %s not looked up: %s", shop.id, cid, exc.message)
        return None
    rt.redis.set(mark, "1", ex=LOOKED_UP_TTL_S)
    return found


def first_seen_many(rt, shop, events: list) -> list[ConsentLookup | None]:
    """``first_seen`` for the events of several customers at once (a drain's batch): one Redis
    round trip and one query for all, then the look-ups the store still has to answer."""
    todo = [e for e in events if not (e.customer is not None and e.customer.accepts_marketing is not None)
            and e.customer_id and not e.customer_id.startswith("guest:")]
    if not todo:
        return [None] * len(events)
    marks = [f"{rt.config.queue}:{{{shop.id}}}:consent-looked-up:{_digest(e.customer_id)}" for e in todo]
    pipe = rt.redis.pipeline(transaction=False)
    for mark in marks:
        pipe.exists(mark)
    todo = [(e, mark) for e, mark, done in zip(todo, marks, pipe.execute()) if not done]
    if todo:
        with rt.sessions() as session:
            known = {cid for cid, state in session.execute(select(CustomerRow.customer_id, CustomerRow.state).where(
                CustomerRow.shop_id == shop.id, CustomerRow.customer_id.in_({e.customer_id for e, _ in todo})))
                if state.get("consent_at") is not None}  # a consent event (or an earlier look-up) told us
    found = {}
    for e, mark in todo:
        if e.customer_id in known:
            continue
        try:
            found[e.customer_id] = connectors.get(shop.platform).marketing_consent(shop, e.customer_id)
        except StoreError as exc:
            log.warning("shop %s: consent of customer %s not looked up: %s", shop.id, e.customer_id, exc.message)
            continue
        rt.redis.set(mark, "1", ex=LOOKED_UP_TTL_S)
    return [found.get(e.customer_id) for e in events]


def _digest(*parts: str) -> str:
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:24]

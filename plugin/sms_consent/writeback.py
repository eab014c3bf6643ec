"""Keepwell's SMS consent changes written back to the store (an RQ job per change).

Shopify: ``customerSmsMarketingConsentUpdate`` (UNSUBSCRIBED or SUBSCRIBED); WooCommerce: the
customer's SMS opt-in meta. As for email unsubscribes (``plugin.consent``): retryable failures
(429, 5xx, timeouts) are retried with backoff up to MAX_ATTEMPTS, the change's row keeps the
outcome (``store_status``: pending, done, skipped, failed, with the store's message), and the
minutely tick queues again the write-backs whose job was lost (``resend_lost``).
"""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import select

import connectors
from plugin.consent import MAX_ATTEMPTS, STALE, _backoff
from plugin.db import ShopRow, SmsConsentRow
from plugin.errors import StoreError

log = logging.getLogger("keepwell.sms_consent")


def _digest(*parts: str) -> str:
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:24]


def enqueue(queue, shop_id: str, customer_id: str, at: datetime, attempt: int = 0, delay_s: float = 0.0) -> None:
    """Queue the write-back of the change made ``at`` (one job id per change and attempt, so
    queueing one twice runs it once, and a later change is not mistaken for it)."""
    job_id = f"{queue.name}-smsconsent-{_digest(shop_id, customer_id, at.isoformat())}-{attempt}"
    if queue.fetch_job(job_id) is not None:
        return
    args = ("plugin.jobs.write_back_sms_consent", shop_id, customer_id)
    if delay_s > 0:
        queue.enqueue_in(timedelta(seconds=delay_s), *args, job_id=job_id, result_ttl=300)
    else:
        queue.enqueue(*args, job_id=job_id, result_ttl=300)


def write_back(rt, shop_id: str, customer_id: str) -> str:
    """Tell the store the customer's newest SMS consent change; the row's new store_status."""
    lock = rt.redis.lock(f"{rt.config.queue}:{{{shop_id}}}:smsconsent:{_digest(customer_id)}", timeout=120,
                         blocking=False)
    if not lock.acquire():
        return "busy"
    try:
        return _write_back(rt, shop_id, customer_id)
    finally:
        lock.release()


def _write_back(rt, shop_id: str, customer_id: str) -> str:
    with rt.sessions() as session:
        row = session.get(SmsConsentRow, (shop_id, customer_id))
        if row is None or row.store_status != "pending":
            return row.store_status if row else "missing"
        shop = rt.shop(shop_id)
        if shop is None:
            return "pending"  # uninstalled or paused: nothing to write to now
        row.store_attempts += 1
        row.store_tried_at = rt.clock()
        what = "re-subscription" if row.subscribed else "SMS opt-out"
        try:
            outcome = connectors.get(shop.platform).sms_consent_update(shop, customer_id, row.subscribed, row.at)
        except StoreError as exc:
            row.store_error = exc.message
            if exc.retryable and row.store_attempts < MAX_ATTEMPTS:
                session.commit()
                delay = _backoff(row.store_attempts, exc.retry_after)
                enqueue(rt.queue, shop_id, customer_id, row.at, row.store_attempts, delay)
                log.warning("shop %s: %s of %s not written back (%s); retry in %.0fs", shop_id, what, customer_id,
                            exc.message, delay)
                return "pending"
            row.store_status = "failed"
            session.commit()
            log.error("shop %s: %s of %s not written back, for good: %s", shop_id, what, customer_id, exc.message)
            return "failed"
        row.store_status, _, why = outcome.partition(": ")
        row.store_error = why or None
        session.commit()
        log.info("shop %s: %s of %s written back: %s", shop_id, what, customer_id, outcome)
        return row.store_status


def resend_lost(rt) -> int:
    """Queue again the write-backs still pending long after their last try (their job was lost),
    for shops that are installed."""
    cutoff = rt.clock() - STALE
    with rt.sessions() as session:
        rows = session.execute(select(SmsConsentRow.shop_id, SmsConsentRow.customer_id, SmsConsentRow.at,
                                      SmsConsentRow.store_attempts)
                               .join(ShopRow, ShopRow.id == SmsConsentRow.shop_id)
                               .where(ShopRow.active, SmsConsentRow.store_status == "pending",
                                      ((SmsConsentRow.store_tried_at.is_(None) & (SmsConsentRow.at < cutoff))
                                       | (SmsConsentRow.store_tried_at < cutoff)))).all()
    for shop_id, customer_id, at, attempts in rows:
        enqueue(rt.queue, shop_id, customer_id, at, attempts)
    return len(rows)

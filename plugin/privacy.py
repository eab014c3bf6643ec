"""Privacy requests: export what Keepwell holds on a customer, erase a customer, erase a shop.

The functions taking a session do the data work; the ``*_job`` functions at the end are the RQ
jobs the Shopify compliance webhooks queue (connectors/shopify/compliance.py). They run in the worker,
not in the request: erasing a shop can mean millions of rows, and Shopify waits 5 seconds for
an answer but gives 30 days for the work. Every job is idempotent.

What Keepwell holds on a customer and what ``redact_customer`` does with it:

| table        | holds                                                   | on erasure                |
|--------------|---------------------------------------------------------|---------------------------|
| customers    | the folded state: email, names, consent, orders, tags   | deleted                   |
| orders       | order id -> customer id                                 | deleted                   |
| unsubscribes | that and when the customer unsubscribed                 | deleted                   |
| timers       | scheduled events, which can carry the customer's details| deleted                   |
| data_exports | earlier exports of this customer's data                 | deleted                   |
| pages        | personal pages and the answers given there              | deleted (links stop working) |
| decisions    | the ledger: each decision as data, emails in actions    | kept, contact data erased |
| effects      | coupons, emails, tags carried out                       | kept, contact data erased |
| events_seen  | delivery keys (topic, resource id, timestamp)           | kept: nothing personal    |

An export also carries the customer's rows of any other table scoped by shop and customer, so
a table added later is not silently left out of a data request.

Ledger rows stay so that exactly-once still holds (a late re-delivery finds its decision and
sends nothing twice) and the shop's rule statistics add up. They keep the store's customer id,
which is part of their keys: a pseudonymous number that the store itself no longer resolves
once it has redacted the customer. Every email address, name, phone number and date of birth
inside them is removed, error texts included, and touches still pending are cancelled so that
nothing more goes out. A referral signal copies a friend's email to the referrer's side; that
copy is erased from the referrer's ledger and timers too.
"""
from __future__ import annotations

import logging
import re
from datetime import datetime

from rq import Retry
from sqlalchemy import delete, or_, select

from plugin.db import (Base, CustomerRow, DataExportRow, DecisionRow, EffectRow, OrderIndexRow, PageRow, ShopRow,
                       SmsConsentRow, TimerRow, UnsubscribeRow, utcnow)
from plugin.handoff import entry_id

log = logging.getLogger("keepwell.privacy")

#: Keys whose values are contact or identity data wherever they appear in stored JSON.
PERSONAL_KEYS = frozenset({"email", "to", "friend_email", "email_address", "first_name", "last_name", "phone",
                           "birthday", "anniversary", "shipping_address", "friend_phone", "friend_address"})
REDACTED = "[redacted]"
CANCELLED = "customer data erased"

#: Retried with backoff: Shopify gives 30 days, a database or Redis outage should not lose a request.
RETRY = Retry(max=6, interval=[60, 300, 900, 3600, 6 * 3600, 24 * 3600])
LOCK_WAIT_S = 60


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _plain(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool, dict, list)):
        return value
    return str(value)  # Decimal amounts and the like


_EXPORTED = {CustomerRow, DecisionRow, EffectRow, OrderIndexRow, TimerRow, UnsubscribeRow, DataExportRow}


def _other_tables(session, shop_id: str, customer_id: str) -> dict:
    """Rows of any other customer-scoped table, so a table added later is in exports too."""
    out = {}
    for mapper in sorted(Base.registry.mappers, key=lambda m: m.class_.__tablename__):
        model = mapper.class_
        columns = model.__table__.columns
        if model in _EXPORTED or "shop_id" not in columns or "customer_id" not in columns:
            continue
        rows = session.scalars(select(model).where(columns["shop_id"] == shop_id, columns["customer_id"] == customer_id))
        found = [{c.name: _plain(getattr(r, c.key)) for c in columns} for r in rows]
        if found:
            out[model.__tablename__] = found
    return out


# --- export ------------------------------------------------------------------------------------

def export_customer(session, shop_id: str, customer_id: str, request_id: str = "") -> DataExportRow:
    """Gather everything Keepwell holds on the customer into a DataExportRow (one per request:
    a repeated request id replaces its earlier export)."""
    customer_id = str(customer_id)
    crow = session.get(CustomerRow, (shop_id, customer_id))
    decisions = session.scalars(select(DecisionRow).where(DecisionRow.shop_id == shop_id,
                                                          DecisionRow.customer_id == customer_id)
                                .order_by(DecisionRow.id)).all()
    effects = session.scalars(select(EffectRow).where(EffectRow.shop_id == shop_id, EffectRow.customer_id == customer_id)
                              .order_by(EffectRow.id)).all()
    orders = session.scalars(select(OrderIndexRow.order_id).where(OrderIndexRow.shop_id == shop_id,
                                                                  OrderIndexRow.customer_id == customer_id)
                             .order_by(OrderIndexRow.order_id)).all()
    timers = session.scalars(select(TimerRow).where(TimerRow.shop_id == shop_id, TimerRow.customer_id == customer_id)
                             .order_by(TimerRow.wake_at)).all()
    unsubscribed = session.get(UnsubscribeRow, (shop_id, customer_id))
    shop = session.get(ShopRow, shop_id)
    data = {
        "shop": {"id": shop_id, "platform": shop.platform if shop else None, "domain": shop.domain if shop else None},
        "customer_id": customer_id,
        "request_id": request_id,
        "generated_at": utcnow().isoformat(),
        "holds_data": False,  # set below
        "customer_state": crow.state if crow else None,
        "decisions": [{"key": d.key, "rule_id": d.rule_id, "kind": d.kind, "reason": d.reason, "detail": d.detail,
                       "status": d.status, "event_id": d.event_id, "ruleset_version": d.ruleset_version,
                       "error": d.error, "created_at": _iso(d.created_at), "updated_at": _iso(d.updated_at),
                       "decision": d.decision} for d in decisions],
        "effects": [{"key": e.key, "decision_key": e.decision_key, "type": e.type, "status": e.status,
                     "coupon_code": e.coupon_code, "message_id": e.message_id, "store_id": e.store_id,
                     "attempts": e.attempts, "error": e.error, "created_at": _iso(e.created_at),
                     "updated_at": _iso(e.updated_at)} for e in effects],
        "orders": list(orders),
        "timers": [{"key": t.key, "wake_at": _iso(t.wake_at), "status": t.status, "event": t.event} for t in timers],
        "unsubscribed_at": _iso(unsubscribed.at) if unsubscribed else None,
        "other": _other_tables(session, shop_id, customer_id),
    }
    data["holds_data"] = bool(crow or decisions or effects or orders or timers or unsubscribed or data["other"])
    row = None
    if request_id:
        row = session.scalar(select(DataExportRow).where(DataExportRow.shop_id == shop_id,
                                                         DataExportRow.customer_id == customer_id,
                                                         DataExportRow.request_id == request_id))
    if row is None:
        row = DataExportRow(shop_id=shop_id, customer_id=customer_id, request_id=request_id, data=data)
        session.add(row)
    else:
        row.data, row.created_at = data, utcnow()
    session.flush()
    return row


# --- customer erasure --------------------------------------------------------------------------

class _Scrubber:
    """Removes a customer's contact data from stored JSON and text.

    ``own`` rows belong to the erased customer: every value under a PERSONAL_KEYS key goes.
    Other customers' rows (a referrer's) lose only the erased customer's own values.
    """

    def __init__(self, values):
        self.exact = {v.strip().lower() for v in values if isinstance(v, str) and v.strip()}
        # Emails and phone numbers are distinctive enough to find inside longer texts; names are not.
        self.distinctive = sorted((v for v in self.exact if "@" in v or sum(c.isdigit() for c in v) >= 6),
                                  key=len, reverse=True)
        self.inside = (re.compile("|".join(re.escape(v) for v in self.distinctive), re.IGNORECASE)
                       if self.distinctive else None)

    def distinctive_only(self) -> "_Scrubber":
        """For other customers' rows: a name equal to the erased customer's may well be theirs."""
        return _Scrubber(self.distinctive)

    def text(self, value):
        if not isinstance(value, str):
            return value
        if value.strip().lower() in self.exact:
            return REDACTED
        return self.inside.sub(REDACTED, value) if self.inside is not None else value

    def json(self, value, own: bool):
        if isinstance(value, dict):
            return {k: (None if own and k in PERSONAL_KEYS and v is not None else self.json(v, own))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self.json(v, own) for v in value]
        return self.text(value)


def _signal_targets(decisions) -> set[str]:
    """Customers the erased one's decisions signalled (a referrer told about a friend's order)."""
    return {a["customer_id"] for d in decisions for a in (d.decision or {}).get("actions") or ()
            if isinstance(a, dict) and a.get("type") == "signal" and a.get("customer_id")}


def redact_customer(session, shop_id: str, customer_id: str, order_ids=(), contact=(), keep_unsubscribe=False) -> dict:
    """Erase the customer's personal data in the shop (see the module docstring for what goes
    and what stays). ``order_ids`` are the orders the request names, ``contact`` the email
    address and phone the store knows the customer by; ``keep_unsubscribe`` keeps the record of
    an opt-out (retention purges: an opt-out must be honoured). Returns counts by table."""
    customer_id = str(customer_id)
    order_ids = [str(o) for o in order_ids or ()]
    crow = session.get(CustomerRow, (shop_id, customer_id))
    state = crow.state if crow else {}
    scrub = _Scrubber([*contact, state.get("email"), state.get("first_name"), state.get("last_name"),
                       state.get("sms_phone")])
    counts = {}

    decisions = session.scalars(select(DecisionRow).where(DecisionRow.shop_id == shop_id,
                                                          DecisionRow.customer_id == customer_id)).all()
    referrers = _signal_targets(decisions) - {customer_id}
    for d in decisions:
        d.decision = scrub.json(d.decision, own=True)
        d.detail, d.error = scrub.text(d.detail), scrub.text(d.error)
        if d.status == "pending":
            d.status, d.error = "failed", CANCELLED
    counts["decisions_scrubbed"] = len(decisions)
    effects = session.scalars(select(EffectRow).where(EffectRow.shop_id == shop_id, EffectRow.customer_id == customer_id)).all()
    for e in effects:
        e.error = scrub.text(e.error)
        if e.status == "pending":
            e.status, e.error = "skipped", CANCELLED
    counts["effects_scrubbed"] = len(effects)

    # The referrers' copies of this customer's email (in signal events, their timers and ledger).
    theirs = scrub.distinctive_only()
    if referrers and theirs.exact:
        for t in session.scalars(select(TimerRow).where(TimerRow.shop_id == shop_id, TimerRow.customer_id.in_(referrers))):
            t.event = theirs.json(t.event, own=False)
        for d in session.scalars(select(DecisionRow).where(DecisionRow.shop_id == shop_id,
                                                           DecisionRow.customer_id.in_(referrers))):
            d.decision, d.detail, d.error = theirs.json(d.decision, own=False), theirs.text(d.detail), theirs.text(d.error)
        for e in session.scalars(select(EffectRow).where(EffectRow.shop_id == shop_id, EffectRow.customer_id.in_(referrers))):
            e.error = theirs.text(e.error)

    orders = OrderIndexRow.customer_id == customer_id
    if order_ids:
        orders = or_(orders, OrderIndexRow.order_id.in_(order_ids))
    for name, statement in (
        ("customers", delete(CustomerRow).where(CustomerRow.shop_id == shop_id, CustomerRow.customer_id == customer_id)),
        ("orders", delete(OrderIndexRow).where(OrderIndexRow.shop_id == shop_id, orders)),
        *(() if keep_unsubscribe else [("unsubscribes", delete(UnsubscribeRow).where(
            UnsubscribeRow.shop_id == shop_id, UnsubscribeRow.customer_id == customer_id)),
            ("sms_consent_changes", delete(SmsConsentRow).where(
                SmsConsentRow.shop_id == shop_id, SmsConsentRow.customer_id == customer_id))]),
        ("timers", delete(TimerRow).where(TimerRow.shop_id == shop_id, TimerRow.customer_id == customer_id)),
        ("data_exports", delete(DataExportRow).where(DataExportRow.shop_id == shop_id,
                                                     DataExportRow.customer_id == customer_id)),
        ("pages", delete(PageRow).where(PageRow.shop_id == shop_id, PageRow.customer_id == customer_id)),
    ):
        counts[name] = session.execute(statement).rowcount
    session.flush()
    return counts


def scrub_dead_letters(redis, backlog_key: str, contact) -> int:
    """Drop dead-lettered webhook bodies of the shop that mention the customer's email or phone."""
    scrub = _Scrubber(contact)
    if scrub.inside is None:
        return 0
    dead = f"{backlog_key}:dead"
    removed = 0
    for raw in redis.lrange(dead, 0, -1):
        if scrub.inside.search(raw.decode("utf-8", "replace")):
            removed += redis.lrem(dead, 0, raw)
            redis.hdel(f"{dead}:reasons", entry_id(raw))
    return removed


# --- shop erasure ------------------------------------------------------------------------------

def redact_shop(session, shop_id: str, handoff=None) -> dict:
    """Delete the shop and everything stored for it: its row (every shop-scoped table cascades),
    its data exports (kept apart from the shop row, but nobody can fetch them any more), and,
    given the ``handoff``, its Redis keys (backlog, dead letters, dedupe marks, locks)."""
    exports = session.execute(delete(DataExportRow).where(DataExportRow.shop_id == shop_id)).rowcount
    shops = session.execute(delete(ShopRow).where(ShopRow.id == shop_id)).rowcount
    session.flush()
    keys = erase_shop_keys(handoff.redis, handoff.prefix, shop_id) if handoff is not None else 0
    return {"shops": shops, "data_exports": exports, "redis_keys": keys}


def erase_shop_keys(redis, prefix: str, shop_id: str) -> int:
    """Delete every Redis key of the shop: they all start ``{prefix}:{{shop_id}}:``."""
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", f"{prefix}:{{{shop_id}}}:") + "*"
    deleted = 0
    batch = []
    for key in redis.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += redis.delete(*batch)
            batch = []
    if batch:
        deleted += redis.delete(*batch)
    return deleted


# --- RQ jobs -----------------------------------------------------------------------------------

class _ShopLock:
    """The drain's own locks (plugin.drain): the shop's, then (the lane count cannot change while
    it is held: plugin.lanes) each lane's. No event is folded into a customer's state while it is
    being erased, so an erased row cannot come back from a drain in flight."""

    def __init__(self, rt, shop_id: str):
        from plugin.handoff import DRAIN_TTL

        self.rt, self.shop_id, self.ttl = rt, shop_id, DRAIN_TTL
        self.held: list = []

    def _lock(self, draining: str):
        return self.rt.redis.lock(f"{draining}:lock", timeout=self.ttl, blocking_timeout=LOCK_WAIT_S)

    def acquire(self) -> bool:
        keys = self.rt.handoff.keys(self.shop_id)
        locks = [self._lock(keys.draining)]
        if locks[0].acquire():
            self.held.append(locks[0])
            lanes = self.rt.handoff.lane_count(self.shop_id)
            for n in range(lanes if lanes > 1 else 0):
                lock = self._lock(keys.lane(n).draining)
                if not lock.acquire():
                    break
                self.held.append(lock)
            else:
                return True
        self.release()
        return False

    def release(self) -> None:
        while self.held:
            self.held.pop().release()


def _shop_lock(rt, shop_id: str) -> _ShopLock:
    return _ShopLock(rt, shop_id)


def export_job(shop_id: str, customer_id: str, request_id: str = "") -> int | None:
    """A customer's data request: store the export and email the shop owner its download link
    (plugin.data_requests); returns the export's row id (None: shop gone)."""
    from plugin.data_requests import deliver
    from plugin.runtime import runtime

    rt = runtime()
    with rt.sessions.begin() as session:
        if session.get(ShopRow, shop_id) is None:
            log.info("shop %s: data request %s for customer %s: shop already erased", shop_id, request_id, customer_id)
            return None
        row = export_customer(session, shop_id, customer_id, request_id)
        held, export_id = row.data["holds_data"], row.id
    log.info("shop %s: data request %s for customer %s exported (%s)", shop_id, request_id, customer_id,
             "data held" if held else "nothing held")
    deliver(rt, shop_id, export_id)  # a mail server failure raises: RQ retries the job, which changes nothing twice
    return export_id


def redact_customer_job(shop_id: str, customer_id: str, order_ids=(), contact=()) -> dict:
    """A customer's erasure request, serialised with the shop's drain."""
    from plugin.runtime import runtime

    rt = runtime()
    lock = _shop_lock(rt, shop_id)
    if not lock.acquire():
        raise TimeoutError(f"shop {shop_id} is busy draining; the erasure is retried")
    try:
        with rt.sessions.begin() as session:
            if session.get(ShopRow, shop_id) is None:
                return {}
            counts = redact_customer(session, shop_id, customer_id, order_ids, contact)
        counts["dead_letters"] = scrub_dead_letters(rt.redis, rt.handoff.keys(shop_id).backlog, contact)
    finally:
        lock.release()
    log.info("shop %s: customer %s erased: %s", shop_id, customer_id, counts)
    return counts


def redact_shop_job(shop_id: str) -> dict:
    """A shop's erasure request (48 hours after the uninstall); an installed shop is never erased."""
    from plugin.runtime import runtime

    rt = runtime()
    lock = _shop_lock(rt, shop_id)
    if not lock.acquire():
        raise TimeoutError(f"shop {shop_id} is busy draining; the erasure is retried")
    try:
        with rt.sessions.begin() as session:
            row = session.get(ShopRow, shop_id)
            if row is not None and row.active:  # reinstalled since the request was queued
                log.warning("shop %s: shop/redact not carried out: the shop has the app installed again", shop_id)
                return {}
            counts = redact_shop(session, shop_id)
    finally:
        lock.release()
    counts["redis_keys"] = erase_shop_keys(rt.redis, rt.handoff.prefix, shop_id)  # the lock's key included
    log.info("shop %s erased: %s", shop_id, counts)
    return counts

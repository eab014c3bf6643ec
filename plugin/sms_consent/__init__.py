"""SMS consent that Keepwell itself changes, apart from what the stores say.

A customer withdraws SMS consent by texting STOP to the shop's number (``plugin.sms_consent.twilio``),
on the personal page, or Twilio tells us they did (error 21610); START re-subscribes. Every such
change is a canonical ``customer.consent_changed`` event whose id starts with ``sms-stop:`` or
``sms-start:``, pushed onto the shop's backlog. Two things make it more than an event:

- it takes effect at once: ``record`` keeps the change in ``sms_consent_changes``, and
  ``allows_sms`` (what the SMS effect asks before sending) lets the newer of that record and the
  customer's folded state decide, so a touch about to be sent after a STOP is not sent even
  while the STOP waits in the backlog;
- it is written back to the store (``writeback``), with the retries email unsubscribes have.

``after_event`` (the pipeline calls it for every event) records the changes pushed by others and
queues their write-back.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import select

from plugin.db import CustomerRow, SmsConsentRow
from plugin.events import Event, parse_time
from plugin.sms_consent.phones import phone_key, same_number

log = logging.getLogger("keepwell.sms_consent")

STOP_PREFIX = "sms-stop:"
START_PREFIX = "sms-start:"


def change_event(shop_id: str, customer_id: str, subscribed: bool, at: datetime, source: str) -> dict:
    """The canonical event of one SMS consent change, as pushed onto the backlog."""
    prefix = START_PREFIX if subscribed else STOP_PREFIX
    return {
        "id": f"{prefix}{customer_id}:{int(at.timestamp() * 1000)}", "type": "customer.consent_changed",
        "shop": shop_id, "customer_id": customer_id, "occurred_at": at.isoformat(),
        "customer": {"id": customer_id, "sms_consent": subscribed}, "data": {"source": source},
    }


def is_change(event: Event) -> bool:
    return event.type == "customer.consent_changed" and event.id.startswith((STOP_PREFIX, START_PREFIX))


def record(session, shop_id: str, customer_id: str, subscribed: bool, at: datetime, source: str) -> bool:
    """Keep a change (the newest wins) with its write-back pending; False when a newer one is kept."""
    row = session.get(SmsConsentRow, (shop_id, customer_id))
    if row is None:
        session.add(SmsConsentRow(shop_id=shop_id, customer_id=customer_id, subscribed=subscribed, at=at,
                                  source=source, store_status="pending", store_attempts=0))
        return True
    if row.at > at or (row.at == at and row.subscribed == subscribed):
        return False
    row.subscribed, row.at, row.source = subscribed, at, source
    row.store_status, row.store_attempts, row.store_error, row.store_tried_at = "pending", 0, None, None
    return True


def allows_sms(session, shop_id: str, customer_id: str, state: Mapping[str, Any] | None = None) -> bool:
    """The customer's SMS consent now: their folded state's (``state``, read when not given),
    unless a change Keepwell recorded is newer than the consent the state holds."""
    if state is None:
        crow = session.get(CustomerRow, (shop_id, customer_id))
        state = crow.state if crow is not None else {}
    consent, consent_at = bool(state.get("sms_consent")), parse_time(state.get("sms_consent_at"))
    row = session.get(SmsConsentRow, (shop_id, customer_id))
    if row is not None and (consent_at is None or row.at > consent_at):
        return row.subscribed
    return consent


def customers_for(session, shop_id: str, sender: str) -> list[str]:
    """The shop's customers whose stored number is ``sender`` (E.164)."""
    key = phone_key(sender)
    if key is None:
        return []
    rows = session.execute(select(CustomerRow.customer_id, CustomerRow.state).where(
        CustomerRow.shop_id == shop_id, CustomerRow.phone_key == key)).all()
    return sorted(cid for cid, state in rows if same_number((state or {}).get("sms_phone"), sender))


def after_event(rt, shop_id: str, event: Event) -> None:
    """For an ``sms-stop:``/``sms-start:`` event: keep the change (when its sender did not) and
    queue its write-back to the store. Any other event: nothing."""
    if not is_change(event) or event.customer is None or event.customer.sms_consent is None:
        return
    from plugin.sms_consent.writeback import enqueue

    source = str(event.data.get("source") or "event")
    with rt.sessions.begin() as session:
        record(session, shop_id, event.customer_id, event.customer.sms_consent, event.occurred_at, source)
        row = session.get(SmsConsentRow, (shop_id, event.customer_id))
        pending = row is not None and row.store_status == "pending" and row.at == event.occurred_at
    if pending:
        enqueue(rt.queue, shop_id, event.customer_id, event.occurred_at)

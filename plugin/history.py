"""A shop's own history as canonical events, rebuilt from the customer states Keepwell keeps.

The worker keeps state per customer, not every event, so the rebuilt history has signups
(with consent, names and occasions), paid orders with their totals, cancellations and refunds,
but no line items: product and collection conditions see none of them in a replay.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select

from plugin.db import CustomerRow
from plugin.events import Customer, Event, Money, Order, parse_time


def shop_events(session, shop_id: str, since: datetime, customer_ids=None) -> list[Event]:
    """Time-ordered events of the shop since ``since`` (only of ``customer_ids`` when given), for
    `simulate`-style replays."""
    events = []
    query = select(CustomerRow).where(CustomerRow.shop_id == shop_id)
    if customer_ids is not None:
        query = query.where(CustomerRow.customer_id.in_(list(customer_ids)))
    for crow in session.scalars(query):
        s, cid = crow.state, crow.customer_id
        signed_up = parse_time(s.get("signed_up_at"))
        if signed_up and signed_up >= since:
            events.append(Event(
                id=f"history:signup:{cid}", type="customer.created", shop=shop_id, customer_id=cid,
                occurred_at=signed_up,
                customer=Customer(id=cid, email=s.get("email"), first_name=s.get("first_name"),
                                  last_name=s.get("last_name"), accepts_marketing=s.get("accepts_marketing"),
                                  tags=tuple(s.get("tags", ())), locale=s.get("locale"), created_at=signed_up)))
        for o in s.get("orders", ()):
            at = parse_time(o["at"])
            if at < since or not o.get("paid"):
                continue
            total = Money.parse(o["total"], o.get("currency") or s.get("currency") or "USD")
            order = Order(id=o["id"], total=total, created_at=at, fully_refunded=bool(o.get("reported_refunded")))
            events.append(Event(id=f"history:paid:{o['id']}", type="order.paid", shop=shop_id, customer_id=cid,
                                occurred_at=at, order=order))
            for refund_id, amount in o.get("refunds", ()):
                events.append(Event(id=f"history:refund:{refund_id}", type="order.refunded", shop=shop_id,
                                    customer_id=cid, occurred_at=at,
                                    order=Order(id=o["id"], total=total, refunded=Money.parse(amount, total.currency)),
                                    data={"refund_id": refund_id}))
            if o.get("cancelled"):
                events.append(Event(id=f"history:cancel:{o['id']}", type="order.cancelled", shop=shop_id,
                                    customer_id=cid, occurred_at=at, order=order))
    return sorted(events, key=lambda e: (e.occurred_at, e.type != "customer.created"))


def stored_history(database_url: str, shop_id: str) -> list[Event]:
    """All of a shop's kept history (imported at install and since), for ``keepwell simulate --shop``."""
    from plugin.db import sessions

    with sessions(database_url)() as session:
        return shop_events(session, shop_id, datetime(1970, 1, 1, tzinfo=timezone.utc))

"""Folding a batch of imported events into customer states: one read and one write per table.

The engine's ``apply`` only: no ``decide``, so nothing imported is acted on. A state the batch
leaves as it was is not written, which is what makes a re-import change nothing (and cheap).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, select, update

from plugin.db import CustomerRow, EventSeenRow, OrderIndexRow, utcnow
from plugin.engine import apply, new_state
from plugin.engine.state import state_from_dict, state_to_dict
from plugin.events import Event

#: SQL parameters per IN list (SQLite's limit is far above; PostgreSQL has none that matters)
CHUNK = 500
#: Imported events this recent are also marked seen, so a webhook or reconciliation delivering
#: the same change afterwards finds it handled instead of acting on it.
RECENT = timedelta(days=2)


def _chunks(items: list, size: int = CHUNK):
    for i in range(0, len(items), size):
        yield items[i:i + size]


class Folder:
    """Collects a batch of one shop's imported events; ``flush`` folds them in one transaction."""

    def __init__(self, shop_id: str, referral_prefix: str, now: datetime):
        self.shop_id, self.prefix, self.now = shop_id, referral_prefix, now
        self.events: dict[str, list[Event]] = {}
        self.orders: dict[str, str] = {}  # order id -> customer id, of this batch
        self.size = 0

    def add(self, events: list[Event]) -> None:
        for e in events:
            self.events.setdefault(e.customer_id, []).append(e)
            if e.order is not None:
                self.orders.setdefault(e.order.id, e.customer_id)
            self.size += 1

    def customer_of_order(self, sessions, order_id: str) -> str | None:
        """The customer of an order folded in this batch or an earlier one."""
        found = self.orders.get(str(order_id))
        if found is None:
            with sessions() as session:
                idx = session.get(OrderIndexRow, (self.shop_id, str(order_id)))
                found = idx.customer_id if idx else None
        return found

    def flush(self, session) -> int:
        """Fold the batch into the stored states; returns how many states changed."""
        if not self.events:
            return 0
        changed = self._states(session)
        self._order_index(session)
        self._seen(session)
        self.events, self.orders, self.size = {}, {}, 0
        return changed

    def _states(self, session) -> int:
        stored = {}
        for ids in _chunks(list(self.events)):
            stored.update(session.execute(select(CustomerRow.customer_id, CustomerRow.state).where(
                CustomerRow.shop_id == self.shop_id, CustomerRow.customer_id.in_(ids))).all())
        inserts, updates = [], []
        at = utcnow()
        for cid, events in self.events.items():
            before = stored.get(cid)
            state = state_from_dict(before) if before is not None else new_state(self.shop_id, cid)
            for e in events:
                state = apply(state, e, self.prefix)
            after = state_to_dict(state)
            if before is None:
                inserts.append({"shop_id": self.shop_id, "customer_id": cid, "state": after, "updated_at": at})
            elif after != before:
                updates.append({"shop_id": self.shop_id, "customer_id": cid, "state": after, "updated_at": at})
        if inserts:
            session.execute(insert(CustomerRow), inserts)
        if updates:
            session.execute(update(CustomerRow), updates)
        return len(inserts) + len(updates)

    def _order_index(self, session) -> None:
        known = set()
        for ids in _chunks(list(self.orders)):
            known.update(session.scalars(select(OrderIndexRow.order_id).where(
                OrderIndexRow.shop_id == self.shop_id, OrderIndexRow.order_id.in_(ids))))
        rows = [{"shop_id": self.shop_id, "order_id": oid, "customer_id": cid}
                for oid, cid in self.orders.items() if oid not in known]
        if rows:
            session.execute(insert(OrderIndexRow), rows)

    def _seen(self, session) -> None:
        recent = {e.id for events in self.events.values() for e in events if e.occurred_at >= self.now - RECENT}
        if not recent:
            return
        known = set()
        for ids in _chunks(sorted(recent)):
            known.update(session.scalars(select(EventSeenRow.key).where(
                EventSeenRow.shop_id == self.shop_id, EventSeenRow.key.in_(ids))))
        rows = [{"shop_id": self.shop_id, "key": key} for key in sorted(recent - known)]
        if rows:
            session.execute(insert(EventSeenRow), rows)

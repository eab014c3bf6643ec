"""Folding a store's imported events into customer states, a batch per transaction.

The engine's ``apply`` only: no ``decide``, so nothing imported is acted on. Events are applied
as they come, so a batch holds customer states, never its events: the states of customers seen
for the first time are read a chunk at a time, and ``flush`` writes the states the batch changed
(with the order index and the events marked seen) in the caller's transaction. A state the import
leaves as it was is not written, which is what makes a re-import change nothing (and cheap).
States stay in memory between batches (up to ``KEEP``): a store's orders come in time order, not
by customer, so every batch touches most of a small store's customers.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, select, update

from plugin.db import CustomerRow, EventSeenRow, OrderIndexRow, utcnow
from plugin.engine import apply, new_state
from plugin.engine.state import CustomerState, state_from_dict, state_to_dict
from plugin.events import Event
from plugin.sms_consent.phones import state_key

#: SQL parameters per IN list (SQLite's limit is far above; PostgreSQL has none that matters)
CHUNK = 500
#: Customer states held in memory (5-10 KB each): a batch ends when it has touched this many,
#: and the states kept between batches are dropped beyond it
KEEP = 20_000
#: Imported events this recent are also marked seen, so a webhook or reconciliation delivering
#: the same change afterwards finds it handled instead of acting on it.
RECENT = timedelta(days=2)


def _chunks(items: list, size: int = CHUNK):
    for i in range(0, len(items), size):
        yield items[i:i + size]


class Folder:
    """One shop's imported events, applied to its customer states; ``flush`` writes a batch."""

    def __init__(self, sessions, shop_id: str, settings, now: datetime):
        # settings: the shop's rule set settings, with its referral key (referral codes in orders)
        self.sessions, self.shop_id, self.settings, self.now = sessions, shop_id, settings, now
        self.stored: dict[str, CustomerState | None] = {}  # customer id -> state as stored (None: none yet)
        self.folded: dict[str, CustomerState] = {}  # states this batch changed, not written yet
        self.unread: dict[str, list[Event]] = {}  # events of customers whose state is still to read
        self.orders: dict[str, str] = {}  # order id -> customer id, of this batch
        self.recent: set[str] = set()  # ids of this batch's events to mark seen
        self.size = 0  # events in this batch
        self.dropped = False  # whether states read or folded were dropped since (KEEP)

    def add(self, events: list[Event]) -> None:
        for e in events:
            cid = e.customer_id
            if cid in self.unread or cid not in self.stored:
                self.unread.setdefault(cid, []).append(e)
            else:
                self.folded[cid] = apply(self.folded.get(cid) or self.stored[cid] or new_state(self.shop_id, cid),
                                         e, self.settings)
            if e.order is not None:
                self.orders.setdefault(e.order.id, cid)
            if e.occurred_at >= self.now - RECENT:
                self.recent.add(e.id)
            self.size += 1
        if len(self.unread) >= CHUNK:
            with self.sessions() as session:
                self._read(session)

    @property
    def full(self) -> bool:
        """Whether the batch holds as many states as it may."""
        return len(self.folded) + len(self.unread) >= KEEP

    def states(self) -> list[CustomerState] | None:
        """Every state read or folded so far, when none was dropped."""
        return None if self.dropped else [s for s in self.stored.values() if s is not None]

    def customer_of_order(self, sessions, order_id: str) -> str | None:
        """The customer of an order folded in this batch or an earlier one."""
        found = self.orders.get(str(order_id))
        if found is None:
            with sessions() as session:
                idx = session.get(OrderIndexRow, (self.shop_id, str(order_id)))
                found = idx.customer_id if idx else None
        return found

    def flush(self, session) -> int:
        """Write the batch in ``session``'s transaction; returns how many states changed."""
        self._read(session)
        changed = self._write(session)
        self._order_index(session)
        self._seen(session)
        if len(self.stored) > KEEP:
            self.stored, self.dropped = {}, True
        self.stored.update(self.folded)
        self.folded, self.orders, self.recent, self.size = {}, {}, set(), 0
        return changed

    def _read(self, session) -> None:
        """Read the states of the customers waiting for theirs, and apply their events."""
        ids = list(self.unread)
        found = {}
        for chunk in _chunks(ids):
            found.update(session.execute(select(CustomerRow.customer_id, CustomerRow.state).where(
                CustomerRow.shop_id == self.shop_id, CustomerRow.customer_id.in_(chunk))).all())
        for cid in ids:
            before = state_from_dict(found[cid]) if cid in found else None
            state = before or new_state(self.shop_id, cid)
            for e in self.unread.pop(cid):
                state = apply(state, e, self.settings)
            self.stored[cid], self.folded[cid] = before, state

    def _write(self, session) -> int:
        at, written = utcnow(), 0
        for cids in _chunks(list(self.folded)):  # a chunk at a time: the rows are large
            inserts, updates = [], []
            for cid in cids:
                state, before = self.folded[cid], self.stored.get(cid)
                if before is not None and state == before:
                    continue
                row = {"shop_id": self.shop_id, "customer_id": cid, "state": state_to_dict(state), "updated_at": at}
                row["phone_key"] = state_key(row["state"])
                (inserts if before is None else updates).append(row)
            if inserts:
                session.execute(insert(CustomerRow), inserts)
            if updates:
                session.execute(update(CustomerRow), updates)
            written += len(inserts) + len(updates)
        return written

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
        recent = self.recent
        if not recent:
            return
        known = set()
        for ids in _chunks(sorted(recent)):
            known.update(session.scalars(select(EventSeenRow.key).where(
                EventSeenRow.shop_id == self.shop_id, EventSeenRow.key.in_(ids))))
        rows = [{"shop_id": self.shop_id, "key": key} for key in sorted(recent - known)]
        if rows:
            session.execute(insert(EventSeenRow), rows)

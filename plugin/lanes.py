"""Per-customer lanes: a busy shop's backlog split by customer, so several workers drain it at once.

Every webhook, timer and signal lands on the shop's backlog (plugin.handoff). While the shop
has one lane (a quiet shop), its drain processes that backlog itself, as one ordered queue.
When the backlog grows past ``LANE_SHARE`` entries per lane, the shop gets K lanes
(``wanted``: one per ``LANE_SHARE`` waiting entries, at most ``MAX_LANES``), and its drain
becomes a splitter: it moves entries, a few hundred at a time, to lane ``crc32(customer) % K``
(one Redis transaction: the lanes' pushes and the backlog's trim), and each lane has its own
drain job. One customer's entries all go to one lane, in order; different customers' lanes run
on different workers. A signal for another customer (a referral converting the referrer) is
an event on the shop's backlog, so it goes through that customer's lane.

K changes only while every lane and the drain's hands are empty (the splitter holds the shop's
lock, and it is the only one who fills lanes): no customer can have entries in two lanes. So a
shop going quiet falls back to one lane at the first moment its lanes are empty.

The splitter learns an entry's customer from the platform's own parser, with the store left
out (no product look-ups); a refund, which names only its order, finds the order's customer
among the orders the splitter already routed, then in the database. An entry whose customer
cannot be told that way (malformed, or a refund of an order Keepwell never saw) goes to lane 0,
where the lane's drain deals with it as the shop's drain would.
"""
from __future__ import annotations

import logging
import zlib
from dataclasses import replace

import connectors
from plugin import shape
from plugin.db import OrderIndexRow
from plugin.errors import KeepwellError
from plugin.handoff import DRAIN_TTL, Envelope

log = logging.getLogger("keepwell.worker")

#: Waiting backlog entries per lane (one batch each): a backlog of 2 x this gets 2 lanes, and so on.
LANE_SHARE = 50
#: Lanes per shop at most (more lanes than workers gain nothing).
MAX_LANES = 8
#: Entries the splitter moves per Redis transaction.
SPLIT = 500
#: The routed orders' customers are forgotten past this many (by then long in the database).
ORDERS_KEPT = 100_000


def wanted(waiting: int) -> int:
    """Lanes for a backlog of ``waiting`` entries."""
    return max(1, min(MAX_LANES, -(-waiting // LANE_SHARE)))


def lane_of(customer_id: str, lanes: int) -> int:
    return zlib.crc32(customer_id.encode()) % lanes if lanes > 1 else 0


def settle(rt, shop_id: str) -> int:
    """The shop's lane count for the next step: changed to ``wanted`` only while the lanes and the
    drain's hands are empty. Called under the shop's drain lock."""
    k = rt.handoff.keys(shop_id)
    backlog = rt.redis.llen(k.backlog)
    processing = rt.redis.llen(k.processing)
    _, lanes = rt.handoff.lengths(shop_id)
    current = len(lanes) or 1
    want = wanted(backlog)
    if want == current or processing or any(lanes):
        return current
    if want == 1:
        rt.redis.delete(k.lanes, k.lane_orders)
    else:
        rt.redis.set(k.lanes, want)
        log.info("shop %s: backlog of %d entries, now in %d lanes", shop_id, backlog, want)
    return want


class _Unknown(KeepwellError, LookupError):
    """An order the splitter cannot place."""


class _Router:
    def __init__(self, rt, shop, shop_id: str):
        self.rt, self.shop_id = rt, shop_id
        self.shop = replace(shop, api_url="") if shop is not None else None  # parse without store look-ups
        self.keys = rt.handoff.keys(shop_id)
        self.orders: dict[str, str] = {}  # routed by this split
        self._session = None

    def customer(self, raw: bytes) -> str | None:
        try:
            env = Envelope.decode(raw)
            payload = shape.loads(env.body)
            if env.platform == "keepwell":
                return str(payload["customer_id"])
            if self.shop is None:
                return None
            events = connectors.get(env.platform).parse(self.shop, env.topic, payload, self._customer_of_order)
        except Exception:  # the lane's drain meets it again and deals with it
            return None
        for e in events:
            if e.order is not None and e.customer_id:
                self.orders.setdefault(str(e.order.id), e.customer_id)
        return events[0].customer_id if events else None

    def _customer_of_order(self, order_id) -> str:
        oid = str(order_id)
        found = self.orders.get(oid) or self.rt.redis.hget(self.keys.lane_orders, oid)
        if found is None:
            if self._session is None:
                self._session = self.rt.sessions()
            idx = self._session.get(OrderIndexRow, (self.shop_id, oid))
            found = idx.customer_id if idx is not None else None
        if found is None:
            raise _Unknown(oid)
        return found.decode() if isinstance(found, bytes) else found

    def close(self):
        if self._session is not None:
            self._session.close()


def split(rt, shop_id: str, lanes: int) -> int:
    """Move up to SPLIT entries from the shop's backlog to their lanes; the number moved."""
    k = rt.handoff.keys(shop_id)
    raws = rt.redis.lrange(k.backlog, 0, SPLIT - 1)
    if not raws:
        return 0
    router = _Router(rt, rt.shop(shop_id), shop_id)
    try:
        routes: list[list[bytes]] = [[] for _ in range(lanes)]
        for raw in raws:
            cid = router.customer(raw)
            routes[lane_of(cid, lanes) if cid else 0].append(raw)
    finally:
        router.close()
    pipe = rt.redis.pipeline()  # MULTI: an entry is on the backlog or on its lane, never both or neither
    for n, items in enumerate(routes):
        if items:
            pipe.rpush(k.lane(n).backlog, *items)
    pipe.ltrim(k.backlog, len(raws), -1)
    if router.orders:
        pipe.hset(k.lane_orders, mapping=router.orders)
        pipe.expire(k.lane_orders, 24 * 3600)
    pipe.execute()
    if router.orders and rt.redis.hlen(k.lane_orders) > ORDERS_KEPT:
        rt.redis.delete(k.lane_orders)
    for n, items in enumerate(routes):
        if items and rt.redis.set(k.lane(n).draining, "1", nx=True, ex=DRAIN_TTL):
            rt.handoff.enqueue_lane(shop_id, n)
    return len(raws)


__all__ = ["LANE_SHARE", "MAX_LANES", "wanted", "lane_of", "settle", "split"]

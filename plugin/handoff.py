"""The durable hand-off from the web edge to the workers: a per-shop backlog in Redis.

One Redis round trip per webhook (a Lua script) dedupes the delivery, appends it to the shop's
backlog and says whether a drain job must be enqueued. One drain job per shop at a time then
works through the backlog in batches, so a worker is not capped by RQ's per-job bookkeeping.
Timers and signals enter through the same backlog, which serialises every change to a shop's
customer state without per-customer locks.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from redis import Redis
from rq import Queue, Retry

SEEN_TTL = 7 * 24 * 3600  # Shopify retries for 4 hours; a week leaves room for reconciliation
DRAIN_TTL = 300  # a crashed drain's flag expires; RQ retries the abandoned job meanwhile
RETRY = Retry(max=8, interval=[5, 15, 60, 300, 900, 1800, 3600, 7200])

_PUSH = """
if KEYS[1] ~= '' and redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) == false then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
if redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[3]) then return 2 end
return 1
"""


def job_id(*parts: str) -> str:
    """A stable RQ job id for these parts (ids are global in Redis: callers namespace them)."""
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Envelope:
    """One unit of work for a shop: a raw webhook body, or a canonical event of our own."""

    platform: str  # shopify | woocommerce | keepwell (timers, signals, reconciliation)
    topic: str
    key: str  # delivery key (dedupe), or the event id
    received_at: float
    body: str

    def encode(self) -> str:
        # A header line then the raw body: no re-escaping of the body on the request path.
        return f"{self.platform}\t{self.topic}\t{self.key}\t{self.received_at}\n{self.body}"

    @classmethod
    def decode(cls, raw: bytes | str) -> "Envelope":
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        head, _, body = text.partition("\n")
        platform, topic, key, received_at = head.split("\t")
        return cls(platform, topic, key, float(received_at), body)


def entry_id(raw: bytes | str) -> str:
    """A short stable name for a backlog entry that holds none of its data."""
    return hashlib.sha256(raw if isinstance(raw, bytes) else raw.encode()).hexdigest()[:16]


class Keys:
    def __init__(self, prefix: str, shop_id: str):
        base = f"{prefix}:{{{shop_id}}}"  # hash tag: one cluster slot per shop
        self.backlog = f"{base}:backlog"
        self.dead = f"{base}:backlog:dead"  # raw entries the worker gave up on, oldest first
        self.dead_reasons = f"{base}:backlog:dead:reasons"  # hash: entry_id(entry) -> why and when, JSON
        self.attempts = f"{base}:backlog:attempts"  # hash: envelope key -> failed tries so far
        self.processing = f"{base}:processing"
        self.draining = f"{base}:draining"
        self.seen = f"{base}:seen:"
        self.lanes = f"{base}:lanes"  # how many lanes the shop's backlog is split into (missing: one)
        self.lane_orders = f"{base}:lanes:orders"  # hash: order id -> customer id, of orders sent to a lane
        self.base = base

    def lane(self, n: int) -> "LaneKeys":
        return LaneKeys(f"{self.base}:lane{n}")


class LaneKeys:
    """One lane of a shop's backlog (plugin.lanes): its entries, the entries being processed, its drain's flag."""

    def __init__(self, base: str):
        self.backlog = f"{base}:backlog"
        self.processing = f"{base}:processing"
        self.draining = f"{base}:draining"


class Handoff:
    def __init__(self, redis: Redis, prefix: str = "keepwell"):
        self.redis = redis
        self.prefix = prefix
        self.queue = Queue(prefix, connection=redis)
        self._push = redis.register_script(_PUSH)

    def keys(self, shop_id: str) -> Keys:
        return Keys(self.prefix, shop_id)

    def push(self, shop_id: str, envelope: Envelope, dedupe: bool = True) -> bool:
        """Queue ``envelope`` for the shop; False when this delivery was already seen."""
        k = self.keys(shop_id)
        status = self._push(keys=[k.seen + envelope.key if dedupe else "", k.backlog, k.draining],
                            args=[envelope.encode(), SEEN_TTL, DRAIN_TTL])
        if status == 2:
            self.enqueue_drain(shop_id)
        return status != 0

    def push_event(self, shop_id: str, event_dict: dict, attempt: int = 0) -> bool:
        """Queue a canonical event (timer, signal, reconciliation), deduped by its id (and the
        attempt of a timer that was armed again, which must get through)."""
        key = f"event:{event_dict['id']}" + (f":{attempt}" if attempt else "")
        env = Envelope("keepwell", "event", key, time.time(), json.dumps(event_dict))
        return self.push(shop_id, env)

    def dead_letter(self, shop_id: str, raw: bytes | str, reason: str) -> None:
        """Set a backlog entry aside for good, with the reason, for `keepwell dead-letters`."""
        k = self.keys(shop_id)
        pipe = self.redis.pipeline()
        pipe.rpush(k.dead, raw)
        pipe.hset(k.dead_reasons, entry_id(raw), json.dumps({"reason": reason[:2000], "at": time.time()}))
        pipe.execute()

    def enqueue_drain(self, shop_id: str):
        self.queue.enqueue("plugin.jobs.drain", shop_id, retry=RETRY, result_ttl=60, failure_ttl=7 * 24 * 3600,
                           description=f"drain {shop_id}")

    def enqueue_lane(self, shop_id: str, lane: int):
        self.queue.enqueue("plugin.jobs.drain_lane", shop_id, lane, retry=RETRY, result_ttl=60,
                           failure_ttl=7 * 24 * 3600, description=f"drain {shop_id} lane {lane}")

    def lane_count(self, shop_id: str) -> int:
        return int(self.redis.get(self.keys(shop_id).lanes) or 1)

    def lengths(self, shop_id: str) -> tuple[int, list[int]]:
        """(entries waiting in the shop's backlog or its drain, entries in each lane)."""
        k = self.keys(shop_id)
        lanes = self.lane_count(shop_id)
        pipe = self.redis.pipeline(transaction=False)
        for key in (k.backlog, k.processing):
            pipe.llen(key)
        for n in range(lanes if lanes > 1 else 0):
            pipe.llen(k.lane(n).backlog)
            pipe.llen(k.lane(n).processing)
        got = pipe.execute()
        return got[0] + got[1], [got[i] + got[i + 1] for i in range(2, len(got), 2)]

    def pending(self, shop_id: str) -> int:
        """Entries of the shop not yet processed: its backlog, its lanes, the drains' hands."""
        shop, lanes = self.lengths(shop_id)
        return shop + sum(lanes)

    def ensure_drain(self, shop_id: str) -> bool:
        """Enqueue a drain for the shop's backlog, and for each of its lanes, that has entries and
        no drain running (a lost drain job); True if one was enqueued."""
        k = self.keys(shop_id)
        shop, lanes = self.lengths(shop_id)
        enqueued = False
        if shop and self.redis.set(k.draining, "1", nx=True, ex=DRAIN_TTL):
            self.enqueue_drain(shop_id)
            enqueued = True
        for n, waiting in enumerate(lanes):
            if waiting and self.redis.set(k.lane(n).draining, "1", nx=True, ex=DRAIN_TTL):
                self.enqueue_lane(shop_id, n)
                enqueued = True
        return enqueued

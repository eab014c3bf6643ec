"""A shop's effect slots: how many of its touches may be talking to its store at once.

A counting semaphore in Redis, shared by every worker process: a sorted set of leases (token ->
expiry, on Redis's own clock). Taking a slot first drops expired leases, so a worker that died
holding one gives it back after ``LEASE_S``. The number of slots is the platform's
(``connector.effect_slots``: Shopify's calls are paced by its cost bucket besides, WooCommerce's
server gets a few at a time).
"""
from __future__ import annotations

import time
import uuid

#: A lease outlives any one touch: up to three store calls of (5 s connect + 30 s read) each, and SMTP.
LEASE_S = 300
DEFAULT_SLOTS = 4

# KEYS[1] leases; ARGV: token, slots, lease seconds. 1 when the slot was taken.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


def slots_of(connector) -> int:
    """How many touches of one shop of this platform may run at once."""
    return max(1, int(getattr(connector, "effect_slots", DEFAULT_SLOTS)))


class Slots:
    """The slots of one shop: ``take()`` a token (or None when all are taken), ``give(token)`` it back."""

    def __init__(self, redis, key: str, size: int):
        self.redis, self.key, self.size = redis, key, size

    def take(self) -> str | None:
        token = uuid.uuid4().hex
        return token if int(self.redis.eval(_TAKE, 1, self.key, token, self.size, LEASE_S)) else None

    def wait(self, timeout_s: float, every_s: float = 0.05) -> str | None:
        """A slot within ``timeout_s`` seconds, or None."""
        deadline = time.monotonic() + timeout_s
        while (token := self.take()) is None and time.monotonic() < deadline:
            time.sleep(every_s)
        return token

    def give(self, token: str) -> None:
        self.redis.zrem(self.key, token)

    def taken(self) -> int:
        return int(self.redis.zcount(self.key, time.time(), "+inf"))

"""Caches for lookups the store answers the same way for minutes at a time (a product's
collections, a collection's id).

``SharedCache`` keeps its entries in Redis once the process has a Runtime (``bind``), under
per-shop keys with the same time to live: a shop's jobs run in several worker processes (more
than one ``keepwell worker``, several machines, or RQ's forking worker with a fresh process per
job), and a cache held in one process's memory would miss for the others. Without Redis (a unit
test, a replay) it falls back to the per-process ``TTLCache``.
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import Callable, Hashable

#: What ``get`` answers for a key it does not hold (None is a value worth caching).
MISSING = object()

_bound: dict = {"redis": None, "prefix": ""}


def bind(redis, prefix: str = "keepwell") -> None:
    """Keep every ``SharedCache`` in ``redis`` under ``prefix`` (None: back to process memory)."""
    _bound["redis"], _bound["prefix"] = redis, prefix


def redis():
    """The Redis this process's shared state lives in, or None (no Runtime yet)."""
    return _bound["redis"]


def prefix() -> str:
    """The key prefix (the queue name) for that Redis."""
    return _bound["prefix"]


class TTLCache:
    """Key -> value for ``ttl`` seconds, at most ``size`` entries (the least recently used go first)."""

    def __init__(self, ttl: float, size: int, clock: Callable[[], float] = time.monotonic):
        self.ttl, self.size, self.clock = ttl, size, clock
        self._items: OrderedDict[Hashable, tuple[float, object]] = OrderedDict()
        self._lock = threading.Lock()  # a worker may run jobs in threads

    def get(self, key: Hashable):
        """The value stored under ``key`` if it has not expired, else ``MISSING``."""
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                return MISSING
            if entry[0] <= self.clock():
                del self._items[key]
                return MISSING
            self._items.move_to_end(key)
            return entry[1]

    def put(self, key: Hashable, value) -> None:
        with self._lock:
            self._items[key] = (self.clock() + self.ttl, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class SharedCache(TTLCache):
    """A ``TTLCache`` of ``(shop id, item)`` keys that lives in Redis when the process is bound to one.

    Values go through ``dump``/``load`` (JSON by default); a Redis key reads
    ``<prefix>:{<shop id>}:cache:<name>:<item>`` and expires after ``ttl`` seconds.
    """

    def __init__(self, name: str, ttl: float, size: int, dump: Callable = lambda v: v, load: Callable = lambda v: v):
        super().__init__(ttl, size)
        self.name, self.dump, self.load = name, dump, load

    def _key(self, key: tuple[str, str]) -> str:
        shop, item = key
        return f"{_bound['prefix']}:{{{shop}}}:cache:{self.name}:{item}"

    def get_many(self, keys: list[tuple[str, str]]) -> list:
        """The value of each key, or ``MISSING``: one round trip to Redis."""
        redis = _bound["redis"]
        if redis is None:
            return [self.get(k) for k in keys]
        if not keys:
            return []
        return [MISSING if raw is None else self.load(json.loads(raw)) for raw in redis.mget([self._key(k) for k in keys])]

    def get(self, key: tuple[str, str]):
        if _bound["redis"] is None:
            return super().get(key)
        return self.get_many([key])[0]

    def put_many(self, items: dict) -> None:
        redis = _bound["redis"]
        if redis is None:
            for k, v in items.items():
                super().put(k, v)
            return
        pipe = redis.pipeline(transaction=False)
        for k, v in items.items():
            pipe.set(self._key(k), json.dumps(self.dump(v)), ex=max(1, round(self.ttl)))
        pipe.execute()

    def put(self, key: tuple[str, str], value) -> None:
        self.put_many({key: value})

    def clear(self) -> None:
        super().clear()
        redis = _bound["redis"]
        if redis is not None:
            keys = list(redis.scan_iter(match=f"{_bound['prefix']}:*:cache:{self.name}:*", count=1000))
            if keys:
                redis.delete(*keys)

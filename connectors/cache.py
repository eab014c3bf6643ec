"""A small per-process cache with a time to live and a size bound, for lookups the store answers
the same way for minutes at a time (a product's collections, a collection's id)."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Hashable

#: What ``get`` answers for a key it does not hold (None is a value worth caching).
MISSING = object()


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

"""What the simulator keeps per customer, kept small: a million customers' replay fits in ~2 GB.

Two containers, each a drop-in for the dict or set the simulator used before:

- ``PackedStates``: customer states by (shop, customer id). The customers seen most recently stay
  as objects; the others are packed (pickled, then compressed against the first state packed, which
  holds what all states' pickles share: ~0.3 KB instead of ~1.5 KB of objects) and
  unpacked when their next event comes, months later in a store's life. A state comes back equal
  field for field, so decisions are the same.
- ``Hashes``: a set of 64-bit hashes, each with a one-byte value, in two flat arrays (open
  addressing, linear probing, at most 2/3 full): ~20 bytes an entry where a set or dict of
  Python ints takes ~70-100. The simulator's seen events, its ledger and timer keys (already
  kept as hashes) and each rule's customers reached sit in these.
"""
from __future__ import annotations

import pickle
import zlib
from array import array
from collections import OrderedDict
from dataclasses import fields
from types import MappingProxyType
from typing import Any, Iterator

from plugin.engine.state import CustomerState

_FIELDS = tuple(f.name for f in fields(CustomerState))[2:]  # shop and customer id are the key
#: read-only views (orders, history, occasions, ...): packed as dicts
_MAPPINGS = frozenset(f.name for f in fields(CustomerState) if "MappingProxyType" in str(f.type))
_PACKED_AS_DICT = tuple(name in _MAPPINGS for name in _FIELDS)


def _pickled(state: CustomerState) -> bytes:
    values = [getattr(state, name) for name in _FIELDS]
    return pickle.dumps(tuple(dict(v) if as_dict else v for v, as_dict in zip(values, _PACKED_AS_DICT)),
                        pickle.HIGHEST_PROTOCOL)


def pack(state: CustomerState, zdict: bytes) -> bytes:
    """``state`` pickled and compressed against ``zdict`` (another state's pickle: what all share)."""
    z = zlib.compressobj(1, zdict=zdict)
    return z.compress(_pickled(state)) + z.flush()


def unpack(shop: str, customer_id: str, blob: bytes, zdict: bytes) -> CustomerState:
    z = zlib.decompressobj(zdict=zdict)
    values = pickle.loads(z.decompress(blob) + z.flush())
    return CustomerState(shop, customer_id, **{name: MappingProxyType(v) if as_dict else v
                                              for name, v, as_dict in zip(_FIELDS, values, _PACKED_AS_DICT)})


class PackedStates:
    """Customer states by (shop, customer id); the ``hot`` most recently used ones unpacked."""

    def __init__(self, hot: int = 20_000):
        self._hot: OrderedDict[tuple[str, str], CustomerState] = OrderedDict()
        self._packed: dict[str, dict[str, bytes]] = {}  # shop -> customer id -> packed state
        self._limit = hot
        self._zdict = b""  # the first state packed, pickled: the dictionary every state is compressed against

    def get(self, key: tuple[str, str], default: Any = None) -> Any:
        hot = self._hot
        state = hot.get(key)
        if state is not None:
            hot.move_to_end(key)
            return state
        shop, customer_id = key
        blob = self._packed.get(shop, {}).pop(customer_id, None)
        if blob is None:
            return default
        state = hot[key] = unpack(shop, customer_id, blob, self._zdict)
        self._evict()
        return state

    def __setitem__(self, key: tuple[str, str], state: CustomerState) -> None:
        hot = self._hot
        if key not in hot:
            self._packed.get(key[0], {}).pop(key[1], None)
        hot[key] = state
        hot.move_to_end(key)
        self._evict()

    def _evict(self) -> None:
        hot = self._hot
        while len(hot) > self._limit:
            (shop, customer_id), state = hot.popitem(last=False)
            if not self._zdict:
                self._zdict = _pickled(state)
            self._packed.setdefault(shop, {})[customer_id] = pack(state, self._zdict)

    def __len__(self) -> int:
        return len(self._hot) + sum(len(c) for c in self._packed.values())

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """Every (shop, customer id) known, without unpacking their states."""
        yield from list(self._hot)
        for shop, packed in self._packed.items():
            yield from [(shop, customer_id) for customer_id in packed]

    def items(self) -> Iterator[tuple[tuple[str, str], CustomerState]]:
        yield from list(self._hot.items())
        for shop, packed in self._packed.items():
            for customer_id, blob in packed.items():
                yield (shop, customer_id), unpack(shop, customer_id, blob, self._zdict)


class Hashes:
    """A map from 64-bit hashes to a value 1-255 (0: absent). Entries are never removed."""

    __slots__ = ("_keys", "_values", "_mask", "_used")

    def __init__(self, size: int = 64):
        self._keys = array("q", bytes(8 * size))  # 0: an empty slot
        self._values = bytearray(size)
        self._mask = size - 1
        self._used = 0

    def _slot(self, h: int) -> int:
        keys, mask = self._keys, self._mask
        i = h & mask
        while True:
            k = keys[i]
            if k == h or k == 0:
                return i
            i = (i + 1) & mask

    def get(self, h: int) -> int:
        return self._values[self._slot(h or 1)]

    def __contains__(self, h: int) -> bool:
        return self.get(h) != 0

    def put(self, h: int, value: int = 1) -> None:
        h = h or 1
        i = self._slot(h)
        if self._keys[i] == 0:
            self._keys[i] = h
            self._used += 1
        self._values[i] = value
        if self._used * 3 > len(self._values) * 2:
            self._grow()

    def _grow(self) -> None:
        old_keys, old_values = self._keys, self._values
        size = len(old_values) * 2
        self._keys, self._values, self._mask = array("q", bytes(8 * size)), bytearray(size), size - 1
        keys, values = self._keys, self._values
        for k, v in zip(old_keys, old_values):
            if k != 0:
                i = self._slot(k)
                keys[i], values[i] = k, v

    def __len__(self) -> int:
        return self._used

    def keys(self) -> Iterator[int]:
        return (k for k in self._keys if k != 0)

    def common(self, other: "Hashes") -> int:
        """How many keys both hold."""
        small, big = (self, other) if len(self) <= len(other) else (other, self)
        mine = set(small.keys())  # one table at a time as a set: a few dozen MB at a million keys
        return sum(1 for k in big.keys() if k in mine)

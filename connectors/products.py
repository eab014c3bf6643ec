"""Order line items enriched with their products' collections and tags, which neither
platform's order webhooks carry; each connector supplies only how to fetch a batch.

- A per-process cache keyed by (Keepwell shop id, product id) holds each product for ``TTL_S``
  seconds: a busy shop costs one lookup per product per TTL, not one per order.
- A passing failure (429, 5xx, throttling, timeouts) leaves this order without enrichment and
  the products uncached, so the next order asks again: an outage of the products API must not
  hold up the shop's backlog. A final one (no read access, a revoked token) is logged and the
  products are remembered as bare for the TTL, since the same call would fail again.
- A shop without an API URL (a raw export replayed by ``simulate``) is never asked.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Callable, Iterable

from connectors.base import Shop
from connectors.cache import MISSING, TTLCache
from plugin.errors import StoreError
from plugin.events import Event, LineItem

TTL_S = 600.0
CACHE_SIZE = 20_000


@dataclass(frozen=True, slots=True)
class ProductGroups:
    """What a line item learns from its product."""

    collections: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


BARE = ProductGroups()


class ProductLookup:
    """Fetches (``fetch(shop, product_ids) -> {id: ProductGroups}``, at most ``batch`` ids a call)
    behind the shared cache and failure policy."""

    def __init__(self, fetch: Callable[[Shop, list[str]], dict[str, ProductGroups]], batch: int,
                 log: logging.Logger, known: Callable[[str], bool] = bool):
        self.fetch, self.batch, self.log, self.known = fetch, batch, log, known
        self.cache = TTLCache(TTL_S, CACHE_SIZE)

    def enrich(self, shop: Shop, events: list[Event]) -> list[Event]:
        """``events`` with their orders' line items carrying product collections and tags."""
        if not shop.api_url:
            return events
        wanted = {li.product_id for e in events if e.order for li in e.order.line_items if self.known(li.product_id)}
        if not wanted:
            return events
        groups = self.groups(shop, wanted)
        return [e if not e.order or not e.order.line_items else
                replace(e, order=replace(e.order, line_items=tuple(_with(li, groups) for li in e.order.line_items)))
                for e in events]

    def groups(self, shop: Shop, product_ids: Iterable[str]) -> dict[str, ProductGroups]:
        """Collections and tags of each product, from the cache or one fetch per ``batch`` products."""
        found: dict[str, ProductGroups] = {}
        missing = []
        for pid in sorted(set(product_ids), key=lambda p: (len(p), p)):
            cached = self.cache.get((shop.id, pid))
            if cached is MISSING:
                missing.append(pid)
            else:
                found[pid] = cached
        for start in range(0, len(missing), self.batch):
            chunk = missing[start:start + self.batch]
            try:
                fetched = self.fetch(shop, chunk)
            except StoreError as exc:
                bare = {pid: BARE for pid in chunk}
                if exc.retryable:  # skip, do not remember: the next order asks again
                    self.log.warning("shop %s: product collections and tags unavailable for now (%s); "
                                     "this order goes on without them", shop.id, exc.message)
                    found.update(bare)
                    continue
                self.log.warning("shop %s: product collections and tags unavailable (%s: %s); orders go on "
                                 "without them", shop.id, exc.code, exc.message)
                fetched = bare
            for pid, g in fetched.items():
                self.cache.put((shop.id, pid), g)
            found.update(fetched)
        return found


def _with(li: LineItem, groups: dict[str, ProductGroups]) -> LineItem:
    g = groups.get(li.product_id)
    if g is None or g == BARE:
        return li
    return replace(li, collections=tuple(dict.fromkeys(li.collections + g.collections)),
                   product_tags=tuple(dict.fromkeys(li.product_tags + g.tags)))

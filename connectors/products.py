"""Order line items enriched with their products' collections and tags, which neither
platform's order webhooks carry; each connector supplies only how to fetch a batch.

- A cache shared by every worker process (``connectors.cache.SharedCache``: Redis, per-shop keys)
  holds each product for ``TTL_S`` seconds: a busy shop costs one lookup per product per TTL, not
  one per order, however many worker processes it runs in (several ``keepwell worker``
  processes or machines, or RQ's forking worker, which runs each job in a fresh process).
- A passing failure (429, 5xx, throttling, timeouts) is raised: the worker delays the order
  and retries it with the store's suggested wait, because an order decided without its
  collections would miss its collection rules for good. Only a final failure (no read access,
  a revoked token, or passing failures that outlasted the worker's delays, see
  ``fallback_allowed``) lets the order go on without enrichment; such an order says so in
  ``Order.products_unavailable``, which ``keepwell explain`` shows. A final failure is remembered
  for the TTL, since the same call would fail again.
- A shop without an API URL (a raw export replayed by ``simulate``) is never asked.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator

from connectors.base import Shop
from connectors.cache import MISSING, SharedCache
from plugin.errors import StoreError
from plugin.events import Event, LineItem

TTL_S = 600.0
CACHE_SIZE = 20_000

_FALLBACK = ContextVar("keepwell_products_fallback", default=False)


@contextmanager
def fallback_allowed() -> Iterator[None]:
    """Within this block a passing failure no longer delays the order: it goes on without
    enrichment, marked (the worker's last try after its delays ran out)."""
    token = _FALLBACK.set(True)
    try:
        yield
    finally:
        _FALLBACK.reset(token)


@dataclass(frozen=True, slots=True)
class ProductGroups:
    """What a line item learns from its product (``unavailable``: why the store could not say)."""

    collections: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    unavailable: str | None = None


BARE = ProductGroups()


def _dump(g: ProductGroups) -> list:
    return [list(g.collections), list(g.tags), g.unavailable]


def _load(v: list) -> ProductGroups:
    return ProductGroups(tuple(v[0]), tuple(v[1]), v[2])


class ProductLookup:
    """Fetches (``fetch(shop, product_ids) -> {id: ProductGroups}``, at most ``batch`` ids a call)
    behind the shared cache and failure policy."""

    def __init__(self, fetch: Callable[[Shop, list[str]], dict[str, ProductGroups]], batch: int,
                 log: logging.Logger, known: Callable[[str], bool] = bool, name: str = "products"):
        self.fetch, self.batch, self.log, self.known = fetch, batch, log, known
        self.cache = SharedCache(name, TTL_S, CACHE_SIZE, _dump, _load)

    def enrich(self, shop: Shop, events: list[Event]) -> list[Event]:
        """``events`` with their orders' line items carrying product collections and tags."""
        if not shop.api_url:
            return events
        wanted = {li.product_id for e in events if e.order for li in e.order.line_items if self.known(li.product_id)}
        if not wanted:
            return events
        groups = self.groups(shop, wanted)
        out = []
        for e in events:
            if not e.order or not e.order.line_items:
                out.append(e)
                continue
            reasons = [groups[li.product_id].unavailable for li in e.order.line_items
                       if li.product_id in groups and groups[li.product_id].unavailable]
            order = replace(e.order, line_items=tuple(_with(li, groups) for li in e.order.line_items),
                            products_unavailable=reasons[0] if reasons else None)
            out.append(replace(e, order=order))
        return out

    def groups(self, shop: Shop, product_ids: Iterable[str]) -> dict[str, ProductGroups]:
        """Collections and tags of each product, from the cache or one fetch per ``batch`` products;
        StoreError (retryable) when the store asks to be called again later."""
        ids = sorted(set(product_ids), key=lambda p: (len(p), p))
        cached = self.cache.get_many([(shop.id, pid) for pid in ids])
        found = {pid: g for pid, g in zip(ids, cached) if g is not MISSING}
        missing = [pid for pid, g in zip(ids, cached) if g is MISSING]
        for start in range(0, len(missing), self.batch):
            chunk = missing[start:start + self.batch]
            try:
                fetched = self.fetch(shop, chunk)
            except StoreError as exc:
                if exc.retryable and not _FALLBACK.get():
                    raise  # the worker delays the order and asks again
                reason = f"{exc.code}: {exc.message}"
                self.log.warning("shop %s: product collections and tags unavailable (%s); orders go on without them",
                                 shop.id, reason)
                unavailable = {pid: ProductGroups(unavailable=reason) for pid in chunk}
                if not exc.retryable:  # the same call would fail again
                    self.cache.put_many({(shop.id, pid): g for pid, g in unavailable.items()})
                found.update(unavailable)
                continue
            self.cache.put_many({(shop.id, pid): g for pid, g in fetched.items()})
            found.update(fetched)
        return found


def _with(li: LineItem, groups: dict[str, ProductGroups]) -> LineItem:
    g = groups.get(li.product_id)
    if g is None or (not g.collections and not g.tags):
        return li
    return replace(li, collections=tuple(dict.fromkeys(li.collections + g.collections)),
                   product_tags=tuple(dict.fromkeys(li.product_tags + g.tags)))

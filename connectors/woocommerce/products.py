"""Order line items enriched with their products' categories and tags, which WooCommerce's order
webhooks do not carry.

- ``LineItem.collections`` holds each product category's **slug and id** (``"coffee"`` and
  ``"15"``), so a rule may name a category either way: ``order.collections: {contains: coffee}``
  or ``{contains: "15"}``. Only the categories the product is assigned to count, not their parents.
- ``LineItem.product_tags`` holds the slugs of the product's tags.
- One ``GET /products?include=...`` per order asks for the products the cache does not hold (more
  than ``PER_PAGE`` of them take one request per ``PER_PAGE``).
- The cache is per process, keyed by (Keepwell shop id, product id), for ``TTL_S`` seconds: a busy
  shop costs one lookup per product per TTL, not one per order. A product the store no longer
  lists is remembered as having no categories or tags; line items of deleted products
  (``product_id`` 0) are not asked about.
- A passing failure (408/425/429, 5xx, timeouts) leaves this order without enrichment and the
  products uncached, so the next order asks again: an outage of the products API must not hold
  up the shop's backlog. A final one (keys without read access, a store that refuses the route) is logged and the order
  goes on without enrichment, its products remembered as bare for the TTL: losing an order is
  worse than losing its categories, and the same call would fail again.
- A shop without an API URL (a raw export replayed by ``simulate``) is never asked.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Iterable

from connectors.base import Shop
from connectors.woocommerce import client
from connectors.cache import MISSING, TTLCache
from plugin.errors import StoreError
from plugin.events import Event, LineItem

log = logging.getLogger("keepwell.connectors.woocommerce")

TTL_S = 600.0
CACHE_SIZE = 20_000
PER_PAGE = client.PER_PAGE


@dataclass(frozen=True, slots=True)
class ProductGroups:
    """What a line item learns from its product."""

    collections: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


BARE = ProductGroups()
CACHE = TTLCache(TTL_S, CACHE_SIZE)


def enrich(shop: Shop, events: list[Event]) -> list[Event]:
    """``events`` with their orders' line items carrying product categories and tags."""
    if not shop.api_url:
        return events
    wanted = {li.product_id for e in events if e.order for li in e.order.line_items if _known(li.product_id)}
    if not wanted:
        return events
    groups = product_groups(shop, wanted)
    return [e if not e.order or not e.order.line_items else
            replace(e, order=replace(e.order, line_items=tuple(_with(li, groups) for li in e.order.line_items)))
            for e in events]


def product_groups(shop: Shop, product_ids: Iterable[str]) -> dict[str, ProductGroups]:
    """Categories and tags of each product, from the cache or one request per PER_PAGE products."""
    found: dict[str, ProductGroups] = {}
    missing = []
    for pid in sorted(set(product_ids), key=lambda p: (len(p), p)):
        cached = CACHE.get((shop.id, pid))
        if cached is MISSING:
            missing.append(pid)
        else:
            found[pid] = cached
    for start in range(0, len(missing), PER_PAGE):
        chunk = missing[start:start + PER_PAGE]
        try:
            fetched = _fetch(shop, chunk)
        except StoreError as exc:
            if exc.retryable:  # skip, do not remember: the next order asks again
                log.warning("shop %s: product collections and tags unavailable for now (%s); this order goes on without them",
                            shop.id, exc.message)
                found.update({pid: BARE for pid in chunk})
                continue
            log.warning("shop %s: product categories and tags unavailable (%s); orders go on without them",
                        shop.id, exc.message)
            fetched = {pid: BARE for pid in chunk}
        for pid, g in fetched.items():
            CACHE.put((shop.id, pid), g)
        found.update(fetched)
    return found


def _fetch(shop: Shop, product_ids: list[str]) -> dict[str, ProductGroups]:
    items = client.call(shop, "GET", "products", params={"include": ",".join(product_ids), "per_page": PER_PAGE})
    if not isinstance(items, list):
        raise StoreError(f"WooCommerce GET products: expected a list, got {type(items).__name__}",
                         retryable=False, code="keepwell_unexpected_response")
    fetched = {pid: BARE for pid in product_ids}  # a product deleted since is not listed
    for p in items:
        if isinstance(p, dict) and str(p.get("id", "")) in fetched:
            fetched[str(p["id"])] = _groups(p)
    return fetched


def _groups(product: dict) -> ProductGroups:
    collections = []
    for c in _terms(product, "categories"):
        if c.get("slug"):
            collections.append(str(c["slug"]))
        if c.get("id") not in (None, ""):
            collections.append(str(c["id"]))
    tags = [str(t["slug"]) for t in _terms(product, "tags") if t.get("slug")]
    return ProductGroups(collections=tuple(dict.fromkeys(collections)), tags=tuple(dict.fromkeys(tags)))


def _terms(product: dict, name: str) -> list[dict]:
    return [t for t in product.get(name) or () if isinstance(t, dict)]


def _known(product_id: str) -> bool:
    return product_id.isdigit() and product_id != "0"  # 0: the product was deleted since the order


def _with(li: LineItem, groups: dict[str, ProductGroups]) -> LineItem:
    g = groups.get(li.product_id)
    if g is None or g == BARE:
        return li
    return replace(li, collections=tuple(dict.fromkeys(li.collections + g.collections)),
                   product_tags=tuple(dict.fromkeys(li.product_tags + g.tags)))

"""Order line items enriched with their products' collections and tags, which Shopify's order
webhooks do not carry.

- ``LineItem.collections`` holds each collection's **handle and numeric id** (``"coffee"`` and
  ``"841564295"``), so a rule may name a collection either way: ``order.collections: {contains:
  coffee}`` or ``{contains: "841564295"}``. Only a product's first ``MAX_COLLECTIONS`` collections
  are read.
- ``LineItem.product_tags`` holds the product's tags as the merchant wrote them (case kept).
- One ``nodes`` query per order asks for the products the cache does not hold (an order with more
  than ``BATCH`` of them takes one query per ``BATCH``, to stay under the 1000-point query cost).
- The cache is per process, keyed by (Keepwell shop id, product id), for ``TTL_S`` seconds: a busy
  shop costs one lookup per product per TTL, not one per order. A deleted product (``null`` node)
  is remembered as having no collections or tags.
- A passing failure (429, 5xx, THROTTLED, timeouts) leaves this order without enrichment and the products uncached, so the
  next order asks again: an outage of the products API must not hold up the shop's backlog.
  A final one (a missing ``read_products`` scope, a revoked token) is logged and the order goes on
  without enrichment, its products remembered as bare for the TTL: losing an order is worse than
  losing its collections, and the same call would fail again.
- A shop without an API URL (a raw export replayed by ``simulate``) is never asked.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Iterable

from connectors.base import Shop
from connectors.shopify import api
from connectors.cache import MISSING, TTLCache
from plugin.errors import StoreError
from plugin.events import Event, LineItem

log = logging.getLogger("keepwell.connectors.shopify")

TTL_S = 600.0
CACHE_SIZE = 20_000
#: Products per query: each costs 1 + (2 + MAX_COLLECTIONS) points, so 25 stay near 700 of 1000.
BATCH = 25
MAX_COLLECTIONS = 25

PRODUCT_GROUPS_QUERY = f"""
query KeepwellProductGroups($ids: [ID!]!) {{
  nodes(ids: $ids) {{
    ... on Product {{
      id
      tags
      collections(first: {MAX_COLLECTIONS}) {{ nodes {{ id handle }} }}
    }}
  }}
}}
"""


@dataclass(frozen=True, slots=True)
class ProductGroups:
    """What a line item learns from its product."""

    collections: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


BARE = ProductGroups()
CACHE = TTLCache(TTL_S, CACHE_SIZE)


def enrich(shop: Shop, events: list[Event]) -> list[Event]:
    """``events`` with their orders' line items carrying product collections and tags."""
    if not shop.api_url:
        return events
    wanted = {li.product_id for e in events if e.order for li in e.order.line_items if li.product_id}
    if not wanted:
        return events
    groups = product_groups(shop, wanted)
    return [e if not e.order or not e.order.line_items else
            replace(e, order=replace(e.order, line_items=tuple(_with(li, groups) for li in e.order.line_items)))
            for e in events]


def product_groups(shop: Shop, product_ids: Iterable[str]) -> dict[str, ProductGroups]:
    """Collections and tags of each product (numeric ids), from the cache or one query per BATCH."""
    found: dict[str, ProductGroups] = {}
    missing = []
    for pid in sorted(set(product_ids)):
        cached = CACHE.get((shop.id, pid))
        if cached is MISSING:
            missing.append(pid)
        else:
            found[pid] = cached
    for start in range(0, len(missing), BATCH):
        chunk = missing[start:start + BATCH]
        try:
            fetched = _fetch(shop, chunk)
        except StoreError as exc:
            if exc.retryable:  # skip, do not remember: the next order asks again
                log.warning("shop %s: product collections and tags unavailable for now (%s); this order goes on without them",
                            shop.id, exc.message)
                found.update({pid: BARE for pid in chunk})
                continue
            log.warning("shop %s: product collections and tags unavailable (%s: %s); orders go on without them",
                        shop.id, exc.code, exc.message)
            fetched = {pid: BARE for pid in chunk}
        for pid, g in fetched.items():
            CACHE.put((shop.id, pid), g)
        found.update(fetched)
    return found


def _fetch(shop: Shop, product_ids: list[str]) -> dict[str, ProductGroups]:
    data = api.execute(shop, PRODUCT_GROUPS_QUERY, {"ids": [api.gid("Product", p) for p in product_ids]})
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        raise StoreError("Shopify answered the product query without a list of nodes", retryable=False,
                         code="BAD_RESPONSE")
    fetched = {pid: BARE for pid in product_ids}  # a deleted product answers null
    for node in nodes:
        if isinstance(node, dict) and node.get("id"):
            fetched[api.numeric_id(node["id"])] = _groups(node)
    return fetched


def _groups(node: dict) -> ProductGroups:
    collections = []
    for c in (node.get("collections") or {}).get("nodes") or ():
        if c.get("handle"):
            collections.append(str(c["handle"]))
        if c.get("id"):
            collections.append(api.numeric_id(c["id"]))
    tags = (str(t).strip() for t in node.get("tags") or ())
    return ProductGroups(collections=tuple(dict.fromkeys(collections)), tags=tuple(dict.fromkeys(t for t in tags if t)))


def _with(li: LineItem, groups: dict[str, ProductGroups]) -> LineItem:
    g = groups.get(li.product_id)
    if g is None or g == BARE:
        return li
    return replace(li, collections=tuple(dict.fromkeys(li.collections + g.collections)),
                   product_tags=tuple(dict.fromkeys(li.product_tags + g.tags)))

"""Order line items enriched with their products' collections and tags, which Shopify's order
webhooks do not carry.

- ``LineItem.collections`` holds each collection's **handle and numeric id** (``"coffee"`` and
  ``"841564295"``), so a rule may name a collection either way: ``order.collections: {contains:
  coffee}`` or ``{contains: "841564295"}``. Only a product's first ``MAX_COLLECTIONS`` collections
  are read.
- ``LineItem.product_tags`` holds the product's tags as the merchant wrote them (case kept).
- One ``nodes`` query per order asks for the products the cache does not hold (an order with more
  than ``BATCH`` of them takes one query per ``BATCH``, to stay under the 1000-point query cost).
- The cache, the failure policy and export mode are shared: see ``connectors.products``.
"""
from __future__ import annotations

import logging

from connectors.base import Shop
from connectors.shopify import api
from connectors.products import BARE, TTL_S, ProductGroups, ProductLookup  # noqa: F401 (TTL_S: tests)
from plugin.errors import StoreError

log = logging.getLogger("keepwell.connectors.shopify")

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

LOOKUP = ProductLookup(lambda shop, ids: _fetch(shop, ids), BATCH, log, name="shopify-products")
CACHE = LOOKUP.cache
enrich = LOOKUP.enrich
product_groups = LOOKUP.groups


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

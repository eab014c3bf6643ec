"""Order line items enriched with their products' categories and tags, which WooCommerce's order
webhooks do not carry.

- ``LineItem.collections`` holds each product category's **slug and id** (``"coffee"`` and
  ``"15"``), so a rule may name a category either way: ``order.collections: {contains: coffee}``
  or ``{contains: "15"}``. Only the categories the product is assigned to count, not their parents.
- ``LineItem.product_tags`` holds the slugs of the product's tags.
- One ``GET /products?include=...`` per order asks for the products the cache does not hold (more
  than ``PER_PAGE`` of them take one request per ``PER_PAGE``).
- The cache, the failure policy and export mode are shared: see ``connectors.products``.
"""
from __future__ import annotations

import logging

from connectors.base import Shop
from connectors.woocommerce import client
from connectors.products import BARE, TTL_S, ProductGroups, ProductLookup  # noqa: F401 (TTL_S: tests)
from plugin.errors import StoreError

log = logging.getLogger("keepwell.connectors.woocommerce")

PER_PAGE = client.PER_PAGE

LOOKUP = ProductLookup(lambda shop, ids: _fetch(shop, ids), PER_PAGE, log, known=lambda pid: _known(pid),
                       name="woocommerce-products")
CACHE = LOOKUP.cache
enrich = LOOKUP.enrich
product_groups = LOOKUP.groups


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

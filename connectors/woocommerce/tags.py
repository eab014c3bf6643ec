"""Customer tags. Core WooCommerce has none, so Keepwell keeps them in customer meta."""
from __future__ import annotations

from connectors.base import Shop
from connectors.woocommerce import client, pacing
from connectors.woocommerce.parse import TAGS_META_KEY, split_tags
from plugin.engine.actions import Tag


def add_tag(shop: Shop, customer_id: str, action: Tag) -> None:
    """Add the action's tag to the customer's ``keepwell_tags`` meta (GET, merge, PUT); StoreError on failure.

    Guests have no customer record to tag, so their ids are skipped. Adding a tag the customer
    already has changes nothing and sends no update.
    """
    if customer_id.startswith("guest:"):
        return
    with pacing.customer_lock(shop, customer_id):  # two touches of one customer: neither tag is lost
        _merge(shop, customer_id, action.tag)


def _merge(shop: Shop, customer_id: str, tag: str) -> None:
    customer = client.call(shop, "GET", f"customers/{customer_id}")
    entry = next((m for m in customer.get("meta_data") or () if m.get("key") == TAGS_META_KEY), None)
    tags = list(split_tags(entry.get("value")) if entry else ())
    if tag.lower() in (t.lower() for t in tags):
        return
    meta = {"key": TAGS_META_KEY, "value": ", ".join(tags + [tag])}
    if entry and entry.get("id"):
        meta["id"] = entry["id"]  # update that entry rather than add a second one
    client.call(shop, "PUT", f"customers/{customer_id}", json={"meta_data": [meta]})

"""Reconciliation: WooCommerce never retries a failed webhook, so poll for what changed."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterator

from connectors.base import Shop
from connectors.woocommerce import client
from plugin.events import parse_time


def changes_since(shop: Shop, since: datetime) -> Iterator[tuple[str, dict]]:
    """(topic, payload) for orders and customers modified at or after ``since``.

    Orders are filtered by the store (``modified_after`` with ``dates_are_gmt``). The customers
    endpoint has no date filter (woocommerce/woocommerce#41371), so every customer is paged
    through and filtered here on ``date_modified_gmt``: one request per 100 customers.
    Both lists are read in ascending id order, so records changing mid-scan can only be
    seen twice (harmless), never skipped.
    """
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    after = since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    for order in client.pages(shop, "orders", {"modified_after": after, "dates_are_gmt": True,
                                               "orderby": "id", "order": "asc"}):
        yield "order.updated", order
    for customer in client.pages(shop, "customers", {"orderby": "id", "order": "asc"}):
        modified = parse_time(customer.get("date_modified_gmt") or customer.get("date_created_gmt"))
        if modified is None or modified >= since:
            yield "customer.updated", customer

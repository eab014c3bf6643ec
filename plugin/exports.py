"""Raw store order exports -> canonical events, through the connectors' own parsers.

Accepted files: a Shopify REST orders export (``{"orders": [...]}``, a JSON array, or JSON Lines
of orders) and a WooCommerce ``GET /wp-json/wc/v3/orders`` response (a JSON array, or JSON Lines).
Refunds inside an order become refund events; guest orders are skipped by the parsers.
"""
from __future__ import annotations

import json
from typing import Iterator

import connectors
from connectors.base import Shop
from plugin.events import Event

def read_orders(text: str) -> list[dict]:
    """Orders from a JSON document (array or {"orders": [...]}) or JSON Lines."""
    text = text.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, dict):
        data = data.get("orders", [data])
    if not isinstance(data, list) or not all(isinstance(o, dict) for o in data):
        raise ValueError("expected orders: JSON objects in an array, under \"orders\", or one per line")
    return data


def export_events(platform: str, orders: list[dict], shop_id: str = "export") -> Iterator[Event]:
    """Canonical events for every order in a raw export of ``platform``."""
    connector = connectors.get(platform)
    shop = Shop(id=shop_id, platform=platform, domain=shop_id, api_url="")
    customers: dict[str, str] = {}  # order id -> customer: refunds do not say
    for order in orders:
        for topic, payload in connector.export_deliveries(order):
            for event in connector.parse(shop, topic, payload, customers.get):
                if event.order is not None:
                    customers.setdefault(event.order.id, event.customer_id)
                yield event

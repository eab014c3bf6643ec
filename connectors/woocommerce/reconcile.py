"""Reconciliation: WooCommerce never retries a failed webhook, so poll for what changed."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator

from connectors.base import Shop
from connectors.woocommerce import client
from plugin.events import parse_time

#: Sent by the Keepwell WordPress plugin when it narrowed the customer list to ``modified_after``.
NARROWED = "X-Keepwell-Modified-After"
#: How far back the daily full read of the customer list looks.
DAY = timedelta(days=1)


def changes_since(shop: Shop, since: datetime, now: datetime | None = None) -> Iterator[tuple[str, dict]]:
    """(topic, payload) for orders and customers modified at or after ``since``.

    Orders are filtered by the store (``modified_after`` with ``dates_are_gmt``). WooCommerce's
    customer list has no date filter (woocommerce/woocommerce#31482), so customers are read:
    - narrowed by the store when the Keepwell WordPress plugin answers ``modified_after`` (it
      says so in the X-Keepwell-Modified-After header);
    - otherwise newest registrations first, stopping at the first one older than ``since`` (the
      new customers), except in a poll whose window crosses midnight UTC: that one reads the
      whole list and keeps the customers modified in the day before ``since`` (changes to
      existing customers whose webhook was lost).
    Newest first, a registration during the scan can only make a record be seen twice
    (harmless), never skipped.
    """
    since = _utc(since)
    now = _utc(now or datetime.now(timezone.utc))
    after = since.strftime("%Y-%m-%dT%H:%M:%S")
    for order in client.pages(shop, "orders", {"modified_after": after, "dates_are_gmt": True,
                                               "orderby": "id", "order": "asc"}):
        yield "order.updated", order
    yield from (("customer.updated", c) for c in _customers(shop, since, after, now))


def _customers(shop: Shop, since: datetime, after: str, now: datetime) -> Iterator[dict]:
    daily = since.date() < now.date()
    narrowed = None
    for items, headers in client.page_lists(shop, "customers", {"modified_after": after, "dates_are_gmt": True,
                                                                "orderby": "registered_date", "order": "desc"}):
        if narrowed is None:
            narrowed = headers.get(NARROWED) == "applied"
        for customer in items:
            if narrowed:
                yield customer
            elif daily:
                if _modified(customer, since - DAY):
                    yield customer
            else:
                created = parse_time(customer.get("date_created_gmt"))
                if created is not None and created < since:
                    return  # only earlier registrations follow
                yield customer


def _modified(customer: dict, cutoff: datetime) -> bool:
    modified = parse_time(customer.get("date_modified_gmt") or customer.get("date_created_gmt"))
    return modified is None or modified >= cutoff


def _utc(when: datetime) -> datetime:
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)

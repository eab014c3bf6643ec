"""A store's past through the REST API: every customer, then every order, 100 a page.

- Customers are read in id order, resuming at the page after the last one folded (the endpoint
  has no date filter; new customers only append pages).
- Orders are read oldest change first (``orderby=modified``), and each request starts from the
  newest change already folded (``modified_after``, one second early, as WooCommerce's filter is
  strict): an order changed during the import moves to the end and is read again, none is
  skipped, and a resumed import continues from the same place. Orders changed in the same second
  as the cursor that were already folded are remembered by id and skipped.
- Each order is handed on as ``order.updated``: a GET /orders entry carries its whole current
  state (paid, cancelled, refunds), which the webhook parser turns into events.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator, Mapping

from connectors.base import HistoryItem, Shop
from connectors.woocommerce import client
from plugin.events import parse_time

_GMT = "%Y-%m-%dT%H:%M:%S"


def history(shop: Shop, since: datetime | None, cursor: Mapping) -> Iterator[HistoryItem]:
    """Customers, then orders created since ``since`` (or all), resuming after ``cursor``."""
    phase = cursor.get("phase", "customers")
    if phase == "customers":
        yield from _customers(shop, cursor.get("page", 1))
        cursor = {"phase": "orders"}
        yield HistoryItem(cursor=cursor)
    if cursor.get("phase") == "orders":
        yield from _orders(shop, since, cursor.get("modified"), set(cursor.get("seen", ())))
        yield HistoryItem(cursor={"phase": "done"})


def _customers(shop: Shop, number: int) -> Iterator[HistoryItem]:
    while True:
        items, total = client.page(shop, "customers", {"orderby": "id", "order": "asc"}, number)
        for i, c in enumerate(items):
            page = number + 1 if i == len(items) - 1 else number  # a page counts once it is whole
            # created (the signup date), then updated: dated by the customer's last change, the
            # consent the store holds now outranks an opt-in stored on an older order
            yield HistoryItem(cursor={"phase": "customers", "page": number}, topic="customer.created", payload=c)
            yield HistoryItem(cursor={"phase": "customers", "page": page}, topic="customer.updated", payload=c,
                              total=total, record="customer")
        if len(items) < client.PER_PAGE:
            return
        number += 1


def _orders(shop: Shop, since: datetime | None, modified: str | None, seen: set) -> Iterator[HistoryItem]:
    params = {"orderby": "modified", "order": "asc", "dates_are_gmt": True}
    if since is not None:
        params["after"] = _gmt(since)
    total = None
    while True:
        query = dict(params)
        if modified:
            query["modified_after"] = _gmt(parse_time(modified) - timedelta(seconds=1))
        number, moved = 1, False
        while not moved:
            items, announced = client.page(shop, "orders", query, number)
            total = total or announced
            for o in items:
                changed = o.get("date_modified_gmt") or o.get("date_created_gmt") or ""
                if modified and (changed < modified or (changed == modified and o.get("id") in seen)):
                    continue  # folded before
                if changed != modified:
                    modified, seen = changed, set()
                seen.add(o.get("id"))
                moved = True
                yield HistoryItem(cursor={"phase": "orders", "modified": modified, "seen": sorted(seen)},
                                  topic="order.updated", payload=o, total=total, record="order")
            if len(items) < client.PER_PAGE:
                return
            number += 1  # a whole page changed in the cursor's second: look further


def _gmt(t: datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).strftime(_GMT)

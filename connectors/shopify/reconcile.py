"""Reconciliation: customers and orders changed since a time, read over GraphQL and handed back in
the REST webhook shape ``parse`` accepts, so a missed webhook and a reconciled change become the
same events.

Refunds are not reconciled here (an order's refunds would need their own page of queries).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Iterator

from connectors.base import Shop
from connectors.shopify import api, sms
from plugin.events import parse_time

#: Page sizes keep each query's requested cost well under Shopify's 1000-point single-query limit
#: and within a standard shop's refill of a few seconds (a connection costs 2 plus ``first`` times
#: one node; an order node with its 15 line items costs 84, so a page of 5 costs 422).
ORDERS_PER_PAGE = 5
LINE_ITEMS_PER_ORDER = 15
CUSTOMERS_PER_PAGE = 50

#: Financial statuses of orders whose payment went through (``orders/paid`` was due for them).
PAID_STATUSES = {"paid", "partially_refunded", "refunded"}

#: The Order fields ``order_payload`` reads (shared with the history import's bulk query).
ORDER_FIELDS = """
      legacyResourceId
      name
      email
      createdAt
      updatedAt
      processedAt
      cancelledAt
      displayFinancialStatus
      currencyCode
      customerAcceptsMarketing
      customerLocale
      discountCodes
      totalPriceSet { shopMoney { amount currencyCode } }
      subtotalPriceSet { shopMoney { amount currencyCode } }
      customer { legacyResourceId firstName lastName createdAt defaultEmailAddress { emailAddress } %s }
""" % sms.PHONE_FIELDS
LINE_ITEM_FIELDS = """
          quantity
          sku
          title
          product { legacyResourceId }
          variant { legacyResourceId }
          originalUnitPriceSet { shopMoney { amount } }
"""

ORDERS_QUERY = f"""
query KeepwellOrdersSince($query: String!, $after: String) {{
  orders(first: {ORDERS_PER_PAGE}, after: $after, query: $query, sortKey: UPDATED_AT) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{{ORDER_FIELDS}
      lineItems(first: {LINE_ITEMS_PER_ORDER}) {{
        nodes {{{LINE_ITEM_FIELDS}        }}
      }}
    }}
  }}
}}
"""

CUSTOMERS_QUERY = f"""
query KeepwellCustomersSince($query: String!, $after: String) {{
  customers(first: {CUSTOMERS_PER_PAGE}, after: $after, query: $query, sortKey: UPDATED_AT) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      legacyResourceId
      firstName
      lastName
      locale
      createdAt
      updatedAt
      tags
      defaultEmailAddress {{ emailAddress marketingState marketingUpdatedAt }}
      {sms.PHONE_FIELDS}
    }}
  }}
}}
"""


def changes_since(shop: Shop, since) -> Iterator[tuple[str, dict]]:
    """(webhook topic, REST-shaped payload) for every customer, then every order, updated after ``since``."""
    since = _utc(since)
    search = f"updated_at:>'{since.strftime('%Y-%m-%dT%H:%M:%SZ')}'"
    for node in _pages(shop, CUSTOMERS_QUERY, "customers", search):
        created = parse_time(node["createdAt"])
        yield ("customers/create" if created > since else "customers/update"), customer_payload(node)
    for node in _pages(shop, ORDERS_QUERY, "orders", search):
        payload = order_payload(node)
        yield order_topic(payload), payload


def order_topic(payload: dict) -> str:
    """The webhook topic a reconciled order stands for: its latest milestone."""
    if payload.get("cancelled_at"):
        return "orders/cancelled"
    if payload.get("financial_status") in PAID_STATUSES:
        return "orders/paid"
    return "orders/create"


def order_payload(node: dict) -> dict:
    """A GraphQL ``Order`` node in the REST order shape (the fields ``parse`` reads)."""
    total = node["totalPriceSet"]["shopMoney"]
    subtotal = (node.get("subtotalPriceSet") or {}).get("shopMoney") or {}
    c = node.get("customer")
    return {
        "id": int(node["legacyResourceId"]),
        "name": node.get("name"),
        "email": node.get("email"),
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
        "processed_at": node.get("processedAt"),
        "cancelled_at": node.get("cancelledAt"),
        "financial_status": (node.get("displayFinancialStatus") or "").lower() or None,
        "currency": node.get("currencyCode") or total["currencyCode"],
        "total_price": total["amount"],
        "subtotal_price": subtotal.get("amount"),
        "buyer_accepts_marketing": node.get("customerAcceptsMarketing"),
        "customer_locale": node.get("customerLocale"),
        "discount_codes": [{"code": code} for code in node.get("discountCodes") or ()],
        "customer": None if not c else {
            "id": int(c["legacyResourceId"]),
            "email": (c.get("defaultEmailAddress") or {}).get("emailAddress"),
            "first_name": c.get("firstName"),
            "last_name": c.get("lastName"),
            "created_at": c.get("createdAt"),
            **sms.rest_fields(c),
        },
        "line_items": [
            {
                "product_id": _legacy_id(li.get("product")),
                "variant_id": _legacy_id(li.get("variant")),
                "sku": li.get("sku"),
                "title": li.get("title"),
                "quantity": li["quantity"],
                "price": li["originalUnitPriceSet"]["shopMoney"]["amount"],
            }
            for li in (node.get("lineItems") or {}).get("nodes") or ()
        ],
    }


def customer_payload(node: dict) -> dict:
    """A GraphQL ``Customer`` node in the REST customer shape, consent and tags included."""
    email = node.get("defaultEmailAddress") or {}
    payload = {
        "id": int(node["legacyResourceId"]),
        "email": email.get("emailAddress"),
        "first_name": node.get("firstName"),
        "last_name": node.get("lastName"),
        "locale": node.get("locale"),
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
        "tags": ", ".join(node.get("tags") or ()),
    }
    payload.update(sms.rest_fields(node))
    if email.get("marketingState"):
        payload["email_marketing_consent"] = {
            "state": email["marketingState"].lower(),
            "consent_updated_at": email.get("marketingUpdatedAt"),
        }
    return payload


def _pages(shop: Shop, query: str, root: str, search: str) -> Iterator[dict]:
    after = None
    while True:
        connection = api.execute(shop, query, {"query": search, "after": after})[root]
        yield from connection.get("nodes") or ()
        page = connection.get("pageInfo") or {}
        if not page.get("hasNextPage"):
            return
        after = page["endCursor"]


def _legacy_id(obj: dict | None) -> int | None:
    return int(obj["legacyResourceId"]) if obj and obj.get("legacyResourceId") else None


def _utc(since) -> datetime:
    t = parse_time(since) if isinstance(since, str) else since
    if t.tzinfo is None:
        return t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc)

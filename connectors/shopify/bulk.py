"""A store's past through bulk operations: one ``bulkOperationRunQuery`` for the customers, one
for the orders, each polled with ``bulkOperation(id:)`` until COMPLETED and its JSONL result
read as a stream, line by line.

- ``groupObjects: true``: an order's line items (a nested connection, one JSONL line each,
  pointing at the order through ``__parentId``) then follow their order directly, so an order is
  complete when the next top-level line starts and no more than one order is ever held. Grouping
  makes Shopify's job slower; reading an ungrouped file would mean holding every order until the
  end of the file.
- Every record is handed on in the REST webhook shape (the same conversion reconciliation uses),
  so the import parses it with the connector's own webhook parser.
- Orders older than 60 days are only returned to apps granted ``read_all_orders``.
- The cursor is (phase, bulk operation id, lines already folded): a resumed import asks Shopify
  about the same operation and skips the lines it has; a result that expired (after 7 days) or an
  operation that failed is started again from its first line (folding twice changes nothing).
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Iterator, Mapping

import requests

from connectors.base import HistoryItem, HistoryNotReady, Shop
from connectors.shopify import api, sms
from connectors.shopify.payloads import PAID_STATUSES
from connectors.shopify.reconcile import LINE_ITEM_FIELDS, ORDER_FIELDS, customer_payload, order_payload
from plugin.errors import StoreError

PHASES = ("customers", "orders")
POLL_AFTER_S = 5.0  # Shopify's own guidance polls every few seconds
MAX_RESTARTS = 3
DOWNLOAD_TIMEOUT = (10, 120)

CUSTOMERS_QUERY = """
{
  customers {
    edges {
      node {
        id
        legacyResourceId
        firstName
        lastName
        locale
        createdAt
        updatedAt
        tags
        defaultEmailAddress { emailAddress marketingState marketingUpdatedAt }
        %s
      }
    }
  }
}
""" % sms.PHONE_FIELDS

ORDERS_QUERY = """
{
  orders%(filter)s {
    edges {
      node {
        id""" + ORDER_FIELDS + """
        refunds { legacyResourceId createdAt totalRefundedSet { shopMoney { amount currencyCode } } }
        lineItems {
          edges {
            node {""" + LINE_ITEM_FIELDS + """            }
          }
        }
      }
    }
  }
}
"""

RUN_MUTATION = """
mutation KeepwellHistory($query: String!) {
  bulkOperationRunQuery(query: $query, groupObjects: true) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}
"""

POLL_QUERY = """
query KeepwellHistoryStatus($id: ID!) {
  bulkOperation(id: $id) { id status errorCode objectCount rootObjectCount url partialDataUrl }
}
"""


def bulk_query(phase: str, since: datetime | None) -> str:
    """The bulk query document of one phase; orders are limited to those created since ``since``."""
    if phase == "customers":
        return CUSTOMERS_QUERY
    flt = f'(query: "created_at:>=\'{since.strftime("%Y-%m-%dT%H:%M:%SZ")}\'")' if since else ""
    return ORDERS_QUERY % {"filter": flt}


def start(shop: Shop, phase: str, since: datetime | None) -> str:
    """Start the bulk operation of ``phase``; returns its id."""
    result = api.execute(shop, RUN_MUTATION, {"query": bulk_query(phase, since)})["bulkOperationRunQuery"]
    errors = api.user_errors(result)
    if errors:
        # OPERATION_IN_PROGRESS / LIMIT_REACHED: the app's bulk operations on this shop (one before
        # API 2026-01, five since) are all running; they end on their own.
        busy = any(e.get("code") in ("OPERATION_IN_PROGRESS", "LIMIT_REACHED") for e in errors)
        raise StoreError(f"Shopify refused the {phase} history query: {api.user_error_message(errors)}",
                         retryable=busy, retry_after=POLL_AFTER_S * 6 if busy else None, code="BULK_REFUSED")
    return result["bulkOperation"]["id"]


def status(shop: Shop, op_id: str) -> dict:
    """The bulk operation as Shopify reports it now."""
    op = api.execute(shop, POLL_QUERY, {"id": op_id}).get("bulkOperation")
    if not op:
        return {"id": op_id, "status": "EXPIRED"}  # unknown to the shop any more: start again
    return op


def history(shop: Shop, since: datetime | None, cursor: Mapping) -> Iterator[HistoryItem]:
    """Customers, then orders, as (topic, REST-shaped payload), resuming after ``cursor``."""
    phase = cursor.get("phase", PHASES[0])
    if phase not in PHASES:
        return
    for name in PHASES[PHASES.index(phase):]:
        state = {**cursor, "phase": name} if name == phase else {"phase": name}
        yield from _phase(shop, since, state)


def _phase(shop: Shop, since, state: dict) -> Iterator[HistoryItem]:
    restarts = state.get("restarts", 0)
    while True:
        if not state.get("op"):
            state = {"phase": state["phase"], "op": start(shop, state["phase"], since), "line": 0, "restarts": restarts}
            yield HistoryItem(cursor=dict(state))
        op = status(shop, state["op"])
        if op["status"] in ("CREATED", "RUNNING", "CANCELING"):  # CANCELING ends CANCELED: asked again then
            raise HistoryNotReady(dict(state), POLL_AFTER_S,
                                  f"Shopify is preparing the {state['phase']} ({op.get('objectCount') or 0} records so far)")
        if op["status"] == "COMPLETED":
            break
        if op.get("errorCode") == "ACCESS_DENIED" or restarts >= MAX_RESTARTS:
            raise StoreError(f"Shopify's {state['phase']} history query ended {op['status']} "
                             f"({op.get('errorCode') or 'no error code'})", retryable=False, code="BULK_FAILED")
        restarts += 1  # FAILED, CANCELED or EXPIRED: ask again
        state = {"phase": state["phase"], "restarts": restarts}
    total = int(op.get("rootObjectCount") or 0)
    if op.get("url"):  # no url: the query matched nothing
        records = _records(op["url"], state["line"])
        convert = _customer_items if state["phase"] == "customers" else _order_items
        for line, end, node in records:
            yield from convert(state, line, end, node, total)
    yield HistoryItem(cursor={"phase": _next(state["phase"])}, total=total)


def _next(phase: str) -> str:
    i = PHASES.index(phase) + 1
    return PHASES[i] if i < len(PHASES) else "done"


def _records(url: str, skip: int) -> Iterator[tuple[int, int, dict]]:
    """(first line, line after it, object with its children under ``__children``) of a grouped
    JSONL result, from line ``skip`` on. The file lives on Shopify's storage: no access token."""
    try:
        resp = requests.get(url, stream=True, timeout=DOWNLOAD_TIMEOUT)
    except requests.RequestException as exc:
        raise StoreError(f"could not download the bulk result: {exc}", retryable=True, code="CONNECTION") from exc
    with resp:
        if resp.status_code != 200:
            raise StoreError(f"the bulk result answered {resp.status_code}", retryable=resp.status_code >= 500,
                             status=resp.status_code, code=f"HTTP_{resp.status_code}")
        current, start, n = None, skip, skip
        for n, raw in enumerate(resp.iter_lines()):
            if n < skip or not raw:
                continue
            obj = json.loads(raw)
            if "__parentId" in obj:
                if current is not None:
                    current["__children"].append(obj)
                continue
            if current is not None:
                yield start, n, current
            current, start = {**obj, "__children": []}, n
        if current is not None:
            yield start, n + 1, current


def _customer_items(state: dict, line: int, end: int, node: dict, total: int) -> Iterator[HistoryItem]:
    # created (the signup date), then updated: dated by the customer's last change, the consent the
    # store holds now outranks a checkout box ticked on an older order
    payload = customer_payload(node)
    yield HistoryItem(cursor={**state, "line": line}, topic="customers/create", payload=payload, total=total)
    yield HistoryItem(cursor={**state, "line": end}, topic="customers/update", payload=payload, total=total,
                      record="customer")


def _order_items(state: dict, line: int, end: int, node: dict, total: int) -> Iterator[HistoryItem]:
    node["lineItems"] = {"nodes": node.pop("__children")}
    payload = order_payload(node)
    here, after = {**state, "line": line}, {**state, "line": end}
    if payload["financial_status"] not in PAID_STATUSES or payload["customer"] is None:
        # never paid: not a purchase; a guest checkout: nobody to retain (nor to ask the store about
        # its refunds)
        yield HistoryItem(cursor=after, total=total, record="order")
        return
    payload["refunds"] = [_refund(payload, r) for r in node.get("refunds") or ()]
    deliveries = [("orders/paid", payload)]
    if payload.get("cancelled_at"):
        deliveries.append(("orders/cancelled", payload))
    deliveries += [("refunds/create", r) for r in payload["refunds"]]
    # only the last delivery moves the cursor past the order: a crash in between re-reads it whole
    for i, (topic, p) in enumerate(deliveries):
        last = i == len(deliveries) - 1
        yield HistoryItem(cursor=after if last else here, topic=topic, payload=p, total=total,
                          record="order" if last else None)


def _refund(order: dict, r: dict) -> dict:
    """A GraphQL ``Refund`` in the REST refunds/create shape: one successful refund transaction
    for the amount it returned, in the shop's currency."""
    money = r["totalRefundedSet"]["shopMoney"]
    return {
        "id": int(r["legacyResourceId"]),
        "order_id": order["id"],
        "created_at": r.get("createdAt") or order["processed_at"],
        "processed_at": r.get("createdAt") or order["processed_at"],
        "transactions": [{"kind": "refund", "status": "success", "amount": money["amount"],
                          "currency": money["currencyCode"]}],
    }

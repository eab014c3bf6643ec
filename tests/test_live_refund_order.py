"""Refunds in any order, end to end through the worker: webhooks are not ordered, so a full refund
may arrive before the order it returns. The order's own status and refunds decide, never the
arrival order: a fully refunded order is no purchase (no "first order", no icebreaker, no
referral invite, no spend), and reconciliation bringing the order back changes nothing."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest
import responses

from plugin import jobs
from plugin.db import CustomerRow, TimerRow
from live import (STORES, FakeShopify, advance, gmt, gql_ok, iso, mails_to, running, woo_order, work)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
FIRST_ORDER_RULES = ("icebreaker", "referral_invite")


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = T0
        yield live


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


class ReconcilingShopify(FakeShopify):
    """The fake Admin API, whose orders query (reconciliation) answers ``order_nodes``."""

    order_nodes: list

    def _data(self, op, v):
        if op == "KeepwellOrdersSince":
            return gql_ok({"orders": {"pageInfo": {"hasNextPage": False, "endCursor": None},
                                      "nodes": getattr(self, "order_nodes", [])}})
        return super()._data(op, v)


def order_node(order_id: int, customer_id: str, email: str, at: datetime, updated: datetime, status: str,
               total: str) -> dict:
    """An ``Order`` as the reconciliation query reads it (Admin GraphQL 2026-10)."""
    money = {"shopMoney": {"amount": total, "currencyCode": "USD"}}
    return {"legacyResourceId": str(order_id), "name": f"#{order_id}", "email": email, "createdAt": iso(at),
            "updatedAt": iso(updated), "processedAt": iso(at), "cancelledAt": None,
            "displayFinancialStatus": status, "currencyCode": "USD", "customerAcceptsMarketing": True,
            "customerLocale": "en", "discountCodes": [], "totalPriceSet": money, "subtotalPriceSet": money,
            "customer": {"legacyResourceId": customer_id, "firstName": "Ana", "lastName": "Silva",
                         "createdAt": iso(at - timedelta(days=1)), "defaultEmailAddress": {"emailAddress": email}},
            "lineItems": {"nodes": [{"quantity": 1, "sku": "COF-1", "title": "Coffee", "product": {"legacyResourceId": "93"},
                                     "variant": {"legacyResourceId": "94"},
                                     "originalUnitPriceSet": {"shopMoney": {"amount": total}}}]}}


def state(live, shop_id, customer_id) -> dict:
    (row,) = live.rows(CustomerRow, shop_id=shop_id, customer_id=customer_id)
    return row.state


def rules_timed(live, shop_id, customer_id) -> set[str]:
    """The first-order rules that set a timer for the customer (both delay their touch)."""
    rules = {t.event["data"]["rule"] for t in live.rows(TimerRow, shop_id=shop_id, customer_id=customer_id)}
    return rules & set(FIRST_ORDER_RULES)


def first_order_mails(live, address: str) -> list[str]:
    """Subjects of the icebreaker and referral invite emails sent to ``address``."""
    return [str(m["Subject"]) for m in mails_to(live, address)
            if "off your next order" in str(m["Subject"]) or str(m["Subject"]).startswith("Give 10%")]


def test_shopify_refund_before_its_order_is_no_purchase(live, rsps):
    store = STORES["shopify"](live, rsps)
    store.api.__class__ = ReconcilingShopify  # the same mock, now answering the orders query too
    ana, bea = store.customer(1, *FIRST_ORDER_RULES), store.customer(2, *FIRST_ORDER_RULES)
    for cid, email, name in ((ana, "ana@example.com", "Ana"), (bea, "bea@example.com", "Bea")):
        store.signup(cid, T0 - timedelta(days=1), email, name)
    store.api.orders.update({"5001": ana, "5002": bea})
    # Ana's full refund reaches Keepwell before the orders/paid of the order it returns ...
    store.refund(9001, 5001, T0 + timedelta(hours=2), amount="120.00")
    store.order(5001, ana, T0, total="120.00", email="ana@example.com", first_name="Ana")
    # ... Bea's partial refund too: her order stays a purchase.
    store.refund(9002, 5002, T0 + timedelta(hours=2), amount="20.00")
    store.order(5002, bea, T0, total="120.00", email="bea@example.com", first_name="Bea")
    work(live)

    ana_state = state(live, store.shop_id, ana)
    assert [(o["paid"], o["refunds"]) for o in ana_state["orders"]] == [(True, [["9001", "120.00"]])]
    assert rules_timed(live, store.shop_id, ana) == set()
    assert rules_timed(live, store.shop_id, bea) == set(FIRST_ORDER_RULES)

    # Reconciliation reads the order back as Shopify reports it now: REFUNDED.
    store.api.order_nodes = [order_node(5001, ana, "ana@example.com", T0, T0 + timedelta(hours=2, seconds=3),
                                        "REFUNDED", "120.00")]
    live.clock.now = T0 + timedelta(hours=3)
    assert jobs.reconcile(store.shop_id) >= 1
    work(live)
    assert rules_timed(live, store.shop_id, ana) == set()
    advance(live, T0 + timedelta(days=15))
    assert first_order_mails(live, "ana@example.com") == []
    assert len(first_order_mails(live, "bea@example.com")) == 2


def test_woocommerce_refunded_update_before_processing_and_completed(live, rsps):
    store = STORES["woocommerce"](live, rsps)
    ana, bea = store.customer(1, *FIRST_ORDER_RULES), store.customer(2, *FIRST_ORDER_RULES)
    for cid, email, name in ((ana, "ana@example.com", "Ana"), (bea, "bea@example.com", "Bea")):
        store.signup(cid, T0 - timedelta(days=1), email, name)

    def versions(order_id, cid, email, refund_total):
        placed = woo_order(order_id, int(cid), email=email, total="120.00", modified=gmt(T0))
        completed = copy.deepcopy(placed)
        completed.update(status="completed", date_modified_gmt=gmt(T0 + timedelta(hours=1)),
                         date_completed_gmt=gmt(T0 + timedelta(hours=1)))
        refunded = copy.deepcopy(completed)
        refunded.update(status="refunded" if refund_total == "120.00" else "completed",
                        date_modified_gmt=gmt(T0 + timedelta(hours=2)))
        refunded["refunds"] = [{"id": order_id + 100, "reason": "Returned", "total": f"-{refund_total}"}]
        return placed, completed, refunded

    ana_placed, ana_completed, ana_refunded = versions(7301, ana, "ana@example.com", "120.00")
    bea_placed, bea_completed, bea_refunded = versions(7302, bea, "bea@example.com", "20.00")
    # WooCommerce delivers the latest update (refunded) first, then the older ones.
    for placed, completed, refunded in ((ana_placed, ana_completed, ana_refunded),
                                        (bea_placed, bea_completed, bea_refunded)):
        store.post("order.updated", refunded)
        store.post("order.created", placed)
        store.post("order.updated", completed)
    work(live)

    ana_state = state(live, store.shop_id, ana)
    assert [(o["paid"], o["refunds"]) for o in ana_state["orders"]] == [(True, [["7401", "120.00"]])]
    assert rules_timed(live, store.shop_id, ana) == set()
    assert rules_timed(live, store.shop_id, bea) == set(FIRST_ORDER_RULES)

    # Reconciliation reads the refunded order back from GET /orders: nothing new happens.
    store.api.orders = [ana_refunded, bea_refunded]
    live.clock.now = T0 + timedelta(hours=3)
    jobs.reconcile(store.shop_id)
    work(live)
    assert rules_timed(live, store.shop_id, ana) == set()
    advance(live, T0 + timedelta(days=15))
    assert first_order_mails(live, "ana@example.com") == []
    assert len(first_order_mails(live, "bea@example.com")) == 2

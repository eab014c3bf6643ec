"""Pacing from Shopify's cost bucket: every answer's ``extensions.cost.throttleStatus`` is kept in
Redis per shop, shared by every worker process, and a call the bucket cannot pay waits for the
refill (briefly) or goes back to the worker with the wait, before Shopify has to throttle it.
Single queries stay well under the 1,000-point limit by Shopify's calculated-cost formula."""
from __future__ import annotations

import gzip
import json
import multiprocessing
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
import responses
from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, build_client_schema, parse as gql_parse
from graphql.language import FieldNode, InlineFragmentNode, OperationDefinitionNode
from redis import Redis

from connectors import cache
from connectors.base import Shop
from connectors.shopify import API_VERSION, api, products, reconcile
from plugin.errors import StoreError
from live import STORES, backlog, running, scheduled, work

SCHEMA = Path(__file__).resolve().parent / "fixtures" / "shopify" / f"admin_schema_{API_VERSION}.json.gz"
SHOP = Shop(id="shop-pace", platform="shopify", domain="pace.myshopify.com", api_url="https://pace.myshopify.com",
            credentials={"access_token": "shpat_pace"})
URL = f"https://pace.myshopify.com/admin/api/{API_VERSION}/graphql.json"
QUERY = "query KeepwellOrderCustomer($id: ID!) { order(id: $id) { id customer { id } } }"


def answer(requested: float, available: float, restore: float = 50.0, maximum: float = 1000.0) -> dict:
    """A successful answer with the cost extension Shopify adds to every GraphQL response."""
    return {"data": {"order": {"id": "gid://shopify/Order/1", "customer": None}},
            "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": requested,
                                    "throttleStatus": {"maximumAvailable": maximum, "currentlyAvailable": available,
                                                       "restoreRate": restore}}}}


@pytest.fixture
def bound(redis_server):
    redis = Redis.from_url(redis_server)
    prefix = f"kwp{uuid.uuid4().hex[:8]}"
    cache.bind(redis, prefix)
    yield redis
    cache.bind(None)
    for key in redis.scan_iter(match=f"{prefix}:*"):
        redis.delete(key)


def test_an_answer_fills_the_shops_bucket_in_redis(bound):
    with responses.RequestsMock() as rsps:
        rsps.post(URL, json=answer(requested=3, available=997.0))
        api.execute(SHOP, QUERY, {"id": "gid://shopify/Order/1"})
    bucket = {k.decode(): v.decode() for k, v in bound.hgetall(f"{cache.prefix()}:{{shop-pace}}:shopify-cost-bucket").items()}
    assert float(bucket["available"]) == 997.0 and float(bucket["maximum"]) == 1000.0 and float(bucket["rate"]) == 50.0
    assert float(bucket["cost:KeepwellOrderCustomer"]) == 3.0


def test_a_call_the_bucket_cannot_pay_waits_for_the_refill(bound):
    with responses.RequestsMock() as rsps:
        rsps.post(URL, json=answer(requested=112, available=40.0))  # (112 - 40) / 50 = 1.44 s short
        rsps.post(URL, json=answer(requested=112, available=0.0))
        api.execute(SHOP, QUERY, {"id": "1"})
        started = time.monotonic()
        api.execute(SHOP, QUERY, {"id": "1"})
        assert 1.2 < time.monotonic() - started < 4.0


def test_a_long_wait_goes_back_to_the_worker_without_calling_shopify(bound):
    with responses.RequestsMock() as rsps:
        rsps.post(URL, json=answer(requested=400, available=0.0, restore=50.0))
        api.execute(SHOP, QUERY, {"id": "1"})
        with pytest.raises(StoreError) as err:
            api.execute(SHOP, QUERY, {"id": "1"})
        assert len(rsps.calls) == 1  # Shopify never had to throttle
    assert err.value.retryable and err.value.code == "PACED" and 6.0 < err.value.retry_after <= 8.0  # (400 - 0) / 50


def _call_in_child(redis_url: str, prefix: str) -> None:
    cache.bind(Redis.from_url(redis_url), prefix)
    with responses.RequestsMock() as rsps:
        rsps.post(URL, json=answer(requested=400, available=10.0, restore=50.0))
        api.execute(SHOP, QUERY, {"id": "1"})


def test_the_bucket_is_shared_by_every_worker_process(bound, redis_server):
    child = multiprocessing.get_context("fork").Process(target=_call_in_child, args=(redis_server, cache.prefix()))
    child.start()
    child.join(20)
    assert child.exitcode == 0
    with responses.RequestsMock() as rsps:  # this process never saw an answer, yet it paces
        with pytest.raises(StoreError) as err:
            api.execute(SHOP, QUERY, {"id": "1"})
        assert len(rsps.calls) == 0
    assert err.value.code == "PACED" and 5.0 < err.value.retry_after <= 7.8  # (400 - 10) / 50, less the time since


def test_a_throttled_answer_names_the_wait_its_numbers_imply():
    throttled = {"errors": [{"message": "Throttled", "extensions": {
        "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
        "extensions": {"cost": {"requestedQueryCost": 112, "actualQueryCost": None, "throttleStatus": {
            "maximumAvailable": 1000.0, "currentlyAvailable": 12.0, "restoreRate": 50.0}}}}
    with responses.RequestsMock() as rsps:
        rsps.post(URL, json=throttled)
        with pytest.raises(StoreError) as err:
            api.execute(SHOP, QUERY, {"id": "1"})
    assert err.value.code == "THROTTLED" and err.value.retry_after == 2.0


# --- calculated query cost -------------------------------------------------------------------------

def _unwrap(t):
    while isinstance(t, (GraphQLNonNull, GraphQLList)):
        t = t.of_type
    return t


def requested_cost(schema, document: str) -> int:
    """Shopify's calculated cost of a query: objects 1, scalars and enums 0, a connection 2 plus its
    ``first`` times the cost of one node (https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits)."""
    doc = gql_parse(document)
    (op,) = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]

    def selection_cost(parent, selections) -> int:
        total = 0
        for sel in selections:
            if isinstance(sel, InlineFragmentNode):
                total += selection_cost(schema.get_type(sel.type_condition.name.value), sel.selection_set.selections)
                continue
            assert isinstance(sel, FieldNode)
            if sel.name.value == "__typename":
                continue
            field = parent.fields[sel.name.value]
            ftype = _unwrap(field.type)
            if not isinstance(ftype, GraphQLObjectType) and sel.selection_set is None:
                continue
            inner = sel.selection_set.selections if sel.selection_set else []
            if ftype.name.endswith("Connection"):
                first = next((int(a.value.value) for a in sel.arguments if a.name.value == "first"), 0)
                node_type = _unwrap(ftype.fields["nodes"].type)
                nodes = [s for s in inner if isinstance(s, FieldNode) and s.name.value == "nodes"]
                node_cost = 1 + sum(selection_cost(node_type, n.selection_set.selections) for n in nodes)
                page = [s for s in inner if isinstance(s, FieldNode) and s.name.value == "pageInfo"]
                total += 2 + first * node_cost + len(page)
            else:
                total += 1 + selection_cost(ftype, inner)
        return total

    return selection_cost(schema.query_type, op.selection_set.selections)


@pytest.fixture(scope="module")
def schema():
    with gzip.open(SCHEMA) as f:
        return build_client_schema(json.load(f)["data"], assume_valid=True)


def test_reconciliation_pages_cost_well_under_the_single_query_limit(schema):
    orders = requested_cost(schema, reconcile.ORDERS_QUERY)
    assert 400 < orders <= 500, orders  # 10 orders a page cost 843, within 16 % of the limit
    assert requested_cost(schema, reconcile.CUSTOMERS_QUERY) <= 500


# --- end to end: a paced product lookup delays the order through the worker -----------------------------

@pytest.fixture
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
        yield live


def test_an_order_waits_for_the_bucket_instead_of_being_throttled(live):
    at = live.clock.now
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        store = STORES["shopify"](live, rsps)
        store.api.products["9182736450918273645"] = {"tags": [], "collections": {"coffee": "841564296"}}
        # The first order's lookup leaves the bucket nearly empty: 5 of 1000 points, 10 a second.
        nodes = {"nodes": [{"id": "gid://shopify/Product/9182736450918273645", "tags": [],
                            "collections": {"nodes": [{"id": "gid://shopify/Collection/841564296", "handle": "coffee"}]}}]}
        store.api.fail_next(200, {"data": nodes, "extensions": {"cost": {
            "requestedQueryCost": 112, "actualQueryCost": 4,
            "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 5.0, "restoreRate": 10.0}}}})
        products.CACHE.clear()
        store.order(5001, store.customer(1), at, email="a@example.com", first_name="Ana", product_id=9182736450918273645)
        store.order(5002, store.customer(2), at, email="b@example.com", first_name="Bo", product_id=1000000000001)
        work(live)
        lookups = store.api.ops("KeepwellProductGroups")
    assert len(lookups) == 1  # the second lookup was not sent to be throttled ...
    assert backlog(live, store.shop_id) == 1  # ... its order waits first in line
    ((_, when),) = scheduled(live, "plugin.jobs.drain")
    left = (when.replace(tzinfo=timezone.utc) - datetime.now(timezone.utc)).total_seconds()
    assert 7.0 < left <= 10.7  # (112 - 5) / 10, less the time since (RQ keeps whole seconds)

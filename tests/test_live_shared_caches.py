"""Caches that survive a job and its process: a shop's jobs run in several worker processes (more
than one `keepwell worker`, or RQ's forking worker with a fresh process per job), so the product
and collection caches live in Redis under per-shop keys with their TTL; two orders of one product
processed by two job processes ask the store once."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import responses
from rq import Worker

from plugin.worker import Worker as KeepwellWorker

from connectors.cache import MISSING
from connectors.products import TTL_S
from connectors.shopify import coupons, products
from plugin.db import OrderIndexRow
from live import STORES, FakeShopify, running

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
PRODUCT = "9182736450918273645"


@pytest.fixture
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = T0
        yield live


class CountingShopify(FakeShopify):
    """The fake Admin API counting product lookups in Redis, where every job process can add to it."""

    redis = None
    counter = ""

    def _data(self, op, v):
        if op == "KeepwellProductGroups":
            self.redis.incr(self.counter)
        return super()._data(op, v)


class ForkingWorker(Worker):
    """RQ's forking worker (one child process per job, so no job sees another's memory), with
    keepwell worker's bounded end of a burst."""

    unsubscribe = KeepwellWorker.unsubscribe


def fork_work(live) -> None:
    ForkingWorker([live.rt.queue], connection=live.rt.redis).work(burst=True, with_scheduler=False)


def test_two_job_processes_share_the_product_cache(live):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        store = STORES["shopify"](live, rsps)
        store.api.__class__ = CountingShopify
        store.api.redis, store.api.counter = live.rt.redis, f"{live.config.queue}:product-lookups"
        store.api.products[PRODUCT] = {"tags": ["ethiopia"], "collections": {"coffee": "841564296"}}
        started = time.monotonic()
        for n, order_id in enumerate((5001, 5002)):
            store.order(order_id, store.customer(n + 1), T0 + timedelta(minutes=n), email=f"c{n}@example.com",
                        first_name="Ana")
            fork_work(live)
            assert live.rows(OrderIndexRow, shop_id=store.shop_id, order_id=str(order_id))
    assert int(live.rt.redis.get(store.api.counter)) == 1
    (key,) = live.rt.redis.keys(f"{live.config.queue}:{{{store.shop_id}}}:cache:shopify-products:*")
    assert key.decode().endswith(f":{PRODUCT}")
    # the product's TTL, counted from the first lookup (a loaded machine may take a while)
    assert TTL_S - (time.monotonic() - started) - 2 <= live.rt.redis.ttl(key) <= TTL_S
    assert products.product_groups(live.rt.shop(store.shop_id), [PRODUCT])[PRODUCT].collections == ("coffee", "841564296")


def test_collection_ids_are_kept_per_shop_in_redis(live):
    coupons.COLLECTION_IDS.put(("shop-a", "brewing"), "gid://shopify/Collection/1")
    assert coupons.COLLECTION_IDS.get(("shop-a", "brewing")) == "gid://shopify/Collection/1"
    assert coupons.COLLECTION_IDS.get(("shop-b", "brewing")) is MISSING
    key = f"{live.config.queue}:{{shop-a}}:cache:collection-ids:brewing"
    assert 0 < live.rt.redis.ttl(key) <= coupons.COLLECTION_TTL_S

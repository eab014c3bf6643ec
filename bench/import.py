"""History import throughput (orders/s) beside the rate of only parsing the same pages, per platform.

- parse: the connector walks the store's history (Shopify: the bulk operations' grouped JSONL;
  WooCommerce: /customers and /orders, 100 a page) and its webhook parser turns every record
  into canonical events; nothing is stored.
- import: ``plugin.importing.run`` does the same walk and folds the events into customer states
  (engine ``apply``), order index rows and the stored cursor, batch by batch, then sets the
  timers the past implies.

Each platform is parsed and imported ``--repeat`` times in turn (default 3, each import into a
fresh shop) and the best time of each counts, so a busy machine weighs on both alike. Both read
the same generated store (tests/history_store.py, default 50,000 orders, 10,000
customers), served by the same store mocks at the HTTP layer (``responses``), in the same run.
SQLite in a temporary directory by default; PostgreSQL with --database-url. Redis holds the
import's lock (REDIS_URL, default redis://127.0.0.1:6379, database 7 unless --redis-url says).

ratio = the lower of the two platforms' import/parse rate ratios; target >= 0.5. The last line
printed is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import responses  # noqa: E402
from redis import Redis  # noqa: E402
from sqlalchemy import delete, func, select  # noqa: E402

import connectors  # noqa: E402
from connectors.base import HistoryNotReady  # noqa: E402
from connectors.shopify import products as shopify_products  # noqa: E402
from connectors.woocommerce import products as woo_products  # noqa: E402
from history_store import WOO_CONSENT_KEY, BulkShopify, History, PagedWoo  # noqa: E402
from plugin import importing  # noqa: E402
from plugin.config import Config  # noqa: E402
from plugin.db import CustomerRow, ShopRow, sessions, upgrade  # noqa: E402
from plugin.pipeline import Runtime  # noqa: E402
from plugin.shops import add_shop, to_shop  # noqa: E402

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)
TARGET = 0.5
DOMAIN = "bench-history.myshopify.com"
WOO_URL = "https://bench-history.example"


def clear_caches() -> None:
    shopify_products.CACHE.clear()
    woo_products.LOOKUP.cache.clear()


def parse_only(shop, connector) -> tuple[int, int]:
    """Walk and parse the whole history; (orders read, events parsed)."""
    cursor, orders, events, owners = {}, 0, 0, {}
    while cursor.get("phase") != "done":
        try:
            for item in connector.history(shop, None, cursor):
                cursor = item.cursor
                if item.topic is not None:
                    parsed = connector.parse(shop, item.topic, item.payload, owners.get)
                    for e in parsed:
                        if e.order is not None:
                            owners.setdefault(e.order.id, e.customer_id)
                    events += len(parsed)
                orders += item.record == "order"
        except HistoryNotReady as exc:
            cursor = dict(exc.cursor)
    return orders, events


def connect(platform: str, rt):
    with rt.sessions.begin() as session:
        if platform == "shopify":
            row, _ = add_shop(session, rt.config, "shopify", DOMAIN, access_token="shpat_bench")
        else:
            row, _ = add_shop(session, rt.config, "woocommerce", WOO_URL, consumer_key="ck_b", consumer_secret="cs_b",
                              settings={"consent_meta_key": WOO_CONSENT_KEY})
        return to_shop(row, rt.config)


def measure(platform: str, history: History, rt, workdir: Path, repeat: int) -> dict:
    """Parse, then import (into a fresh shop), ``repeat`` times in turn; the best time of each."""
    files = history.write_jsonl(workdir) if platform == "shopify" else None  # written once, outside the timings
    connector = connectors.get(platform)
    parse_s = import_s = float("inf")
    for _ in range(repeat):
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            shop = connect(platform, rt)
            if platform == "shopify":
                BulkShopify(rsps, DOMAIN, "shpat_bench", history, workdir, running_polls=0).files = files
            else:
                PagedWoo(rsps, WOO_URL, history)

            clear_caches()
            started = time.perf_counter()
            orders, events = parse_only(shop, connector)
            parse_s = min(parse_s, time.perf_counter() - started)

            clear_caches()
            started = time.perf_counter()
            result = importing.run(rt, shop.id, wait=True)
            import_s = min(import_s, time.perf_counter() - started)
            with rt.sessions() as session:
                customers = session.scalar(select(func.count()).select_from(CustomerRow).where(
                    CustomerRow.shop_id == shop.id))
            with rt.sessions.begin() as session:
                session.execute(delete(ShopRow).where(ShopRow.id == shop.id))
    problems = []
    if result.status != "done" or result.orders != history.orders or orders != history.orders:
        problems.append(f"{platform}: import {result.status} with {result.orders} orders, parse read {orders}")
    want = history.customers + len(history.guest_states(platform))
    if customers != want:
        problems.append(f"{platform}: {customers} customer states, expected {want}")
    return {"platform": platform, "orders": orders, "events": events, "customers": customers,
            "parse_s": round(parse_s, 6), "import_s": round(import_s, 6),
            "parse_orders_per_s": round(orders / parse_s, 1), "import_orders_per_s": round(result.orders / import_s, 1),
            "ratio": round(parse_s / import_s, 3), "problems": problems}


def default_redis() -> str:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
    return f"{url.rsplit('/', 1)[0] if url.count('/') > 2 else url}/7"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=50_000)
    ap.add_argument("--database-url", help="default: SQLite in a temporary directory")
    ap.add_argument("--redis-url", default=default_redis())
    ap.add_argument("--platform", choices=["shopify", "woocommerce", "both"], default="both")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each, in turn; the best time counts")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = args.database_url or f"sqlite:///{workdir}/import.db"
        upgrade(url)
        prefix = f"kwbench{uuid.uuid4().hex[:6]}"
        config = Config.from_env({}, redis_url=args.redis_url, database_url=url, queue=prefix,
                                 secret_keys=("bench-secret",))
        redis = Redis.from_url(args.redis_url)

        def clock() -> datetime:
            return NOW

        rt = Runtime(config=config, sessions=sessions(url), redis=redis, clock=clock)
        history = History(args.orders, NOW)
        platforms = ["shopify", "woocommerce"] if args.platform == "both" else [args.platform]
        results = [measure(p, history, rt, workdir, max(1, args.repeat)) for p in platforms]
        for key in redis.scan_iter(match=f"*{prefix}*"):
            redis.delete(key)
    for r in results:
        print(f"{r['platform']:<12} parse {r['parse_orders_per_s']:>9.1f} orders/s   import "
              f"{r['import_orders_per_s']:>9.1f} orders/s   ratio {r['ratio']:.3f}   "
              f"({r['orders']} orders, {r['events']} events, {r['customers']} customers)")
    problems = [p for r in results for p in r.pop("problems")]
    for p in problems:
        print(f"  problem: {p}")
    ratio = min(r["ratio"] for r in results)
    print(json.dumps({"ratio": ratio, "target": TARGET, "orders": args.orders, "repeat": args.repeat,
                      "database": url.split(":", 1)[0],
                      "platforms": {r["platform"]: r for r in results},
                      "pass": ratio >= TARGET and not problems}))


if __name__ == "__main__":
    main()

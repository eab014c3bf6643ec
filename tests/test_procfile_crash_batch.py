"""A worker killed at every step of a batch: nothing is lost and nothing happens twice.

`keepwell worker` runs as its own process on PostgreSQL, with a real SMTP server and the store
sandbox over HTTP. Five customers sign up, opt in and pay a VIP order (a coupon, then an
email): fifteen webhooks wait on the shop's backlog before the worker starts, so its first drain
takes them as one batch. The worker is started with KEEPWELL_CRASH_AT naming a step of the batch
(plugin.crash) and kills itself there with SIGKILL, its RQ scheduler with it. What a dead worker
leaves (the drain's lock and flag, which expire after DRAIN_TTL) is let expire, the lost drain is
armed again as the minutely tick does, and a second worker finishes. Every customer then has
exactly one VIP touch, done; the store created exactly one coupon and SMTP carried exactly one
email per customer; every event is seen once; nothing waits or was set aside.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from aiosmtpd.controller import Controller
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import func, select

from children import wait_for
from conftest import Mailbox, free_port
from live import (decisions, effects, finish, live_redis, mails_to, outside_holdout, shopify_consent, shopify_customer,
                  shopify_order, start)
from plugin import crash
from plugin.db import CustomerRow, EventSeenRow
from plugin.demo.sandbox import Server, StoreSandbox
from procfile import ProcfileWorker, procfile_worker, trouble

TOKEN = "shpat_crash"
DOMAIN = "crash-batch.myshopify.com"
VIP = "vip_gold_welcome"
CUSTOMERS = 5
HEARTBEAT_TTL = 180 + 60  # RQ's SimpleWorker: the default job timeout + 60 s


@pytest.fixture
def mailbox():
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.url = f"smtp://127.0.0.1:{port}"
    yield box
    controller.stop()


@pytest.fixture
def sandbox():
    box = StoreSandbox(TOKEN, "ck_crash", "cs_crash")
    server = Server(box).start()
    box.url = server.url
    yield box
    server.stop()


@pytest.fixture
def live(redis_server, postgres_url, mailbox):
    live = start(live_redis(redis_server), postgres_url, mailbox)
    yield live
    finish(live)


def queue_the_batch(live, sandbox) -> tuple[str, dict[str, str]]:
    """The shop and its fifteen webhooks on the backlog; customer id -> email."""
    shop_id, _ = live.add_shop("shopify", DOMAIN, access_token=TOKEN, api_url=sandbox.url, settings={"name": "Crash"})
    customers, next_id = {}, 7421852987654321000
    now = datetime.now(timezone.utc)
    for i in range(CUSTOMERS):
        cid = outside_holdout(shop_id, next_id, VIP)
        next_id = int(cid) + 1
        email, name = f"vip{i}@example.com", f"Vip{i}"
        record = shopify_customer(cid, now, email=email, first_name=name)
        sandbox.add_customer("shopify", cid, record)
        sandbox.add_order("shopify", str(6_000_001 + i), cid)
        for topic, payload in (("customers/create", record),
                               ("customers_email_marketing_consent/update", shopify_consent(cid, now, email=email)),
                               ("orders/paid", shopify_order(6_000_001 + i, cid, now, email=email, first_name=name,
                                                             total="540.00"))):
            r = live.post_shopify(topic, payload, DOMAIN)
            assert r.status_code in (200, 202), (r.status_code, r.data)
        customers[cid] = email
    assert live.rt.handoff.pending(shop_id) == 3 * CUSTOMERS
    return shop_id, customers


def let_the_dead_drain_expire(live, shop_id: str) -> None:
    """RQ's view once the heartbeat TTL has passed (the drain job was abandoned: it is retried
    after its first interval), and the dead drain's lock and flag run out (DRAIN_TTL)."""
    q = live.rt.queue
    StartedJobRegistry(queue=q).cleanup(timestamp=time.time() + HEARTBEAT_TTL + 1)
    scheduled = ScheduledJobRegistry(queue=q)
    retries = [j for j in scheduled.get_job_ids() if q.fetch_job(j).func_name == "plugin.jobs.drain"]
    assert len(retries) == 1, retries
    scheduled.requeue(retries[0])  # its 5 s retry interval is over
    k = live.rt.handoff.keys(shop_id)
    live.rt.redis.delete(k.draining, f"{k.draining}:lock",
                         *live.rt.redis.scan_iter(match=f"{live.config.queue}:{{{shop_id}}}:exec:*"))


@pytest.mark.parametrize("point", crash.POINTS)
def test_a_worker_killed_at_any_step_of_a_batch_loses_nothing_and_repeats_nothing(live, sandbox, mailbox, tmp_path,
                                                                                  point):
    shop_id, customers = queue_the_batch(live, sandbox)
    doomed = ProcfileWorker(live, tmp_path / "worker-1.log", env={"KEEPWELL_CRASH_AT": point})
    try:
        wait_for(lambda: doomed.proc.poll() is not None, f"the worker to kill itself at {point!r}", timeout_s=120)
        assert doomed.proc.returncode == -9, doomed.output()
    finally:
        doomed.stop()
    time.sleep(0.2)
    let_the_dead_drain_expire(live, shop_id)

    with procfile_worker(live, tmp_path / "worker-2.log") as worker:
        worker.wait_idle([shop_id])
        for email in customers.values():
            wait_for(lambda: mails_to(live, email), f"the VIP email to {email}", check=worker.check)
    for cid, email in customers.items():
        touches = [d for d in decisions(live, VIP, cid) if d.kind == "touch"]
        assert len(touches) == 1 and touches[0].status == "done", (cid, touches)
        assert {e.status for e in effects(live, touches[0]).values()} == {"done"}
        assert len(mails_to(live, email)) == 1, email
    codes = [c["code"] for c in sandbox.coupons]
    assert len(codes) == CUSTOMERS == len(set(codes)), codes
    with live.rt.sessions() as session:
        seen = session.scalar(select(func.count()).select_from(EventSeenRow).where(EventSeenRow.shop_id == shop_id))
        states = {r.customer_id: r.state for r in session.scalars(select(CustomerRow).where(
            CustomerRow.shop_id == shop_id))}
    assert seen == 3 * CUSTOMERS
    assert set(states) == set(customers) and all(len(s["orders"]) == 1 and s["orders"][0]["paid"] for s in states.values())
    assert live.rt.handoff.pending(shop_id) == 0 and trouble(live, [shop_id]) == {}

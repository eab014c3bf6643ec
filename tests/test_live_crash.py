"""A worker killed in the middle of a coupon call, end to end with real processes.

``keepwell worker`` runs as its own process group against this test's Redis, database and SMTP
server. The store is a small real HTTP server (a WooCommerce REST API as far as coupons and
customers go) that creates the coupon at once but answers the first create slowly; while that
call is in flight the whole worker (its process and RQ's scheduler process) gets SIGKILL, as when a
machine dies. A second worker then finishes the job. Exactly one coupon exists in the store, exactly one
email was delivered, and the ledger says done.

Recovery runs on timers that the test moves forward instead of waiting for them:
- the drain decided and recorded the order before the crash; the touch was in the shop's effect
  runner's ``running`` list (plugin/effects/line.py). RQ sees the runner job abandoned once its
  heartbeat is older than the heartbeat TTL (for a worker that runs jobs in its own process: the
  job's timeout, 180 s by default, plus 60 s): the test runs StartedJobRegistry.cleanup() with
  that moment's timestamp;
- the dead runner's lock and armed flag, its slot and the decision's execution lock expire after
  RUNNER_TTL_S / LEASE_S / 300 s: the test lets them expire (deletes them) rather than wait five
  minutes, then arms the shop's runners as the tick does every minute.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from rq.registry import StartedJobRegistry
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

import children
from children import WAIT_S
from plugin.db import DecisionRow, EffectRow
from plugin.effects import line as effect_line
from live import backlog, gmt, running, woo_customer, woo_order, woo_stored_coupon

ROOT = Path(__file__).resolve().parents[1]
KEEPWELL = ROOT / ".venv" / "bin" / "keepwell"
HEARTBEAT_TTL = 180 + 60  # RQ's SimpleWorker: the default job timeout + 60 s


class SlowStore:
    """WooCommerce's coupons and customers endpoints on a real HTTP server. A create stores the
    coupon before answering (the coupon exists even if the caller dies waiting); the first create's
    answer is held until ``release`` is set. Codes are lower-cased and unique, as in WooCommerce."""

    def __init__(self):
        self.coupons: dict[str, dict] = {}
        self.posts: list[str] = []  # every code a POST /coupons asked for
        self.created: list[str] = []  # every code a POST /coupons created
        self.customers = {}
        self.puts = 0
        self.in_flight = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self._thread.join(5)

    @staticmethod
    def _json(status, body):
        return Response(json.dumps(body), status=status, mimetype="application/json")

    @Request.application
    def app(self, request: Request):
        # plain HTTP: WooCommerce wants one-legged OAuth 1.0a in the query string
        assert request.args.get("oauth_signature") and request.args.get("oauth_consumer_key") == "ck_crash"
        path = request.path.removeprefix("/wp-json/wc/v3/")
        if path == "coupons" and request.method == "POST":
            body = request.get_json()
            code = body["code"].lower()
            with self._lock:
                self.posts.append(code)
                first = len(self.posts) == 1
                if code in self.coupons:
                    return self._json(400, {"code": "woocommerce_rest_coupon_code_already_exists",
                                            "message": "The coupon code already exists", "data": {"status": 400}})
                coupon = woo_stored_coupon(body, 719 + len(self.coupons))
                self.coupons[code] = coupon
                self.created.append(code)
            if first:
                self.in_flight.set()
                self.release.wait(30)  # the caller is killed meanwhile
            return self._json(201, coupon)
        if path == "coupons" and request.method == "GET":
            return self._json(200, [c for c in self.coupons.values() if c["code"] == request.args.get("code", "").lower()])
        if path == "products" and request.method == "GET":  # an order's products, for their categories
            return self._json(200, [{"id": int(i), "name": "Woo Single #1", "categories": [], "tags": []}
                                    for i in request.args.get("include", "").split(",") if i])
        if path.startswith("customers/") and request.method == "GET":
            return self._json(200, self.customers[path.split("/")[1]])
        if path.startswith("customers/") and request.method == "PUT":
            self.puts += 1
            customer = self.customers[path.split("/")[1]]
            customer["meta_data"] += [dict(m, id=900 + i) for i, m in enumerate(request.get_json()["meta_data"])]
            return self._json(200, customer)
        return self._json(404, {"code": "rest_no_route", "message": "No route was found matching the URL and request method.",
                                "data": {"status": 404}})


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        yield live


def worker(live, tmp_path: Path, name: str, *args: str) -> subprocess.Popen:
    c = live.config
    env = {**os.environ, "REDIS_URL": c.redis_url, "DATABASE_URL": c.database_url, "SMTP_URL": c.smtp_url,
           "KEEPWELL_QUEUE": c.queue, "KEEPWELL_SECRET_KEY": ",".join(c.secret_keys), "KEEPWELL_APP_URL": c.app_url,
           "KEEPWELL_MAIL_FROM": c.mail_from, "SHOPIFY_API_SECRET": ",".join(c.shopify_api_secrets),
           "KEEPWELL_ALLOW_PRIVATE_STORES": "1",  # SlowStore listens on loopback
           "PYTHONPATH": str(ROOT)}  # the code under test, whatever the venv was installed from
    return children.start([str(KEEPWELL), "worker", *args], cwd=ROOT, env=env, log=tmp_path / f"{name}.log")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc), whatever process group it put itself in."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_machine(proc: subprocess.Popen) -> None:
    """SIGKILL the worker and its scheduler process at once: the machine died."""
    victims = [proc.pid, *descendants(proc.pid)]
    assert len(victims) >= 2, "no scheduler process under the worker"
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    children.stop(proc, grace_s=10)
    for pid in victims[1:]:  # reaped by init once their parent is gone; wait until they are
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]:
                break
            time.sleep(0.02)


def log_of(tmp_path: Path, name: str) -> str:
    return (tmp_path / f"{name}.log").read_text(errors="replace")[-4000:]


def test_worker_killed_mid_coupon_call_gives_one_coupon_and_one_email(live, tmp_path):
    started = time.monotonic()
    with SlowStore() as store:
        shop_id, secret = live.add_shop("woocommerce", store.url, consumer_key="ck_crash", consumer_secret="cs_crash",
                                        settings={"consent_meta_key": "_keepwell_marketing_opt_in"})
        store.customers["25"] = woo_customer(25)
        # a first order of 520 USD: the gold tier's tag, then its coupon and email, at once
        order = woo_order(727, 25, total="520.00", modified=gmt(datetime.now(timezone.utc)))
        assert live.post_woocommerce(shop_id, secret, "order.created", order).status_code == 202

        first = worker(live, tmp_path, "worker-1")
        try:
            assert store.in_flight.wait(WAIT_S), log_of(tmp_path, "worker-1")
        finally:
            kill_machine(first)  # the worker and its scheduler, mid-request
        (gold,) = live.rows(DecisionRow, rule_id="vip_gold_welcome")
        coupon, email = sorted(live.rows(EffectRow, decision_key=gold.key), key=lambda e: e.id)
        assert (gold.status, coupon.status, email.status) == ("pending", "pending", "pending")
        assert len(store.coupons) == 1 and live.smtp.messages == []  # created in the store, never confirmed
        # The drain decided and recorded the order and was done; the touch was one of the effect
        # runner's items in flight (the gold tier's tag touch runs beside it).
        assert backlog(live, shop_id) == 0
        line = effect_line.keys(live.rt, shop_id)
        assert gold.key.encode() in live.rt.redis.lrange(line.running(0), 0, -1)

        # RQ's view once the heartbeat TTL has passed: the runner job was abandoned (it has no retry:
        # the touch it held is what matters, and the next runner takes it back).
        q = live.rt.queue
        started_reg = StartedJobRegistry(queue=q)
        (abandoned,) = started_reg.get_job_ids(cleanup=False)
        assert q.fetch_job(abandoned).func_name == "plugin.jobs.run_effects"
        started_reg.cleanup(timestamp=time.time() + HEARTBEAT_TTL + 1)
        # The dead runner's locks run out (RUNNER_TTL_S): its lock, its armed flag, the exec lock,
        # the slot it held (a lease).
        locks = [line.lock(0), line.armed(0), *live.rt.redis.scan_iter(match=f"{live.config.queue}:{{{shop_id}}}:exec:*")]
        assert all(live.rt.redis.ttl(k) > 0 for k in locks), locks
        live.rt.redis.delete(*locks, line.slots)
        assert effect_line.ensure_runners(live.rt, shop_id) == 1  # what the next tick does for every shop

        second = worker(live, tmp_path, "worker-2", "--burst")
        assert second.wait(WAIT_S) == 0, log_of(tmp_path, "worker-2")

    (gold,) = live.rows(DecisionRow, rule_id="vip_gold_welcome")
    assert gold.status == "done", (gold.status, gold.error, log_of(tmp_path, "worker-2"))
    coupon, email = sorted(live.rows(EffectRow, decision_key=gold.key), key=lambda e: e.id)
    assert coupon.status == email.status == "done"
    assert store.posts == [coupon.coupon_code.lower()] * 2  # asked twice, for the same code ...
    assert Counter(store.created) == {coupon.coupon_code.lower(): 1}  # ... and it was created once
    assert coupon.store_id == str(store.coupons[coupon.coupon_code.lower()]["id"])  # found by its code
    assert len(live.smtp.messages) == 1, [(m["Subject"], m["Message-ID"], m["To"]) for m in live.smtp.messages]
    (msg,) = live.smtp.messages
    assert msg["To"].addresses[0].addr_spec == "john.doe@example.com" and coupon.coupon_code in msg.get_body(("plain",)).get_content()
    assert email.message_id == msg["Message-ID"]
    assert store.puts == 1  # the tag went through before the crash and was not written again
    assert backlog(live, shop_id) == 0
    assert time.monotonic() - started < HEARTBEAT_TTL  # recovered without waiting for RQ's real timers

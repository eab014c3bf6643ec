"""A slow store API must not slow deciding: decisions/s and coupon delay with a store that takes 200 ms.

One Shopify shop, four `keepwell worker` processes (the Procfile's command, configured by the
environment), PostgreSQL, Redis, an SMTP sink, and the demo's store sandbox (Shopify GraphQL on
127.0.0.1) behind a wrapper that holds every answer ``--latency-ms`` (200) or answers at once.
Every order is a paid first order of 520 USD of a new customer who accepted marketing, through
the shipped rule packs: the VIP gold tier (a tag in the store) and its welcome (a coupon in the
store and an email).

- decisions: ``--orders`` orders are put on the shop's backlog at once (Handoff.push, as the
  edge does); the clock runs until every one is decided and recorded (its order in the ledger's
  order index). decisions/s with the slow store and with the instant store, a fresh shop per
  round, alternating, ``--rounds`` (3) each; ratio = median slow / median instant (target >= 0.8).
- burst: ``--rate`` (50) orders/s for ``--burst-s`` seconds (default 20; ``--full`` for the
  issue's 10 minutes) with the slow store; the delay from each order's push to its coupon created
  (the coupon effect done); p95 must stay under 60 s.

``--code DIR`` runs the workers on another checkout's code (e.g. ``git archive main`` unpacked),
to measure before and after in the same way. The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from plugin.config import Config  # noqa: E402
from plugin.db import DecisionRow, EffectRow, OrderIndexRow, sessions, upgrade  # noqa: E402
from plugin.demo.sandbox import Server, StoreSandbox  # noqa: E402
from plugin.handoff import Envelope, Handoff  # noqa: E402
from plugin.shops import add_shop  # noqa: E402

ORDER = ROOT / "tests" / "fixtures" / "shopify" / "order_paid.json"
TOKEN, SECRET = "shpat_latency", "shpss_latency"
TARGETS = {"ratio": 0.8, "p95_coupon_delay_s": 60.0}


def services() -> tuple[str, str]:
    """(Redis URL, PostgreSQL admin URL): from the environment, else what scripts/services.sh finds or starts."""
    redis_url, pg = os.environ.get("REDIS_URL"), os.environ.get("TEST_POSTGRES_URL")
    if not (redis_url and pg):
        out = subprocess.run(["bash", str(ROOT / "scripts" / "services.sh")], capture_output=True, text=True, check=True)
        found = dict(line[len("export "):].split("=", 1) for line in out.stdout.splitlines() if line.startswith("export "))
        redis_url = redis_url or found["REDIS_URL"].strip("'")
        pg = pg or found["TEST_POSTGRES_URL"].strip("'")
    return redis_url, pg


class Latency:
    """WSGI wrapper: every answer of the sandbox waits ``seconds`` first (a store far away and busy)."""

    def __init__(self, app):
        self.app, self.seconds = app, 0.0

    def __call__(self, environ, start_response):
        if self.seconds:
            time.sleep(self.seconds)
        return self.app(environ, start_response)


def order(order_id: int, customer_id: int) -> dict:
    o = json.loads(ORDER.read_text())
    at = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    email = f"buyer{customer_id}@example.com"
    o.update(id=order_id, admin_graphql_api_id=f"gid://shopify/Order/{order_id}", email=email, contact_email=email,
             total_price="520.00", current_total_price="520.00", subtotal_price="520.00", total_discounts="0.00",
             buyer_accepts_marketing=True, created_at=at, processed_at=at, updated_at=at, discount_codes=[],
             name=f"#{order_id % 100000}", order_number=order_id % 100000)
    o["total_price_set"] = {s: {"amount": "520.00", "currency_code": o.get("currency", "USD")}
                            for s in ("shop_money", "presentment_money")}
    o["customer"] = copy.deepcopy(o["customer"])
    o["customer"].update(id=customer_id, admin_graphql_api_id=f"gid://shopify/Customer/{customer_id}", email=email,
                         first_name="Noa", updated_at=at)
    return o


class Bench:
    def __init__(self, args):
        self.args = args
        redis_url, self.pg_admin = services()
        base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
        self.redis_url = f"{base}/{args.redis_db}"
        self.queue = f"kwlat{uuid.uuid4().hex[:8]}"
        self.tmp = Path(tempfile.mkdtemp(prefix="keepwell-latency-"))
        self.db_name = f"keepwell_latency_{uuid.uuid4().hex[:8]}"
        self.procs: list[subprocess.Popen] = []
        self.customer = 7421852987654321000

    def __enter__(self):
        import psycopg
        from aiosmtpd.controller import Controller

        with psycopg.connect(self.pg_admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        self.database_url = f"{self.pg_admin.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+psycopg://')}/{self.db_name}"
        upgrade(self.database_url)
        self.sessions = sessions(self.database_url)
        self.redis = Redis.from_url(self.redis_url)
        self.config = Config(redis_url=self.redis_url, database_url=self.database_url, queue=self.queue,
                             secret_keys=("latency-bench-secret",), shopify_api_secrets=(SECRET,),
                             allow_private_stores=True)
        self.handoff = Handoff(self.redis, self.queue)
        self.sandbox = StoreSandbox(TOKEN, "ck_latency", "cs_latency")
        self.sandbox.app.wsgi_app = self.latency = Latency(self.sandbox.app.wsgi_app)
        self.server = Server(self.sandbox).start()

        class Sink:
            async def handle_DATA(self, server, session, envelope):
                return "250 OK"

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.smtp = Controller(Sink(), hostname="127.0.0.1", port=port)
        self.smtp.start()
        smtp_url = f"smtp://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "KEEPWELL_", "SHOPIFY_"))}
        env.update(DATABASE_URL=self.database_url, REDIS_URL=self.redis_url, SMTP_URL=smtp_url, KEEPWELL_QUEUE=self.queue,
                   KEEPWELL_SECRET_KEY="latency-bench-secret", KEEPWELL_APP_URL="https://keepwell.test",
                   KEEPWELL_MAIL_FROM="Keepwell Bench <shop@keepwell.test>", SHOPIFY_API_SECRET=SECRET,
                   KEEPWELL_ALLOW_PRIVATE_STORES="1", PYTHONPATH=str(self.args.code))
        keepwell = Path(sys.executable).with_name("keepwell")
        for i in range(self.args.workers):
            log = (self.tmp / f"worker-{i}.log").open("w")
            self.procs.append(subprocess.Popen([str(keepwell), "worker"], env=env, cwd=self.args.code, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True))
        from rq import Worker

        deadline = time.monotonic() + 60
        while len(Worker.all(queue=self.handoff.queue)) < self.args.workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                raise SystemExit(f"the workers did not start; see {self.tmp}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        self.server.stop()
        self.smtp.stop()
        doomed = list(self.redis.scan_iter(match=f"*{self.queue}*", count=1000))
        if doomed:
            self.redis.delete(*doomed)
        self.sessions.kw["bind"].dispose()
        import psycopg

        with psycopg.connect(self.pg_admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')

    # --- a round ---------------------------------------------------------------------------

    def new_shop(self) -> str:
        with self.sessions.begin() as session:
            row, _ = add_shop(session, self.config, "shopify", f"lat-{uuid.uuid4().hex[:8]}.myshopify.com",
                              access_token=TOKEN, api_url=self.server.url, settings={"name": "Latency Coffee"})
            return row.id

    def push(self, shop_id: str) -> tuple[int, float]:
        """One paid order of a new customer on the shop's backlog; (customer id, when)."""
        self.customer += 1000
        cid = self.customer
        o = order(cid // 1000 + 5_000_000_000, cid)
        self.sandbox.add_customer("shopify", str(cid), o["customer"])  # the store knows its customer (tags)
        body = json.dumps(o)
        at = time.time()
        self.handoff.push(shop_id, Envelope("shopify", "orders/paid", uuid.uuid4().hex, at, body))
        return cid, at

    def decided(self, shop_id: str) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(OrderIndexRow).where(OrderIndexRow.shop_id == shop_id))

    def pending(self, shop_id: str) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(DecisionRow).where(
                DecisionRow.shop_id == shop_id, DecisionRow.status == "pending"))

    def wait(self, what: str, done, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}; worker logs in {self.tmp}")
            if any(p.poll() is not None for p in self.procs):
                raise SystemExit(f"a worker died; see {self.tmp}")
            time.sleep(0.05)
        return time.time()

    def decisions_round(self, latency_s: float) -> float:
        """Decisions/s of a backlog of --orders paid orders with the store answering in ``latency_s``."""
        self.latency.seconds = latency_s
        shop_id = self.new_shop()
        started = time.time()
        for _ in range(self.args.orders):
            self.push(shop_id)
        ended = self.wait("the decisions", lambda: self.decided(shop_id) >= self.args.orders, 600)
        self.wait("the effects", lambda: self.pending(shop_id) == 0, 900)  # no round runs into the next one
        return self.args.orders / (ended - started)

    def burst(self, latency_s: float, rate: float, seconds: float) -> dict:
        """``rate`` orders/s for ``seconds``; the delays from each order to its coupon created."""
        self.latency.seconds = latency_s
        shop_id = self.new_shop()
        pushed: dict[str, float] = {}
        n = int(rate * seconds)
        t0 = time.monotonic()
        for i in range(n):
            ahead = t0 + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            cid, at = self.push(shop_id)
            pushed[str(cid)] = at
        self.wait("the burst's decisions", lambda: self.decided(shop_id) >= n, 3600)
        self.wait("the burst's effects", lambda: self.pending(shop_id) == 0, 3600)
        with self.sessions() as s:
            done = s.execute(select(EffectRow.customer_id, EffectRow.updated_at).where(
                EffectRow.shop_id == shop_id, EffectRow.type == "coupon", EffectRow.status == "done")).all()
        delays = sorted(at.timestamp() - pushed[cid] for cid, at in done)
        q = statistics.quantiles(delays, n=100) if len(delays) > 1 else delays * 99
        return {"orders": n, "coupons": len(delays), "p50_s": round(q[49], 2), "p95_s": round(q[94], 2),
                "max_s": round(delays[-1], 2) if delays else None}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--orders", type=int, default=200, help="orders per decisions round")
    p.add_argument("--latency-ms", type=float, default=200.0)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--rate", type=float, default=50.0, help="orders/s of the burst")
    p.add_argument("--burst-s", type=float, default=20.0)
    p.add_argument("--full", action="store_true", help="the issue's 10-minute burst")
    p.add_argument("--no-burst", action="store_true")
    p.add_argument("--redis-db", type=int, default=int(os.environ.get("KEEPWELL_TEST_REDIS_DB", "14")))
    p.add_argument("--code", type=Path, default=ROOT, help="the checkout whose code the workers run")
    args = p.parse_args(argv)
    args.code = args.code.resolve()
    slow_s = args.latency_ms / 1000
    out: dict = {"workers": args.workers, "latency_ms": args.latency_ms, "orders": args.orders, "code": str(args.code)}
    with Bench(args) as bench:
        instant, slow = [], []
        for r in range(args.rounds):
            instant.append(bench.decisions_round(0.0))
            slow.append(bench.decisions_round(slow_s))
            print(f"round {r + 1}: decisions/s instant store {instant[-1]:.1f}, "
                  f"{args.latency_ms:.0f} ms store {slow[-1]:.1f}", flush=True)
        out.update(instant_decisions_per_s=round(statistics.median(instant), 1),
                   slow_decisions_per_s=round(statistics.median(slow), 1),
                   ratio=round(statistics.median(slow) / statistics.median(instant), 3))
        if not args.no_burst:
            seconds = 600.0 if args.full else args.burst_s
            burst = bench.burst(slow_s, args.rate, seconds)
            print(f"burst: {args.rate:g} orders/s for {seconds:g} s, {args.latency_ms:.0f} ms store: coupon delay "
                  f"p50 {burst['p50_s']} s, p95 {burst['p95_s']} s, max {burst['max_s']} s "
                  f"({burst['coupons']} coupons)", flush=True)
            out.update(burst_s=seconds, burst_rate=args.rate, coupons=burst["coupons"],
                       p50_coupon_delay_s=burst["p50_s"], p95_coupon_delay_s=burst["p95_s"],
                       max_coupon_delay_s=burst["max_s"])
        out["sandbox_calls"] = {f"{k[0]} {k[1]}": v for k, v in bench.sandbox.calls.items()}
    out["targets"] = TARGETS
    out["ok"] = out["ratio"] >= TARGETS["ratio"] and out.get("p95_coupon_delay_s", 0) < TARGETS["p95_coupon_delay_s"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()

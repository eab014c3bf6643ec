"""Webhook latency through an 8-second Redis stall: the edge failing fast against waiting (as before).

A private redis-server (loopback, free port) and the Procfile's web process (gunicorn, sync
workers) serve the real app on a SQLite database with one Shopify shop. Signed orders/paid
webhooks, each with its own X-Shopify-Webhook-Id, are sent open-loop at ``--rate`` per second
for ``--duration`` seconds (a request's latency counts from when it was due, so a queue behind a
held worker shows). ``--stall-at`` seconds in, another connection sends ``DEBUG SLEEP 8``:
Redis answers nothing for 8 s. Afterwards every delivery answered 503 (or not at all) is sent
again, as Shopify retries, until it is accepted; the shop's backlog must then hold every
delivery exactly once.

Each round runs both settings, interleaved: KEEPWELL_EDGE_REDIS_TIMEOUT=0 (wait for Redis as
long as redis-py's default socket timeout, 5 s in redis-py 8: the client as it was before) and the default 1 s (503 + Retry-After, then 503 at once
for a 2 s cooldown). ratio = p99 before / p99 after (medians over the rounds); it passes when
the fail-fast p99 is under Shopify's 5 s and nothing is lost.

The last line printed is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402

from connectors.shopify.signature import signature  # noqa: E402

DOMAIN = "stall-bench.myshopify.com"
SHOPIFY_LIMIT_S = 5.0
SAMPLE = ROOT / "tests" / "fixtures" / "shopify" / "webhooks" / "2026-04__orders_paid.payload.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet (refused, reset, redis-py's own errors)
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f}s")


class RedisServer:
    """A private redis-server on a free loopback port, for as long as the ``with`` lasts."""

    def __init__(self, tmp: Path):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(tmp),
                                      "--enable-debug-command", "local"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: Redis.from_url(self.url).ping(), 10, "redis-server")

    def stall(self, seconds: float) -> "Stall":
        """Make Redis answer nothing for ``seconds`` (DEBUG SLEEP from a connection of its own)."""
        return Stall(self.url, seconds)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Stall(threading.Thread):
    """DEBUG SLEEP on its own connection; ``join()`` says how long Redis really slept."""

    def __init__(self, url: str, seconds: float):
        super().__init__(daemon=True)
        self.client, self.seconds, self.slept = Redis.from_url(url, socket_timeout=seconds + 10), seconds, 0.0
        self.error: Exception | None = None
        self.start()

    def run(self) -> None:
        t = time.monotonic()
        try:
            self.client.execute_command("DEBUG", "SLEEP", self.seconds)
        except Exception as exc:  # noqa: BLE001 - reported by join()
            self.error = exc
        self.slept = time.monotonic() - t

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.slept < self.seconds * 0.95:
            raise RuntimeError(f"Redis did not stall: DEBUG SLEEP {self.seconds} took {self.slept:.2f}s ({self.error!r})")


class Web:
    """The Procfile's web process (gunicorn 'plugin.app:create_app()', sync workers) on a free port."""

    def __init__(self, env: dict, log: Path, workers: int = 2):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        cmd = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{self.port}",
               "--timeout", "30", "--log-level", "warning", "plugin.app:create_app()"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                                     stdout=log.open("wb"), stderr=subprocess.STDOUT)
        wait_for(lambda: urllib.request.urlopen(self.base + "/health", timeout=1).status == 200, 30, "gunicorn")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def setup_shop(db_url: str, secret: str) -> str:
    from plugin.config import Config
    from plugin.db import sessions, upgrade
    from plugin.shops import add_shop

    upgrade(db_url)
    with sessions(db_url).begin() as session:
        row, _ = add_shop(session, Config(database_url=db_url), "shopify", DOMAIN, access_token="shpat_stall",
                          webhook_secret=secret)
        return row.id


def order_body(n: int) -> bytes:
    o = json.loads(SAMPLE.read_text(encoding="utf-8"))
    o.update(id=5_300_000_000_000 + n, financial_status="paid", cancelled_at=None, cancel_reason=None)
    return json.dumps(o, separators=(",", ":")).encode()


def deliver(base: str, secret: str, delivery: str, body: bytes) -> tuple[int, float, str | None]:
    """POST one signed orders/paid delivery; (status, seconds, Retry-After). 0: no answer within 30 s."""
    headers = {"Content-Type": "application/json", "X-Shopify-Topic": "orders/paid", "X-Shopify-Shop-Domain": DOMAIN,
               "X-Shopify-Webhook-Id": delivery, "X-Shopify-Event-Id": delivery,
               "X-Shopify-Hmac-Sha256": signature(secret, body)}
    t = time.monotonic()
    req = urllib.request.Request(base + "/webhooks/shopify", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, time.monotonic() - t, None
    except urllib.error.HTTPError as exc:
        return exc.code, time.monotonic() - t, exc.headers.get("Retry-After")
    except OSError:
        return 0, time.monotonic() - t, None


def load(base: str, secret: str, redis: RedisServer, rate: float, duration: float, stall_at: float,
         stall_s: float = 8.0) -> dict:
    """Open-loop load with a stall; returns latencies (from when each request was due), statuses,
    and the deliveries to send again."""
    body = order_body(1)
    results: list[tuple[str, int, float, str | None]] = []
    lock = threading.Lock()
    start = time.monotonic()

    def one(i: int, due: float) -> None:
        delivery = f"stall-{uuid.uuid4()}"
        status, _, retry_after = deliver(base, secret, delivery, body)
        with lock:
            results.append((delivery, status, time.monotonic() - due, retry_after))

    n = int(rate * duration)
    stalled = None
    with ThreadPoolExecutor(max_workers=256) as pool:
        for i in range(n):
            due = start + i / rate
            if stalled is None and due - start >= stall_at:
                stalled = redis.stall(stall_s)
            time.sleep(max(0.0, due - time.monotonic()))
            pool.submit(one, i, due)
    if stalled is not None:
        stalled.join()
    # the store delivers again what did not get a 2xx
    again = [d for d, s, _, _ in results if not 200 <= s < 300]
    for delivery in again:
        for _ in range(10):
            status, _, _ = deliver(base, secret, delivery, body)
            if 200 <= status < 300:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"delivery {delivery} was never accepted")
    latencies = sorted(lat for _, _, lat, _ in results)
    statuses: dict[str, int] = {}
    for _, s, _, _ in results:
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    return {"requests": len(results), "deliveries": {d for d, _, _, _ in results}, "statuses": statuses,
            "p50": latencies[len(latencies) // 2], "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "max": latencies[-1], "over_limit": sum(lat > SHOPIFY_LIMIT_S for lat in latencies) / len(latencies),
            "retry_after": sorted({ra for _, s, _, ra in results if s == 503}), "sent_again": len(again)}


def backlog_deliveries(redis_url: str, shop_id: str) -> list[str]:
    from plugin.handoff import Envelope, Keys

    r = Redis.from_url(redis_url)
    return [Envelope.decode(raw).key for raw in r.lrange(Keys("keepwell", shop_id).backlog, 0, -1)]


def round_(tmp: Path, timeout: str, args) -> dict:
    secret = f"shpss_stall_{uuid.uuid4().hex}"
    redis = RedisServer(tmp)
    db_url = f"sqlite:///{tmp}/stall-{uuid.uuid4().hex[:8]}.db"
    shop_id = setup_shop(db_url, secret)
    env = {"REDIS_URL": redis.url, "DATABASE_URL": db_url, "SHOPIFY_API_SECRET": secret,
           "KEEPWELL_EDGE_REDIS_TIMEOUT": timeout, "KEEPWELL_QUEUE": "keepwell"}
    web = None
    try:
        web = Web(env, tmp / "gunicorn.log", args.workers)
        r = load(web.base, secret, redis, args.rate, args.duration, args.stall_at)
        keys = backlog_deliveries(redis.url, shop_id)
        r["lost"] = len(r["deliveries"] - set(keys))
        r["duplicated"] = len(keys) - len(set(keys))
        del r["deliveries"]
        return r
    finally:
        if web is not None:
            web.close()
        redis.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=40.0, help="webhooks per second")
    ap.add_argument("--duration", type=float, default=14.0, help="seconds of load")
    ap.add_argument("--stall-at", type=float, default=3.0, help="seconds into the load when Redis stalls for 8 s")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers (the Procfile's default: 2)")
    ap.add_argument("--only-after", action="store_true", help="only the fail-fast setting (tests)")
    args = ap.parse_args(argv)
    settings = (("after", "1.0"),) if args.only_after else (("before", "0"), ("after", "1.0"))
    runs: dict[str, list[dict]] = {name: [] for name, _ in settings}
    with tempfile.TemporaryDirectory(prefix="keepwell-stall-") as tmp:
        for n in range(args.rounds):
            for name, timeout in settings:
                r = round_(Path(tmp), timeout, args)
                runs[name].append(r)
                print(f"round {n + 1} {name:<6} {r['requests']} requests: p50 {r['p50'] * 1000:.0f} ms, "
                      f"p99 {r['p99'] * 1000:.0f} ms, max {r['max'] * 1000:.0f} ms, over 5 s {r['over_limit']:.1%}, "
                      f"answers {r['statuses']}, sent again {r['sent_again']}, lost {r['lost']}, "
                      f"duplicated {r['duplicated']}", flush=True)
    p99 = {k: statistics.median(r["p99"] for r in v) for k, v in runs.items()}
    over = {k: statistics.median(r["over_limit"] for r in v) for k, v in runs.items()}
    lost = sum(r["lost"] + r["duplicated"] for v in runs.values() for r in v)
    before = p99.get("before")
    print(json.dumps({
        "rate": args.rate, "duration_s": args.duration, "stall_s": 8, "rounds": args.rounds,
        "p99_ms_before": round(before * 1000) if before is not None else None,
        "p99_ms_after": round(p99["after"] * 1000),
        "max_ms_after": round(max(r["max"] for r in runs["after"]) * 1000),
        "over_5s_before": round(over["before"], 3) if before is not None else None,
        "over_5s_after": round(over["after"], 3),
        "answers_after": runs["after"][-1]["statuses"],
        "retry_after": sorted({ra for r in runs["after"] for ra in r["retry_after"]}),
        "lost_or_duplicated": lost,
        "ratio": round(before / p99["after"], 2) if before is not None else None,
        "pass": p99["after"] < SHOPIFY_LIMIT_S and lost == 0,
    }))


if __name__ == "__main__":
    main()

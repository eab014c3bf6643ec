"""Webhooks/s of Keepwell's real endpoint under gunicorn, beside two references in the same server.

One gunicorn (same worker class and count for all three) serves bench/ingest_app.py:

- keepwell: POST /webhooks/shopify, the real edge: size check, cached shop lookup, HMAC,
  JSON parse, delivery key, then the hand-off (dedupe + backlog append in one Redis call)
- minimal:  POST /bench/minimal, HMAC check then one LPUSH of the raw body: the floor any
            durable hand-off must pay
- trivial:  POST /bench/trivial, read the body, answer 200: the ceiling of the stack

Load comes from wrk (Debian package `wrk`) with a Lua script that sends signed Shopify
orders/paid webhooks of a registered demo shop: a few hundred distinct orders, compact JSON as
Shopify sends it, each request with its own X-Shopify-Webhook-Id and X-Shopify-Event-Id, so
deduplication never short-circuits. All three endpoints get the same requests, interleaved
(K, M, T, K, M, T, ...) so machine noise hits them alike; each endpoint's best run counts and
medians are shown. wrk shares the machine with gunicorn and Redis.

Targets: keepwell >= 0.8 of the minimal hand-off's requests/s, and keepwell's p99 latency under
50 ms at saturation (median of its runs). The shop backlog and the minimal list are emptied
by a background thread while the load runs (they would otherwise fill Redis); what it removes
is counted, so the table also shows how many webhooks were durably accepted.

The last line printed is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
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
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402
from rq import Queue  # noqa: E402

from connectors.shopify.signature import signature  # noqa: E402
from plugin.db import sessions, upgrade  # noqa: E402
from plugin.handoff import Keys  # noqa: E402
from plugin.shops import add_shop  # noqa: E402

SAMPLE = ROOT / "tests" / "fixtures" / "shopify" / "webhooks" / "2026-04__orders_paid.payload.json"
DOMAIN = "bench-demo.myshopify.com"
TARGETS = {"ratio": 0.8, "p99_ms": 50.0}
ENDPOINTS = {"keepwell": "/webhooks/shopify", "minimal": "/bench/minimal", "trivial": "/bench/trivial"}
LABELS = {"keepwell": "keepwell edge", "minimal": "minimal hand-off", "trivial": "trivial 200"}


# --- the requests ------------------------------------------------------------------------------

def order_bodies(n: int) -> list[bytes]:
    """``n`` distinct paid orders/paid payloads, compact JSON as Shopify sends them."""
    sample = json.loads(SAMPLE.read_text())
    # Shopify's published sample is a voided, cancelled order; make it a plain paid one.
    sample.update(financial_status="paid", cancelled_at=None, cancel_reason=None, confirmed=True, test=False)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    bodies = []
    for i in range(n):
        o = copy.deepcopy(sample)
        oid, cid = 5_200_000_000_000 + i, 7_100_000_000_000 + i
        at = (now - timedelta(minutes=n - i)).isoformat()
        email = f"customer{i}@example.com"
        o.update(id=oid, admin_graphql_api_id=f"gid://shopify/Order/{oid}", number=1000 + i, order_number=2000 + i,
                 name=f"#{2000 + i}", email=email, contact_email=email, created_at=at, processed_at=at, updated_at=at,
                 token=uuid.UUID(int=oid).hex)
        o["customer"].update(id=cid, admin_graphql_api_id=f"gid://shopify/Customer/{cid}", email=email,
                             first_name=f"Ana{i}", created_at=at, updated_at=at)
        bodies.append(json.dumps(o, separators=(",", ":")).encode())
    return bodies


def _lua_string(raw: bytes) -> str:
    text = raw.decode("ascii")  # json.dumps escapes non-ASCII
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lua_script(bodies: list[bytes], secret: str) -> str:
    """A wrk script: cycle through the signed bodies, a fresh webhook/event id per request,
    and print the figures as one JSON line when done."""
    lines = ["local bodies = {"] + [f"  {_lua_string(b)}," for b in bodies] + ["}", "local sigs = {"]
    lines += [f'  "{signature(secret, b)}",' for b in bodies] + ["}"]
    lines.append(f'''
local nb = #bodies
local n = 0
local prefix = "run"
local headers = {{
  ["Content-Type"] = "application/json",
  ["User-Agent"] = "Shopify-Captain-Hook",
  ["X-Shopify-Topic"] = "orders/paid",
  ["X-Shopify-Shop-Domain"] = "{DOMAIN}",
  ["X-Shopify-API-Version"] = "2026-10",
  ["X-Shopify-Triggered-At"] = "2026-11-20T10:00:00.000000000Z",
}}
local threads = {{}}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  if args[1] then prefix = args[1] end
end

function request()
  n = n + 1
  local i = (n + tid * 37) % nb + 1
  local id = string.format("%s-%04d-%012d", prefix, tid, n)
  headers["X-Shopify-Hmac-Sha256"] = sigs[i]
  headers["X-Shopify-Webhook-Id"] = id
  headers["X-Shopify-Event-Id"] = id
  return wrk.format("POST", nil, headers, bodies[i])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests":%.0f,"duration_us":%.0f,"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,' ..
    '"timeout":%.0f,"mean_us":%.1f,"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"max_us":%.0f}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
''')
    return "\n".join(lines)


# --- the server --------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(port: int, args, env: dict, log_path: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gunicorn", "--workers", str(args.workers), "--worker-class", args.worker_class,
           "--bind", f"127.0.0.1:{port}", "--chdir", str(ROOT), "--log-level", "warning", "--timeout", "30"]
    if args.worker_class == "gthread":
        cmd += ["--threads", str(args.gunicorn_threads)]
    cmd.append("bench.ingest_app:create_bench_app()")
    log = log_path.open("wb")
    return subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(base: str, proc: subprocess.Popen, log_path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"gunicorn exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    sys.exit(f"gunicorn did not answer /health within {timeout:.0f}s:\n{log_path.read_text()[-3000:]}")


def post(url: str, body: bytes, headers: dict) -> int:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def sanity(base: str, body: bytes, secret: str) -> None:
    """Each endpoint answers a signed webhook as expected, and the two verifying ones refuse a bad signature."""
    headers = {"Content-Type": "application/json", "X-Shopify-Topic": "orders/paid", "X-Shopify-Shop-Domain": DOMAIN,
               "X-Shopify-Webhook-Id": f"sanity-{uuid.uuid4()}", "X-Shopify-Hmac-Sha256": signature(secret, body)}
    expected = {"keepwell": 202, "minimal": 202, "trivial": 200}
    for name, path in ENDPOINTS.items():
        got = post(base + path, body, headers)
        if got != expected[name]:
            sys.exit(f"{name} answered {got} to a signed webhook, expected {expected[name]}")
    bad = {**headers, "X-Shopify-Hmac-Sha256": signature("wrong-secret", body)}
    for name in ("keepwell", "minimal"):
        got = post(base + ENDPOINTS[name], body, bad)
        if got != 401:
            sys.exit(f"{name} answered {got} to a badly signed webhook, expected 401")


class Emptier(threading.Thread):
    """Empties Redis lists every ``every`` seconds while the load runs, counting what it removed."""

    def __init__(self, redis: Redis, keys: list[str], every: float = 0.25):
        super().__init__(daemon=True)
        self.redis, self.keys, self.every = redis, keys, every
        self.removed = {k: 0 for k in keys}
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def run(self):
        while not self._stop_event.wait(self.every):
            self.flush()

    def flush(self) -> dict:
        with self._lock:
            pipe = self.redis.pipeline(transaction=True)
            for k in self.keys:
                pipe.llen(k)
                pipe.unlink(k)
            res = pipe.execute()
            for i, k in enumerate(self.keys):
                self.removed[k] += res[2 * i]
            return dict(self.removed)

    def stop(self):
        self._stop_event.set()
        self.join(5)
        self.flush()


# --- the load ----------------------------------------------------------------------------------

def run_wrk(url: str, script: Path, args, duration: int, tag: str) -> dict:
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s", "--latency",
           "--timeout", "5s", "-s", str(script), url, "--", tag]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        sys.exit(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    r = json.loads(line[len("WRKJSON "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["errors"] = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds of load per run (wrk takes whole seconds)")
    ap.add_argument("--rounds", type=int, default=2, help="runs per endpoint, interleaved")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of unmeasured load per endpoint first (0: none)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    ap.add_argument("--worker-class", default="sync", help="gunicorn worker class (as in the Procfile: sync)")
    ap.add_argument("--gunicorn-threads", type=int, default=4, help="threads per worker with --worker-class gthread")
    ap.add_argument("--bodies", type=int, default=200, help="distinct signed orders in the wrk script")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = ap.parse_args(argv)
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk  (Debian/Ubuntu package `wrk`)")
    if not SAMPLE.exists():
        sys.exit(f"missing {SAMPLE} (Shopify's published orders/paid sample)")

    prefix = f"kwbench{uuid.uuid4().hex[:8]}"
    secret = f"shpss_bench_{uuid.uuid4().hex}"
    redis = Redis.from_url(args.redis_url)
    redis.ping()
    with tempfile.TemporaryDirectory(prefix="keepwell-ingest-") as tmp:
        tmp = Path(tmp)
        db_url = f"sqlite:///{tmp}/keepwell.db"
        upgrade(db_url)
        with sessions(db_url).begin() as session:
            from plugin.config import Config

            row, _ = add_shop(session, Config(database_url=db_url), "shopify", DOMAIN, access_token="shpat_bench",
                              webhook_secret=secret)
            shop_id = row.id
        bodies = order_bodies(args.bodies)
        script = tmp / "orders_paid.lua"
        script.write_text(lua_script(bodies, secret))
        minimal_list = f"{prefix}:bench:minimal"
        backlog = Keys(prefix, shop_id).backlog
        env = {"REDIS_URL": args.redis_url, "DATABASE_URL": db_url, "KEEPWELL_QUEUE": prefix,
               "BENCH_SECRET": secret, "BENCH_LIST": minimal_list, "PYTHONPATH": str(ROOT)}
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log_path = tmp / "gunicorn.log"
        proc = start_gunicorn(port, args, env, log_path)
        emptier = Emptier(redis, [backlog, minimal_list])
        runs = {name: [] for name in ENDPOINTS}
        accepted = {name: 0 for name in ENDPOINTS}
        try:
            wait_ready(base, proc, log_path)
            sanity(base, bodies[0], secret)
            emptier.start()
            for name, path in ENDPOINTS.items():
                if args.warmup > 0:
                    run_wrk(base + path, script, args, args.warmup, f"warm-{name}-{prefix}")
            for rnd in range(args.rounds):
                for name, path in ENDPOINTS.items():
                    before = emptier.flush()
                    r = run_wrk(base + path, script, args, args.duration, f"r{rnd}-{name}-{prefix}")
                    after = emptier.flush()
                    key = {"keepwell": backlog, "minimal": minimal_list}.get(name)
                    r["accepted"] = after[key] - before[key] if key else r["requests"]
                    accepted[name] += r["accepted"]
                    runs[name].append(r)
                    print(f"  round {rnd + 1} {name:<9} {r['rps']:>9,.0f} req/s  p50 {r['p50_us'] / 1000:6.2f} ms"
                          f"  p99 {r['p99_us'] / 1000:6.2f} ms  errors {r['errors']}", file=sys.stderr)
        finally:
            if emptier.is_alive():
                emptier.stop()
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            Queue(prefix, connection=redis).delete(delete_jobs=True)  # the drain job the first push enqueued
            for pattern in (f"{prefix}:*", f"rq:*{prefix}*"):
                for k in redis.scan_iter(match=pattern, count=1000):
                    redis.unlink(k)
        log_tail = log_path.read_text()[-2000:]

    best = {n: max(rs, key=lambda r: r["rps"]) for n, rs in runs.items()}
    median = {n: statistics.median(r["rps"] for r in rs) for n, rs in runs.items()}
    p99_median = {n: statistics.median(r["p99_us"] for r in rs) / 1000 for n, rs in runs.items()}
    errors = {n: sum(r["errors"] for r in rs) for n, rs in runs.items()}
    ratio = best["keepwell"]["rps"] / best["minimal"]["rps"]
    ratio_vs_trivial = best["keepwell"]["rps"] / best["trivial"]["rps"]

    print(f"gunicorn {args.workers} x {args.worker_class}, wrk -t{args.threads} -c{args.connections} "
          f"-d{args.duration}s x {args.rounds} rounds, {len(bodies)} distinct signed orders/paid bodies "
          f"(~{statistics.mean(len(b) for b in bodies) / 1024:.1f} KiB), {os.cpu_count()} CPUs")
    print(f"\n  {'endpoint':<18}{'best req/s':>11}{'median':>9}{'p50 ms':>8}{'p99 ms':>8}{'p99 med':>8}"
          f"{'vs minimal':>11}{'vs trivial':>11}{'accepted':>10}{'errors':>7}")
    for n in ENDPOINTS:
        b = best[n]
        print(f"  {LABELS[n]:<18}{b['rps']:>11,.0f}{median[n]:>9,.0f}{b['p50_us'] / 1000:>8.2f}{b['p99_us'] / 1000:>8.2f}"
              f"{p99_median[n]:>8.2f}{b['rps'] / best['minimal']['rps']:>11.3f}{b['rps'] / best['trivial']['rps']:>11.3f}"
              f"{accepted[n]:>10,}{errors[n]:>7}")
    lost = sum(r["requests"] - r["accepted"] for n in ("keepwell", "minimal") for r in runs[n] if r["accepted"] < r["requests"])
    if lost or any(errors.values()):
        print(f"\nwarning: {lost} answered webhooks not found in Redis, errors {errors}; gunicorn log:\n{log_tail}")

    passed = (ratio >= TARGETS["ratio"] and p99_median["keepwell"] < TARGETS["p99_ms"]
              and not any(errors.values()) and not lost)
    print(json.dumps({
        "keepwell_rps": round(best["keepwell"]["rps"]),
        "minimal_rps": round(best["minimal"]["rps"]),
        "trivial_rps": round(best["trivial"]["rps"]),
        "ratio": round(ratio, 3),
        "ratio_median": round(median["keepwell"] / median["minimal"], 3),
        "ratio_vs_trivial": round(ratio_vs_trivial, 3),
        "p50_ms": round(best["keepwell"]["p50_us"] / 1000, 2),
        "p99_ms": round(p99_median["keepwell"], 2),
        "minimal_p99_ms": round(p99_median["minimal"], 2),
        "trivial_p99_ms": round(p99_median["trivial"], 2),
        "runs": {n: [round(r["rps"]) for r in rs] for n, rs in runs.items()},
        "accepted": accepted,
        "errors": errors,
        "setup": {"workers": args.workers, "worker_class": args.worker_class,
                  "gunicorn_threads": args.gunicorn_threads if args.worker_class == "gthread" else 1,
                  "wrk_threads": args.threads, "connections": args.connections, "duration_s": args.duration,
                  "rounds": args.rounds,
                  "body_bytes": round(statistics.mean(len(b) for b in bodies)), "cpus": os.cpu_count()},
        "targets": TARGETS,
        "pass": passed,
    }))


if __name__ == "__main__":
    main()

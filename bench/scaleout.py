"""One big shop against four equal shops with the same events, at 1, 2 and 4 `keepwell worker`s.

Each run puts the same workload (bench/worker.py's new WooCommerce customers: signups, 3 in 5
opting in, every other one paying a first order; coupons, tags and emails go to a local store
sandbox and SMTP sink that answer at once) on the backlog of either one shop or four shops
(a quarter each), through the real hand-off, while W real `keepwell worker` processes (the
Procfile's command, configured through the environment) are up and waiting. A run is timed from
the first push until every event is seen and nothing waits (backlogs, lanes, the queue, running
jobs). Every worker count runs ``--rounds`` rounds of both layouts (alternating which goes
first); each figure is the median of its rounds.

ratio at W workers = big-shop events/s / four-shop events/s; the JSON's ``ratio`` is the
lowest over the worker counts. Target >= 0.8: a shop's backlog, split into per-customer lanes,
scales with workers as separate shops do. PostgreSQL in a database of its own and Redis are
found or started by bench/services.py; runs in a few minutes on 2 cores with the defaults.

The last line printed is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402
from rq import Worker as RQWorker  # noqa: E402
from rq.registry import StartedJobRegistry  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

import services  # noqa: E402  (bench/services.py)
import worker as bench_worker  # noqa: E402  (bench/worker.py: the workload and the store sandbox)
from plugin.config import Config  # noqa: E402
from plugin.db import EventSeenRow, sessions, upgrade  # noqa: E402
from plugin.pipeline import Runtime  # noqa: E402
from plugin.shops import add_shop  # noqa: E402

TARGETS = {"ratio": 0.8}
KEEPWELL = Path(sys.executable).with_name("keepwell")
SECRET = "bench-secret-key"


def start_workers(config: Config, n: int, logs: Path) -> list[subprocess.Popen]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "KEEPWELL_"))}
    env.update({"DATABASE_URL": config.database_url, "REDIS_URL": config.redis_url, "SMTP_URL": config.smtp_url,
                "KEEPWELL_QUEUE": config.queue, "KEEPWELL_SECRET_KEY": SECRET, "KEEPWELL_APP_URL": config.app_url,
                "KEEPWELL_MAIL_FROM": config.mail_from, "KEEPWELL_ALLOW_PRIVATE_STORES": "1", "PYTHONPATH": str(ROOT)})
    procs = []
    for i in range(n):
        with open(logs / f"worker-{n}-{i}.log", "wb") as log:
            procs.append(subprocess.Popen([str(KEEPWELL), "worker"], env=env, cwd=ROOT, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))
    return procs


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)


def wait_registered(rt: Runtime, n: int, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 60
    while len(RQWorker.all(queue=rt.queue)) < n:
        if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
            raise RuntimeError("a keepwell worker did not start (see its log)")
        time.sleep(0.1)


def new_shops(rt: Runtime, sandbox_url: str, prefix: str, n: int) -> list[str]:
    ids = []
    with rt.sessions.begin() as session:
        for _ in range(n):
            row, _ = add_shop(session, rt.config, "woocommerce", f"https://{prefix}-{uuid.uuid4().hex[:8]}.store.example",
                              api_url=sandbox_url, consumer_key="ck_bench", consumer_secret="cs_bench",
                              settings={"consent_meta_key": bench_worker.CONSENT_KEY})
            ids.append(row.id)
    return ids


def seen(rt: Runtime, shop_ids: list[str]) -> int:
    with rt.sessions() as session:
        return session.scalar(select(func.count()).select_from(EventSeenRow).where(EventSeenRow.shop_id.in_(shop_ids)))


def settled(rt: Runtime, shop_ids: list[str]) -> bool:
    return (not any(rt.handoff.pending(s) for s in shop_ids) and rt.queue.count == 0
            and StartedJobRegistry(queue=rt.queue).count == 0)


def one_run(rt: Runtime, sandbox_url: str, prefix: str, shops: int, customers: int, first: int,
            procs: list[subprocess.Popen], timeout_s: float) -> tuple[int, float]:
    """(events, seconds) for ``customers`` new customers spread over ``shops`` new shops."""
    shop_ids = new_shops(rt, sandbox_url, prefix, shops)
    started = time.perf_counter()
    _, expected = bench_worker.preload(rt, shop_ids, customers, first)
    while True:
        if seen(rt, shop_ids) >= expected and settled(rt, shop_ids):
            break
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a keepwell worker died (see its log)")
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"{seen(rt, shop_ids)} of {expected} events after {timeout_s:.0f}s")
        time.sleep(0.02)
    return expected, time.perf_counter() - started


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=240, help="new customers per run (~1.5 webhooks each)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each layout per worker count")
    ap.add_argument("--workers", default="1,2,4", help="worker counts")
    ap.add_argument("--database-url", default=None, help="default: a database of its own (bench/services.py)")
    ap.add_argument("--redis-url", default=None, help="default: database 14 of the Redis bench/services.py finds")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds a run may take at most")
    args = ap.parse_args(argv)
    with ExitStack() as stack:
        redis_url = args.redis_url or stack.enter_context(services.redis_url())
        db_url = args.database_url or stack.enter_context(services.postgres_url())
        run(args, redis_url, db_url)


def run(args, redis_url: str, db_url: str) -> None:
    import tempfile

    logging.getLogger("keepwell").setLevel(logging.ERROR)
    os.environ["KEEPWELL_ALLOW_PRIVATE_STORES"] = "1"
    prefix = f"kwscale{uuid.uuid4().hex[:8]}"
    redis = Redis.from_url(redis_url)
    sandbox = bench_worker.SandboxProcess()
    config = Config.from_env({}, redis_url=redis_url, database_url=db_url, queue=prefix, smtp_url=sandbox.smtp_url,
                             app_url="https://keepwell.bench", secret_keys=(SECRET,),
                             mail_from="Keepwell Bench <shop@keepwell.bench>")
    upgrade(db_url)
    rt = Runtime(config=config, sessions=sessions(db_url), redis=redis)
    counts = [int(w) for w in args.workers.split(",")]
    figures: dict[int, dict[str, list[float]]] = {}
    logs = Path(tempfile.mkdtemp(prefix="keepwell-scaleout-"))
    first = 0
    try:
        for n in counts:
            procs = start_workers(config, n, logs)
            try:
                wait_registered(rt, n, procs)
                figures[n] = {"big": [], "four": []}
                for rnd in range(args.rounds):
                    order = ("big", "four") if rnd % 2 == 0 else ("four", "big")
                    for layout in order:
                        events, seconds = one_run(rt, sandbox.store_url, prefix, 1 if layout == "big" else 4,
                                                  args.customers, first, procs, args.timeout)
                        first += args.customers
                        figures[n][layout].append(events / seconds)
                        print(f"  {n} worker(s), round {rnd + 1}, {layout:>4}: {events} events in {seconds:.2f}s, "
                              f"{events / seconds:,.0f} events/s", file=sys.stderr)
            finally:
                stop_workers(procs)
    finally:
        bench_worker.forget_queues(redis, [prefix], prefix)
        sandbox.stop()
        rt.sessions.kw["bind"].dispose()

    print(f"{args.customers} new customers per run (one shop, or four with a quarter each), {args.rounds} rounds of "
          f"each layout per worker count, `keepwell worker` processes, PostgreSQL; medians of the rounds")
    print(f"\n  {'workers':>8}{'1 shop /s':>12}{'4 shops /s':>12}{'ratio':>8}   rounds (1 shop | 4 shops)")
    ratios = {}
    for n, f in figures.items():
        big, four = statistics.median(f["big"]), statistics.median(f["four"])
        ratios[n] = big / four
        print(f"  {n:>8}{big:>12,.0f}{four:>12,.0f}{ratios[n]:>8.3f}   "
              f"{', '.join(f'{x:.0f}' for x in f['big'])} | {', '.join(f'{x:.0f}' for x in f['four'])}")
    ratio = min(ratios.values())
    print(f"\n  ratio = the lowest over the worker counts: {ratio:.3f} (target >= {TARGETS['ratio']})")
    print(json.dumps({
        "ratio": round(ratio, 3),
        "ratios": {str(n): round(r, 3) for n, r in ratios.items()},
        "big_shop_events_per_s": {str(n): round(statistics.median(f["big"]), 1) for n, f in figures.items()},
        "four_shops_events_per_s": {str(n): round(statistics.median(f["four"]), 1) for n, f in figures.items()},
        "runs": {str(n): {k: [round(x, 1) for x in v] for k, v in f.items()} for n, f in figures.items()},
        "customers_per_run": args.customers,
        "rounds": args.rounds,
        "database": "postgresql",
        "targets": TARGETS,
        "pass": ratio >= TARGETS["ratio"],
    }))


if __name__ == "__main__":
    main()

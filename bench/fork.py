"""CPU per job of `keepwell worker`'s worker class (RQ's SimpleWorker: jobs run in the worker
process) beside RQ's forking Worker (a work-horse child forked for every job), on the same jobs.
Both stop their command listener as plugin/worker.py does, so neither waits on it at the end of
a burst.

Each round gives every contender its own fresh batch: ``--jobs`` WooCommerce shops, each with one
new customer's signup and paid first order on its backlog (pushed through the real hand-off), so
each batch is ``--jobs`` drain jobs of two webhooks each: parse, decide with the shipped rule
packs, write the ledger, schedule timers, tag VIPs in the store (a local WooCommerce sandbox in a
child process). The worker empties the queue in burst mode; its CPU is the bench process's own
plus that of the children it forked and reaped (getrusage), divided by the jobs it ran.

Both contenders must leave every backlog empty, nothing dead-lettered, no job failed and every
decision done: on PostgreSQL that checks too that a forked work horse opens connections of its own
(plugin/db.py resets the inherited pools in a forked child).

ratio = forking Worker CPU per job / SimpleWorker CPU per job (medians over the rounds).
SQLite in a temporary directory by default; PostgreSQL with --database-url (the bench's shops are
deleted afterwards). The last line printed is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import logging
import resource
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402
from rq import Worker as RQWorker  # noqa: E402
from sqlalchemy import delete, func, select  # noqa: E402

from bench.worker import CONSENT_KEY, SandboxProcess, forget_queues, preload  # noqa: E402
from plugin import runtime as runtime_module  # noqa: E402
from plugin.config import Config  # noqa: E402
from plugin.db import DecisionRow, EventSeenRow, ShopRow, sessions, upgrade  # noqa: E402
from plugin.pipeline import Runtime  # noqa: E402
from plugin.shops import add_shop  # noqa: E402
from plugin.worker import Worker  # noqa: E402


class ForkingWorker(RQWorker):
    unsubscribe = Worker.unsubscribe


CONTENDERS = {"SimpleWorker": Worker, "Worker (fork per job)": ForkingWorker}


def cpu_seconds() -> float:
    """CPU of this process and of every child it has reaped (the forking Worker's work horses)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def run(worker_class, rt: Runtime) -> tuple[int, float, float]:
    """(jobs run, CPU seconds, wall seconds) of one burst over the queue."""
    jobs = rt.queue.count
    worker = worker_class([rt.queue], connection=rt.redis)
    c, t = cpu_seconds(), time.perf_counter()
    worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
    return jobs, cpu_seconds() - c, time.perf_counter() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=60, help="drain jobs per contender and round (one shop each)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--database-url", default=None, help="default: SQLite in a temporary directory")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = ap.parse_args(argv)

    logging.getLogger("keepwell").setLevel(logging.WARNING)
    os.environ["KEEPWELL_ALLOW_PRIVATE_STORES"] = "1"  # the sandbox store listens on loopback
    prefix = f"kwfork{uuid.uuid4().hex[:8]}"
    redis = Redis.from_url(args.redis_url)
    redis.ping()
    sandbox = SandboxProcess()
    tmp = tempfile.TemporaryDirectory(prefix="keepwell-fork-")
    db_url = args.database_url or f"sqlite:///{tmp.name}/keepwell.db"
    config = Config.from_env({}, redis_url=args.redis_url, database_url=db_url, queue=prefix,
                             smtp_url=sandbox.smtp_url, app_url="https://keepwell.bench",
                             secret_keys=("bench-secret-key",), mail_from="Keepwell Bench <shop@keepwell.bench>")
    upgrade(config.database_url)
    rt = Runtime(config=config, sessions=sessions(config.database_url), redis=redis,
                 clock=lambda: datetime.now(timezone.utc))
    runtime_module.install(rt)  # inherited by the forking Worker's work horses
    shop_ids: list[str] = []
    per_job = {name: [] for name in CONTENDERS}  # CPU ms per job, one entry per round
    wall = {name: [] for name in CONTENDERS}  # wall ms per job
    jobs_run = {name: 0 for name in CONTENDERS}
    expected_events = 0
    try:
        def batch(n: int) -> list[str]:
            ids = []
            with rt.sessions.begin() as session:
                for _ in range(n):
                    row, _ = add_shop(session, config, "woocommerce", f"https://{prefix}-{len(shop_ids)}.store.example",
                                      api_url=sandbox.store_url, consumer_key="ck_bench", consumer_secret="cs_bench",
                                      settings={"consent_meta_key": CONSENT_KEY})
                    shop_ids.append(row.id)
                    ids.append(row.id)
            return ids

        for name, cls in CONTENDERS.items():  # warm-up: imports, caches, the first connections
            ids = batch(2)
            expected_events += preload(rt, ids, 2, first=len(shop_ids) * 10)[1]
            run(cls, rt)
        for rnd in range(args.rounds):
            for name, cls in (CONTENDERS.items() if rnd % 2 == 0 else reversed(CONTENDERS.items())):
                ids = batch(args.jobs)
                # customer ``first + 2k`` of the workload signs up and pays: one shop each
                for k, shop_id in enumerate(ids):
                    expected_events += preload(rt, [shop_id], 1, first=len(shop_ids) * 10 + 2 * k)[1]
                jobs, cpu, seconds = run(cls, rt)
                jobs_run[name] += jobs
                per_job[name].append(cpu / jobs * 1000)
                wall[name].append(seconds / jobs * 1000)
                print(f"  round {rnd + 1}: {name:<22} {jobs} jobs, {cpu / jobs * 1000:6.2f} ms CPU and "
                      f"{seconds / jobs * 1000:6.2f} ms wall per job", file=sys.stderr)

        with rt.sessions() as session:
            events = session.scalar(select(func.count()).select_from(EventSeenRow).where(
                EventSeenRow.shop_id.in_(shop_ids)))
            decisions = dict(session.execute(select(DecisionRow.status, func.count()).where(
                DecisionRow.shop_id.in_(shop_ids)).group_by(DecisionRow.status)).all())
        left = sum(redis.llen(rt.handoff.keys(s).backlog) + redis.llen(rt.handoff.keys(s).processing) for s in shop_ids)
        dead = sum(redis.llen(rt.handoff.keys(s).backlog + ":dead") for s in shop_ids)
        failed = rt.queue.failed_job_registry.count
    finally:
        runtime_module.install(None)
        if args.database_url and shop_ids:
            with rt.sessions.begin() as session:
                session.execute(delete(ShopRow).where(ShopRow.id.in_(shop_ids)))
        forget_queues(redis, [prefix], prefix)
        sandbox.stop()
        rt.sessions.kw["bind"].dispose()
        tmp.cleanup()

    simple, forking = (statistics.median(per_job[n]) for n in CONTENDERS)
    ratio = forking / simple
    backend = "postgresql" if db_url.startswith("postgres") else "sqlite"
    print(f"{args.rounds} rounds of {args.jobs} drain jobs per contender (a signup and a paid first order each), "
          f"{backend}")
    print(f"\n  {'contender':<24}{'CPU ms/job':>12}{'wall ms/job':>13}{'jobs':>7}")
    for name in CONTENDERS:
        print(f"  {name:<24}{statistics.median(per_job[name]):>12.2f}{statistics.median(wall[name]):>13.2f}"
              f"{jobs_run[name]:>7}")
    problems = []
    if events != expected_events:
        problems.append(f"{events} events processed, {expected_events} expected")
    if left or dead or failed:
        problems.append(f"{left} envelopes left on backlogs, {dead} dead-lettered, {failed} jobs failed")
    if decisions.get("pending") or decisions.get("failed"):
        problems.append(f"decisions not done: {decisions}")
    for p in problems:
        print(f"  problem: {p}")
    print(json.dumps({
        "simple_cpu_ms_per_job": round(simple, 3),
        "forking_cpu_ms_per_job": round(forking, 3),
        "simple_wall_ms_per_job": round(statistics.median(wall["SimpleWorker"]), 3),
        "forking_wall_ms_per_job": round(statistics.median(wall["Worker (fork per job)"]), 3),
        "simple_runs": [round(x, 3) for x in per_job["SimpleWorker"]],
        "forking_runs": [round(x, 3) for x in per_job["Worker (fork per job)"]],
        "ratio": round(ratio, 3),
        "jobs": jobs_run,
        "events": events,
        "decisions": decisions,
        "dead_letters": dead,
        "failed_jobs": failed,
        "database": backend,
        "pass": not problems,
    }))


if __name__ == "__main__":
    main()

"""The Procfile's worker for end-to-end tests: `keepwell worker` as its own process, configured
only through the environment a deployment gives it (DATABASE_URL as the platform writes it,
REDIS_URL, SMTP_URL, ...). The web edge runs in the test process (live.Live's app); the store
APIs are the demo's store sandbox, a real HTTP server on 127.0.0.1, since a separate process
cannot see `responses` mocks."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from rq import Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import func, select

import children
from children import wait_for
from live import Live

ROOT = Path(__file__).resolve().parents[1]
KEEPWELL = Path(sys.executable).with_name("keepwell")  # the console script the Procfile runs

# Variables a deployment sets for Keepwell; none of the test runner's own may leak in.
_DEPLOYMENT_VARS = ("DATABASE_URL", "REDIS_URL", "SMTP_URL", "KEEPWELL_", "SHOPIFY_", "RQ_KEY_PREFIX")


def as_platforms_write_it(database_url: str) -> str:
    """Heroku's form of a PostgreSQL URL (postgres://, no driver), as DATABASE_URL arrives."""
    scheme, rest = database_url.split("://", 1)
    return f"postgres://{rest}" if scheme.startswith("postgresql") else database_url


def deployment_env(live: Live) -> dict:
    c = live.config
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DEPLOYMENT_VARS)}
    env.update({"DATABASE_URL": as_platforms_write_it(c.database_url), "REDIS_URL": c.redis_url, "SMTP_URL": c.smtp_url,
                "KEEPWELL_QUEUE": c.queue, "KEEPWELL_SECRET_KEY": ",".join(c.secret_keys),
                "KEEPWELL_APP_URL": c.app_url, "KEEPWELL_MAIL_FROM": c.mail_from,
                "SHOPIFY_API_SECRET": ",".join(c.shopify_api_secrets),
                "KEEPWELL_ALLOW_PRIVATE_STORES": "1",  # the store sandbox listens on loopback
                "PYTHONPATH": str(ROOT),  # the code under test, whatever the venv was installed from
                "PYTHONFAULTHANDLER": "1"})  # a hung worker's threads are logged before it is killed
    return env


#: `keepwell worker` on demo time: the very command, with the clock that the file named by
#: KEEPWELL_DEMO_CLOCK moves (plugin/demo/worker.py), for stories that span weeks.
ON_DEMO_TIME = [sys.executable, "-m", "plugin.demo.worker"]


class ProcfileWorker:
    """A running `keepwell worker`; ``check()`` fails with its log when it has died."""

    def __init__(self, live: Live, log: Path, command: list[str] | None = None, env: dict | None = None):
        self.live, self.log = live, log
        self.proc = children.start(command or [str(KEEPWELL), "worker"], env={**deployment_env(live), **(env or {})},
                                   cwd=ROOT, log=log)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def check(self) -> None:
        assert self.proc.poll() is None, f"keepwell worker exited with {self.proc.returncode}:\n{self.output()}"

    def wait_registered(self) -> None:
        wait_for(lambda: Worker.all(queue=self.live.rt.queue), "keepwell worker to register", check=self.check)

    def wait_idle(self, shop_ids) -> None:
        """Until every backlog is drained, nothing is queued or running and no decision is pending
        (two quiet looks in a row: nothing was between two of the places we look)."""
        quiet = [0]

        def settled():
            quiet[0] = quiet[0] + 1 if idle(self.live, shop_ids) else 0
            return quiet[0] >= 2

        wait_for(settled, "keepwell worker to finish the work", check=self.check, every_s=0.1)

    def stop(self) -> int | None:
        return children.stop(self.proc)


@contextmanager
def procfile_worker(live: Live, log: Path, command: list[str] | None = None, env: dict | None = None):
    """`keepwell worker` for the duration; stopped as the platform stops it (SIGTERM), which it
    must survive with exit status 0."""
    worker = ProcfileWorker(live, log, command, env)
    try:
        worker.wait_registered()
        yield worker
    except BaseException:
        worker.stop()
        raise
    status = worker.stop()
    assert status == 0, f"keepwell worker exited with {status} on SIGTERM:\n{worker.output()}"


def idle(live: Live, shop_ids) -> bool:
    from plugin.db import DecisionRow

    r, q = live.rt.redis, live.rt.queue
    for shop_id in shop_ids:
        if live.rt.handoff.pending(shop_id):  # the backlog, its lanes, the drains' hands
            return False
    if q.count or r.llen(q.intermediate_queue_key) or StartedJobRegistry(queue=q).count:
        return False
    with live.rt.sessions() as session:
        return not session.scalar(select(func.count()).select_from(DecisionRow).where(DecisionRow.status == "pending"))


def trouble(live: Live, shop_ids) -> dict:
    """Everything that went wrong: dead letters, failed jobs, retries waiting; empty when none."""
    r, q = live.rt.redis, live.rt.queue
    dead = {s: r.llen(f"{live.rt.handoff.keys(s).backlog}:dead") for s in shop_ids}
    retries = [j for j in ScheduledJobRegistry(queue=q).get_job_ids()
               if (job := q.fetch_job(j)) is not None and job.func_name in ("plugin.jobs.drain", "plugin.jobs.execute")]
    found = {"dead letters": {s: n for s, n in dead.items() if n}, "failed jobs": FailedJobRegistry(queue=q).count,
             "retries waiting": len(retries)}
    return {k: v for k, v in found.items() if v}

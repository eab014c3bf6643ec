"""The worker's sessions go without a pre-ping per checkout (plugin.runtime): a connection the
PostgreSQL server dropped fails the drain once, and the retried drain, on a fresh connection,
processes the entry. Nothing is lost and nothing is set aside."""
from __future__ import annotations

from datetime import datetime, timezone

import psycopg
import pytest
import responses
from sqlalchemy.exc import OperationalError

from live import STORES, backlog, gmt, running, woo_customer
from plugin import drain
from plugin.db import EventSeenRow, sessions
from plugin.pipeline import Runtime

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = T0
        yield live


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def test_a_dropped_connection_fails_one_try_and_the_retry_processes_the_entry(live, rsps):
    worker = Runtime(config=live.config, sessions=sessions(live.config.database_url, pre_ping=False),
                     redis=live.rt.redis, clock=live.clock)
    assert worker.sessions.kw["bind"].pool._pre_ping is False
    store = STORES["woocommerce"](live, rsps)
    first, second = store.customer(1), store.customer(2)
    store.post("customer.created", woo_customer(int(first), email="a@example.com", modified=gmt(T0)))
    assert drain.drain(worker, store.shop_id) == 1  # the pool now holds a connection

    # the server ends every connection to the database (a failover, an idle timeout)
    admin = live.config.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        ended = conn.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                             "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]
    assert ended >= 1

    store.post("customer.created", woo_customer(int(second), email="b@example.com", modified=gmt(T0)))
    with pytest.raises(OperationalError):
        drain.drain(worker, store.shop_id)  # RQ retries the job
    keys = worker.handoff.keys(store.shop_id)
    assert backlog(live, store.shop_id) == 1 and worker.redis.hlen(keys.attempts) == 1
    worker.redis.delete(keys.draining)
    assert drain.drain(worker, store.shop_id) == 1
    assert backlog(live, store.shop_id) == 0 and worker.redis.llen(keys.dead) == 0
    assert len(live.rows(EventSeenRow, shop_id=store.shop_id)) == 2
    worker.sessions.kw["bind"].dispose()

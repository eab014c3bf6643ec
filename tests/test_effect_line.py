"""The shop's effect line and slots (plugin/effects/line.py, slots.py) on a real Redis and a real
in-process worker: the bound on touches at once, leases of a dead holder, a retry that finds every
slot taken, a runner that died with touches in hand, and a poisoned touch that must not block the
line."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import responses
from rq import SimpleWorker
from sqlalchemy import select

from live import STORES, decisions, done_touch, running, work
from plugin import jobs
from plugin.db import DecisionRow
from plugin.effects import line, slots as slots_module
from plugin.effects.slots import Slots
from plugin.pipeline import sweep_timers

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
WELCOME_DUE = T0 + timedelta(hours=1, minutes=3)


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = T0
        yield live


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


class DecideOnly(SimpleWorker):
    """The worker with the shop's effect runners held back: touches are decided and wait on the line."""

    def execute_job(self, job, queue):
        if job.func_name == "plugin.jobs.run_effects":
            job.delete()
            return True
        return super().execute_job(job, queue)


def decided(live, store, n: int) -> list[str]:
    """``n`` customers whose welcome touches are decided (at WELCOME_DUE) and wait on the shop's line."""
    cids = [store.customer(i, "welcome") for i in range(1, n + 1)]
    for i, cid in enumerate(cids):
        store.signup(cid, T0, f"c{i}@example.com", f"C{i}")
    work(live)
    live.clock.now = WELCOME_DUE
    sweep_timers(live.rt)
    DecideOnly([live.rt.queue], connection=live.rt.redis).work(burst=True, with_scheduler=False)
    k = line.keys(live.rt, store.shop_id)
    live.rt.redis.delete(*map(k.armed, range(line.runners(line.shop_slots(live.rt, store.shop_id)))))
    for cid in cids:
        (d,) = [x for x in decisions(live, "welcome", cid) if x.kind == "touch"]
        assert d.status == "pending"
    return cids


def welcome_key(live, cid) -> str:
    (d,) = [x for x in decisions(live, "welcome", cid) if x.kind == "touch"]
    return d.key


def test_slots_bound_the_holders_and_a_dead_holders_lease_runs_out(live, monkeypatch):
    s = Slots(live.rt.redis, f"{live.config.queue}:{{shop}}:effects:slots", 2)
    a, b = s.take(), s.take()
    assert a and b and a != b and s.take() is None and s.taken() == 2
    s.give(a)
    assert s.take() is not None and s.take() is None
    monkeypatch.setattr(slots_module, "LEASE_S", 1)  # a holder that died: its lease runs out
    s2 = Slots(live.rt.redis, f"{live.config.queue}:{{shop2}}:effects:slots", 1)
    assert s2.take() is not None and s2.take() is None
    assert s2.wait(3.0) is not None


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
def test_a_retry_that_finds_every_slot_taken_joins_the_line_and_the_touch_runs_once(live, rsps, platform):
    store = STORES[platform](live, rsps)
    (cid,) = decided(live, store, 1)
    key = welcome_key(live, cid)
    k, slots = line.keys(live.rt, store.shop_id), line.shop_slots(live.rt, store.shop_id)
    taken = list(iter(slots.take, None))
    assert len(taken) == slots.size
    assert jobs.execute(store.shop_id, key) == "queued"
    assert live.rt.redis.lrange(k.line, 0, -1) == [key.encode(), key.encode()]  # the drain's and the retry's
    for token in taken:
        slots.give(token)
    line.ensure_runners(live.rt, store.shop_id)
    work(live)
    done_touch(live, "welcome", cid)
    assert len(store.coupon_codes()) == 1 and len(live.smtp.messages) == 1  # the second run found it done
    assert live.rt.redis.llen(k.line) == 0


def test_a_runner_that_died_leaves_its_touches_to_the_next_one(live, rsps):
    store = STORES["shopify"](live, rsps)
    cids = decided(live, store, 3)
    k = line.keys(live.rt, store.shop_id)
    assert len(live.rt.redis.lrange(k.line, 0, -1)) == 3
    # runner 0 died holding two of them (in its running list), its armed flag still up
    live.rt.redis.set(k.armed(0), "1", ex=line.RUNNER_TTL_S)
    live.rt.redis.lmove(k.line, k.running(0), "LEFT", "RIGHT")
    live.rt.redis.lmove(k.line, k.running(0), "LEFT", "RIGHT")
    assert line.ensure_runners(live.rt, store.shop_id) == 0  # its flag has not run out yet
    live.rt.redis.delete(k.armed(0))  # ... now it has (RUNNER_TTL_S)
    assert jobs.tick()["runners"] == 1  # the minutely tick arms it again
    work(live)
    for cid in cids:
        done_touch(live, "welcome", cid)
    assert len(store.coupon_codes()) == 3 and len(store.api.creates) == 3
    assert live.rt.redis.llen(k.line) == live.rt.redis.llen(k.running(0)) == 0


def test_a_touch_that_raises_leaves_the_line_and_the_others_run(live, rsps):
    store = STORES["woocommerce"](live, rsps)
    poisoned, healthy = decided(live, store, 2)
    with live.rt.sessions.begin() as session:  # a ledger row no code path can run
        session.scalar(select(DecisionRow).where(DecisionRow.key == welcome_key(live, poisoned))).decision = {"broken": 1}
    line.ensure_runners(live.rt, store.shop_id)
    work(live)
    done_touch(live, "welcome", healthy)
    (d,) = [x for x in decisions(live, "welcome", poisoned) if x.kind == "touch"]
    assert d.status == "pending"  # left for the tick's sweep of stale decisions, which logs it again
    k = line.keys(live.rt, store.shop_id)
    assert live.rt.redis.llen(k.line) == live.rt.redis.llen(k.running(0)) == 0

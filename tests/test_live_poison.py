"""One bad record hurts only itself, end to end on a real RQ worker: an address that is not exactly
one valid address fails its touch before any side effect, an effect raising something unforeseen
fails only its own touch, and the minutely tick survives poisoned records and re-arms itself."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import responses
from sqlalchemy import select

from plugin import jobs
from plugin.db import DecisionRow
from live import STORES, advance, decisions, done_touch, effects, mails_to, running, scheduled, work

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
WELCOME_DUE = T0 + timedelta(hours=1, minutes=3)

BAD_ADDRESSES = {
    "crlf": "ana@example.com\r\nBcc: everyone@example.net",
    "comma": "ana@example.com,everyone@example.net",
    "display name": "Ana <ana@example.com>",
    "two at signs": "ana@bob@example.com",
}


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = T0
        yield live


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def welcome(live, cid):
    (d,) = [d for d in decisions(live, "welcome", cid) if d.kind == "touch"]
    return d, effects(live, d)


@pytest.mark.parametrize("platform", ["shopify", "woocommerce"])
@pytest.mark.parametrize("kind", list(BAD_ADDRESSES))
def test_an_address_that_is_not_one_valid_address_fails_the_touch_before_any_effect(live, rsps, platform, kind):
    store = STORES[platform](live, rsps)
    bad, good = store.customer(1, "welcome"), store.customer(2, "welcome")
    store.signup(bad, T0, BAD_ADDRESSES[kind], "Ana")
    store.signup(good, T0, "zoe@example.com", "Zoë")
    work(live)
    advance(live, WELCOME_DUE)

    d, eff = welcome(live, bad)
    assert d.status == "failed" and d.error.startswith("email: ") and "not one valid email address" in d.error
    assert {t: e.status for t, e in eff.items()} == {"coupon": "skipped", "email": "skipped"}
    assert all(e.error == d.error for e in eff.values())
    assert len(store.coupon_codes()) == 1  # only the good customer's: no coupon for an email never sent
    assert [m["To"].addresses[0].addr_spec for m in live.smtp.messages] == ["zoe@example.com"]
    done_touch(live, "welcome", good)
    assert jobs.execute(store.shop_id, d.key) == "failed" and scheduled(live) == []


def test_an_effect_that_raises_anything_fails_its_touch_and_the_job_goes_on(live, rsps):
    """The store answers a coupon create with 200 and a shape nobody documented: the connector
    raises something other than StoreError. The touch fails with that reason; the drain that ran
    it finishes, and the next customer's touch goes out."""
    store = STORES["shopify"](live, rsps)
    odd, next_one = store.customer(1, "welcome"), store.customer(2, "welcome")
    store.signup(odd, T0, "ana@example.com", "Ana")
    work(live)
    store.api.fail_next(200, {"data": {"discountCodeBasicCreate": ["not", "an", "object"]}})
    advance(live, WELCOME_DUE)
    d, eff = welcome(live, odd)
    assert d.status == "failed" and eff["coupon"].status == "failed" and eff["email"].status == "skipped"
    assert d.error.startswith("coupon: ") and "Error" in d.error, d.error
    assert eff["coupon"].attempts == 1 and scheduled(live) == [] and live.smtp.messages == []

    store.signup(next_one, WELCOME_DUE, "zoe@example.com", "Zoë")
    work(live)
    advance(live, WELCOME_DUE + timedelta(hours=1, minutes=3))
    done_touch(live, "welcome", next_one)
    assert len(mails_to(live, "zoe@example.com")) == 1


def _tick_jobs(live) -> list[str]:
    return [job.id for job, _ in scheduled(live, "plugin.jobs.tick")]


def test_the_tick_survives_a_poisoned_decision_and_arms_the_next_minute(live, rsps):
    """A stranded decision whose ledger row is corrupt (no actions) makes retrying it raise: the tick
    logs it, retries the other shop's stranded decision, and the next tick is armed."""
    poisoned, healthy = STORES["shopify"](live, rsps), STORES["woocommerce"](live, rsps)
    a, b = poisoned.customer(1, "welcome"), healthy.customer(1, "welcome")
    poisoned.signup(a, T0, "ana@example.com", "Ana")
    healthy.signup(b, T0, "zoe@example.com", "Zoë")
    work(live)
    live.clock.now = WELCOME_DUE
    poisoned.api.fail_next(503, {"errors": "Unavailable Shop"})
    healthy.api.fail_next("POST", "coupons", 503, {"code": "http_request_failed", "message": "down", "data": {}})
    advance(live, WELCOME_DUE)
    (da, _), (db, _) = welcome(live, a), welcome(live, b)
    assert da.status == db.status == "pending"
    with live.rt.sessions.begin() as session:  # the poison: a ledger row no code path can run
        session.scalar(select(DecisionRow).where(DecisionRow.key == da.key)).decision = {"broken": True}
    for job, _ in scheduled(live):  # the retry jobs were lost: only the tick's sweep can save them
        job.delete()

    # stranded: pending for longer than jobs.STALE_PENDING (the ledger stamps rows with the real time)
    live.clock.now = datetime.now(timezone.utc) + jobs.STALE_PENDING + timedelta(minutes=1)
    out = jobs.tick()
    assert out["errors"] == 1 and out["retried"] == 1
    work(live)
    done_touch(live, "welcome", b)
    assert live.rt.queue.fetch_job(f"{live.config.queue}-tick-{(live.clock.now + timedelta(minutes=1)):%Y%m%d%H%M}")

    live.clock.now += timedelta(minutes=1)
    assert jobs.tick()["errors"] == 1  # the poison stays where it is; housekeeping goes on every minute
    assert live.rt.queue.fetch_job(f"{live.config.queue}-tick-{(live.clock.now + timedelta(minutes=1)):%Y%m%d%H%M}")


def test_a_drain_re_arms_a_tick_that_was_lost(live, rsps):
    store = STORES["shopify"](live, rsps)
    jobs.schedule_tick(live.rt)
    for job_id in _tick_jobs(live):  # Redis lost the scheduled tick (and its heartbeat with it)
        live.rt.queue.fetch_job(job_id).delete()
    live.rt.redis.delete(jobs._tick_key(live.rt))
    assert _tick_jobs(live) == []

    store.signup(store.customer(1), T0, "ana@example.com", "Ana")
    work(live)
    assert len(_tick_jobs(live)) == 1
    store.signup(store.customer(2), T0, "bob@example.com", "Bob")
    work(live)
    assert len(_tick_jobs(live)) == 1  # armed, so later drains leave it alone

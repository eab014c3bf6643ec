"""Timers never act before their time, and a deferred touch is sent or recorded, never lost
(the live harness: the real edge, a real RQ worker and Redis, SQLite and PostgreSQL, SMTP).

RQ's scheduled-job registry keeps whole seconds: a deferral to 11:59:27.753 was due at
11:59:27 there, ran 0.753 s early, was deferred again to the same moment by the cap and vanished.
"""
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from rq.registry import ScheduledJobRegistry

from live import gmt, running, run_scheduled, scheduled, woo_customer
from plugin import doctor
from plugin.admin_auth import admin_link
from plugin.cli import main
from plugin.db import DecisionRow, TimerRow
from plugin.shops import install_rules, read_rule_dir
from plugin.timers import MAX_TIMER_ATTEMPTS, fire_timer, schedule_timer, whole_second_up

RULES = Path(__file__).resolve().parent / "fixtures" / "rules_capped"  # 1 touch per 2 s, deferred
STORE = "https://store.example"
T0 = datetime(2026, 12, 6, 11, 59, 25, 753000, tzinfo=timezone.utc)
FIRE = "plugin.jobs.fire_timer"


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        yield live


def capped_shop(live):
    shop_id, secret = live.add_shop("woocommerce", STORE, consumer_key="ck_test", consumer_secret="cs_test",
                                    settings={"consent_meta_key": "_keepwell_marketing_opt_in", "name": "Keepwell Coffee"})
    with live.rt.sessions.begin() as session:
        install_rules(session, shop_id, read_rule_dir(RULES))
    return shop_id, secret


def signup_then_update(live):
    """Dave signs up at T0 (the hello touch fills the cap) and updates his profile half a second
    later: that note is deferred to T0 + 2 s. Returns (shop id, the deferral's timer row)."""
    shop_id, secret = capped_shop(live)
    live.clock.now = T0
    dave = woo_customer(customer_id=41, email="dave@example.com", first_name="Dave", modified=gmt(T0))
    assert live.post_woocommerce(shop_id, secret, "customer.created", dave).status_code == 202
    live.work()
    live.clock.now = T0 + timedelta(milliseconds=500)
    update = woo_customer(customer_id=41, email="dave@example.com", first_name="Dave",
                          modified=gmt(T0 + timedelta(seconds=1)))
    assert live.post_woocommerce(shop_id, secret, "customer.updated", update).status_code == 202
    live.work()
    (capped,) = live.rows(DecisionRow, rule_id="note")
    wake = T0 + timedelta(seconds=2)
    assert (capped.kind, capped.status, capped.reason) == ("suppressed", "suppressed", "cap")
    assert capped.detail == f"1 touch per 2s reached; deferred to {wake.isoformat()}"
    (timer,) = live.rows(TimerRow, shop_id=shop_id)
    assert (timer.wake_at, timer.status, timer.attempts) == (wake, "pending", 0)
    return shop_id, timer


def test_scheduled_times_round_up_to_the_whole_second(live):
    assert whole_second_up(T0) == datetime(2026, 12, 6, 11, 59, 26, tzinfo=timezone.utc)
    assert whole_second_up(T0.replace(microsecond=0)) == T0.replace(microsecond=0)
    live.clock.now = T0 - timedelta(seconds=5)
    schedule_timer(live.rt, "shop", "timer-key", T0)
    ((job, when),) = scheduled(live, FIRE)
    assert when.timestamp() == 1796558366 == whole_second_up(T0).timestamp()  # never T0's truncated 11:59:25
    assert ScheduledJobRegistry(queue=live.rt.queue).get_jobs_to_schedule(int(T0.timestamp())) == []


def test_a_timer_that_fires_early_decides_nothing_and_acts_at_its_time(live):
    shop_id, timer = signup_then_update(live)
    ((_, when),) = scheduled(live, FIRE)
    assert when >= timer.wake_at
    assert len(live.smtp.messages) == 1  # hello

    # The job runs 0.3 s early (a worker whose clock is behind the scheduler's): nothing is decided.
    live.clock.now = timer.wake_at - timedelta(milliseconds=300)
    assert run_scheduled(live, FIRE) == 1
    (row,) = live.rows(TimerRow, shop_id=shop_id)
    assert (row.status, row.attempts, row.error) == ("pending", 1, "fired 0.300 s before its time")
    (capped,) = live.rows(DecisionRow, rule_id="note")
    assert (capped.kind, capped.status) == ("suppressed", "suppressed")
    assert len(live.smtp.messages) == 1
    ((_, again),) = scheduled(live, FIRE)  # armed again, twice as long after wake_at as it was early
    assert again == whole_second_up(timer.wake_at + timedelta(milliseconds=600))

    live.clock.now = again
    assert run_scheduled(live, FIRE) == 1
    (touch,) = live.rows(DecisionRow, rule_id="note")
    assert (touch.kind, touch.status) == ("touch", "done"), touch.error
    assert touch.decision["at"] == again.isoformat()
    assert [m["Subject"] for m in live.smtp.messages] == ["Hello Dave", "Your profile changed"]
    assert live.rows(TimerRow, shop_id=shop_id)[0].status == "fired"
    assert scheduled(live, FIRE) == []


def test_a_timer_that_cannot_act_is_recorded_failed_and_shown(live):
    shop_id, timer = signup_then_update(live)
    live.clock.now = timer.wake_at - timedelta(minutes=5)  # a worker whose clock is 5 minutes behind
    for _ in range(MAX_TIMER_ATTEMPTS + 1):  # fired as RQ's scheduler on a right clock does, each time
        assert fire_timer(live.rt, shop_id, timer.key)
        live.work()
    assert not fire_timer(live.rt, shop_id, timer.key)
    (row,) = live.rows(TimerRow, shop_id=shop_id)
    reason = f"fired 300.000 s before its time; not armed again after {MAX_TIMER_ATTEMPTS} attempts"
    assert (row.status, row.attempts, row.error) == ("failed", MAX_TIMER_ATTEMPTS, reason)
    (failed,) = live.rows(DecisionRow, rule_id="note")
    assert (failed.kind, failed.status, failed.reason, failed.error) == ("suppressed", "failed", "cap", reason)
    assert len(live.smtp.messages) == 1

    with live.rt.sessions() as session:
        check = doctor.check_timers(session)
    assert (check.status, check.detail) == (doctor.WARN, f"1 touch(es) not sent because their timer failed "
                                                         f"(shop {shop_id} rule note customer 41: {reason})")

    env = {"DATABASE_URL": live.config.database_url, "KEEPWELL_SECRET_KEY": live.config.secret_key}
    out = CliRunner().invoke(main, ["explain", "--shop", shop_id, "--customer", "41"], env=env, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert f"ledger of shop {shop_id} for customer 41:" in out.output
    assert f"  note: suppressed failed (cap): {failed.detail}\n    FAILED: {reason}" in out.output

    client = live.app.test_client()
    link = admin_link(live.config, shop_id, 60)
    assert client.get(link[link.index("/admin"):]).status_code == 302
    page = client.get("/admin/activity").get_data(as_text=True)
    assert f'<td data-label="Status" class="status">Failed: {reason}</td>' in page
    detail = client.get(f"/admin/activity/{failed.id}").get_data(as_text=True)
    assert reason in detail


def test_a_timer_deferred_again_to_its_own_moment_is_armed_again(live):
    """A row that calls the timer due while the cap still holds the slot (a database that keeps
    whole seconds would store it so): the engine defers it to its own moment again."""
    shop_id, timer = signup_then_update(live)
    with live.rt.sessions.begin() as session:
        session.get(TimerRow, (shop_id, timer.key)).wake_at = timer.wake_at.replace(microsecond=0)
    live.clock.now = timer.wake_at - timedelta(milliseconds=300)
    assert fire_timer(live.rt, shop_id, timer.key)
    live.work()
    (row,) = live.rows(TimerRow, shop_id=shop_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.error == f"deferred again to its own time {timer.wake_at.isoformat()}"
    (capped,) = live.rows(DecisionRow, rule_id="note")
    assert (capped.kind, capped.status) == ("suppressed", "suppressed")

    live.clock.now = timer.wake_at
    assert run_scheduled(live, FIRE) == 2  # its first job and the new one: the event goes once, decided again
    (touch,) = live.rows(DecisionRow, rule_id="note")
    assert (touch.kind, touch.status) == ("touch", "done"), touch.error
    assert [m["Subject"] for m in live.smtp.messages] == ["Hello Dave", "Your profile changed"]

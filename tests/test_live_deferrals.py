"""Deferred touches with the real worker: `keepwell worker` in its own process (as the Procfile
starts it) with RQ's scheduler on real time, signed webhooks through the edge, a real SMTP server.

Dave's signup fills the cap (1 touch per 2 s); his three profile updates a moment later are all
due inside that window. The cap frees a slot every 2 s: each note goes out in turn, in the order
of the updates, exactly once; none is lost to a scheduler that keeps whole seconds.
"""
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from live import gmt, running, woo_customer
from plugin.db import DecisionRow, EffectRow, TimerRow
from test_timers import capped_shop

DEADLINE_S = 40
ROOT = Path(__file__).resolve().parents[1]
KEEPWELL = Path(sys.executable).with_name("keepwell")  # the console script the Procfile runs


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        yield live


def start_worker(live, log_path):
    """`keepwell worker`, configured through the environment only, as on a deployment."""
    c = live.config
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "SMTP_URL", "KEEPWELL_"))}
    env.update({"REDIS_URL": c.redis_url, "DATABASE_URL": c.database_url, "SMTP_URL": c.smtp_url,
                "KEEPWELL_QUEUE": c.queue, "KEEPWELL_SECRET_KEY": ",".join(c.secret_keys),
                "KEEPWELL_APP_URL": c.app_url, "KEEPWELL_MAIL_FROM": c.mail_from,
                "PYTHONPATH": str(ROOT)})  # the code under test
    log = open(log_path, "wb")
    return subprocess.Popen([str(KEEPWELL), "worker"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True), log


def stop_worker(proc, log) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    log.close()


def test_three_touches_due_inside_one_cap_window_all_go_out_in_order_once(live, tmp_path):
    shop_id, secret = capped_shop(live)
    proc, log = start_worker(live, tmp_path / "worker.log")
    try:
        now = datetime.now(timezone.utc)
        dave = woo_customer(customer_id=41, email="dave@example.com", first_name="Dave", modified=gmt(now))
        assert live.post_woocommerce(shop_id, secret, "customer.created", dave).status_code == 202
        updates = []
        for k in (1, 2, 3):  # each update is its own delivery, modified a second apart (event ids differ)
            update = woo_customer(customer_id=41, email="dave@example.com", first_name="Dave",
                                  modified=gmt(now + timedelta(seconds=k)))
            assert live.post_woocommerce(shop_id, secret, "customer.updated", update).status_code == 202
            updates.append(f"wc:customer.updated:41:{update['date_modified_gmt']}")

        deadline = time.monotonic() + DEADLINE_S
        while len(live.smtp.messages) < 4 or any(t.status == "pending" for t in live.rows(TimerRow, shop_id=shop_id)):
            assert proc.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, ([m["Subject"] for m in live.smtp.messages],
                                                 (tmp_path / "worker.log").read_text()[-3000:])
            time.sleep(0.1)
        time.sleep(2.5)  # a slot later: nothing else arrives
    finally:
        stop_worker(proc, log)

    msgs = live.smtp.messages
    assert [m["Subject"] for m in msgs] == ["Hello Dave"] + ["Your profile changed"] * 3
    assert len({m["Message-ID"] for m in msgs}) == 4
    notes = {d.key: d for d in live.rows(DecisionRow, rule_id="note")}
    assert sorted(notes) == sorted(f"{shop_id}:note:41:customer.updated:{u}" for u in updates)
    assert all((d.kind, d.status) == ("touch", "done") for d in notes.values()), \
        [(d.kind, d.status, d.reason, d.detail, d.error) for d in notes.values()]
    # in the order of the updates, one per slot of the cap
    by_message = {e.message_id: e.decision_key for e in live.rows(EffectRow, shop_id=shop_id, type="email")}
    sent = [by_message[m["Message-ID"]] for m in msgs[1:]]
    assert sent == [f"{shop_id}:note:41:customer.updated:{u}" for u in updates]
    (hello,) = live.rows(DecisionRow, rule_id="hello")
    times = [datetime.fromisoformat(d.decision["at"]) for d in [hello] + [notes[k] for k in sent]]
    assert all(b - a >= timedelta(seconds=2) for a, b in zip(times, times[1:])), times
    # every deferral was a timer, and each fired once and is done with
    timers = live.rows(TimerRow, shop_id=shop_id)
    assert len(timers) >= 3 and all(t.status == "fired" for t in timers), [(t.key, t.status, t.error) for t in timers]

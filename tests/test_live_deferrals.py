"""Deferred touches with the real worker: the Procfile's `keepwell worker` in its own process
with RQ's scheduler on real time, signed webhooks through the edge, a real SMTP server.

Dave's signup fills the cap (1 touch per 2 s); his three profile updates a moment later are all
due inside that window. The cap frees a slot every 2 s: each note goes out in turn, in the order
of the updates, exactly once; none is lost to a scheduler that keeps whole seconds.
"""
import time
from datetime import datetime, timedelta, timezone

import pytest

from children import wait_for
from live import gmt, running, woo_customer
from plugin.db import DecisionRow, EffectRow, TimerRow
from procfile import procfile_worker
from test_timers import capped_shop


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        yield live


def test_three_touches_due_inside_one_cap_window_all_go_out_in_order_once(live, tmp_path):
    shop_id, secret = capped_shop(live)
    with procfile_worker(live, tmp_path / "worker.log") as worker:
        now = datetime.now(timezone.utc)
        dave = woo_customer(customer_id=41, email="dave@example.com", first_name="Dave", modified=gmt(now))
        assert live.post_woocommerce(shop_id, secret, "customer.created", dave).status_code == 202
        updates = []
        for k in (1, 2, 3):  # each update is its own delivery, modified a second apart (event ids differ)
            update = woo_customer(customer_id=41, email="dave@example.com", first_name="Dave",
                                  modified=gmt(now + timedelta(seconds=k)))
            assert live.post_woocommerce(shop_id, secret, "customer.updated", update).status_code == 202
            updates.append(f"wc:customer.updated:41:{update['date_modified_gmt']}")

        def all_sent():
            return len(live.smtp.messages) >= 4 and not live.rows(TimerRow, shop_id=shop_id, status="pending")

        wait_for(all_sent, "the signup's and the three updates' emails", check=worker.check, every_s=0.1)
        time.sleep(2.5)  # a slot later: nothing else arrives
        worker.check()

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

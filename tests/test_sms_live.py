"""Text messages end to end through the Procfile's `keepwell worker` (its own process, on demo
time), on SQLite and PostgreSQL: WooCommerce webhooks through the real app, coupons in the store
sandbox (a real HTTP server), texts through the real Twilio provider code to the local SMS sink
(a loopback server speaking Twilio's API), emails to a real SMTP server. SMS consent and the
stated channel arrive as the canonical events the inbound webhook and the personal page push.

One rule, a second-purchase thank-you with a coupon and a message on the customer's preferred
channel: Dana (prefers texts) gets it in Hebrew as a UCS-2 text of counted segments, its cost
recorded; Eli (no stated preference) by email, the shop's first channel; Ben (no consent on
either channel) is a recorded suppression; Gil unsubscribed at Twilio (21610): a recorded skip
and his SMS consent withdrawn; Noa orders at 22:00 in Jerusalem: a recorded deferral, and her
text goes out at 09:00."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from live import finish, gmt, live_redis, start, woo_customer, woo_order
from procfile import ON_DEMO_TIME, procfile_worker, trouble
from plugin.db import CustomerRow, DecisionRow, EffectRow, TimerRow
from plugin.demo.clock import ENV as CLOCK_ENV, DemoClock
from plugin.demo.sandbox import Server, StoreSandbox
from plugin.engine.sms import segments
from plugin.analytics import build_report
from plugin.pipeline import sweep_timers
from plugin.reports import format_table, load_inputs
from plugin.shops import install_rules, set_sms
from plugin.sms.sink import SmsSink

WOO_KEY, WOO_SECRET = "ck_sms", "cs_sms"
SID, TOKEN = "AC" + "5a" * 16, "sms-live-auth-token"
RULES = """\
settings:
  sms: {region: IL, time_zone: Asia/Jerusalem, price_per_segment: 0.0079 USD}
rules:
  - id: thanks
    name: Thank you
    trigger: order.paid
    holdout: 0%
    actions:
      - coupon: {discount: 15%, expires_in: 30d, code_prefix: THANKS}
      - message:
          channel: preferred
          sms: {template: thanks}
          email: {template: thanks, subject: "Thank you, {{ customer.first_name }}"}
"""
TEXT = ("שלום {{ customer.first_name }}! תודה על ההזמנה מ{{ shop.name }}. קוד ההנחה שלך: {{ coupon.code }} "
        "({{ coupon.discount }}), בתוקף עד {{ coupon.expires_at }}. להסרה השיבו STOP\n")
FILES = {"rules.yaml": RULES, "templates/thanks.sms.txt": TEXT,
         "templates/thanks.html": "<p>Thanks {{ customer.first_name }}: {{ coupon.code }}</p>",
         "templates/thanks.txt": "Thanks {{ customer.first_name }}: {{ coupon.code }}"}
PEOPLE = {  # id: (name, email consent, phone and SMS consent, stated channel)
    101: ("דנה", True, "052-555-1234", "sms"),
    102: ("נועה", True, "054-765-4321", "sms"),
    103: ("Ben", False, None, None),
    104: ("Eli", True, "+972 52 555 0104", None),
    105: ("Gil", False, "053-555-0105", "sms"),
}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    return f"sqlite:///{tmp_path}/keepwell.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")


def test_texts_through_the_worker(database, redis_server, smtp, tmp_path):
    sandbox = StoreSandbox("shpat_unused", WOO_KEY, WOO_SECRET)
    server = Server(sandbox).start()
    sandbox.url = server.url
    sink = SmsSink(tmp_path / "sms.jsonl", credentials={SID: TOKEN}).start()
    sink.unsubscribed.add("+972535550105")  # Gil replied STOP to the shop's number at Twilio
    live = start(live_redis(redis_server), database, smtp)
    try:
        _play(live, sandbox, sink, smtp, tmp_path)
    finally:
        finish(live)
        sink.stop()
        server.stop()


def _play(live, sandbox, sink, smtp, tmp_path):
    clock = DemoClock(tmp_path / "clock")
    live.rt.clock = clock
    day = (clock() + timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)  # 10:00 in Jerusalem
    clock.set(day)
    shop_id, secret = live.add_shop("woocommerce", "https://sms-shop.example", consumer_key=WOO_KEY,
                                    consumer_secret=WOO_SECRET, api_url=sandbox.url,
                                    settings={"consent_meta_key": "_keepwell_marketing_opt_in", "name": "קפה טוב"})
    with live.rt.sessions.begin() as session:
        set_sms(session, live.config, shop_id, {"account_sid": SID, "auth_token": TOKEN, "from": "+14155552345"})
        install_rules(session, shop_id, FILES)

    def post(topic, payload):
        assert live.post_woocommerce(shop_id, secret, topic, payload).status_code == 202

    def push(event_id, cid, at, **body):
        live.rt.handoff.push_event(shop_id, {"id": event_id, "shop": shop_id, "customer_id": str(cid),
                                             "occurred_at": at.isoformat(), **body})

    def order(cid, order_id, at):
        sandbox.add_order("woocommerce", str(order_id), str(cid))
        o = woo_order(order_id, cid, email=f"c{cid}@example.co.il", total="120.00", modified=gmt(at),
                      consent="yes" if PEOPLE[cid][1] else "no")
        o["billing"]["first_name"] = PEOPLE[cid][0]
        post("order.created", o)

    with procfile_worker(live, tmp_path / "worker.log", ON_DEMO_TIME,
                         {CLOCK_ENV: str(clock.path), "KEEPWELL_TWILIO_API_URL": sink.url}) as worker:
        for cid, (name, consent, phone, channel) in PEOPLE.items():
            record = woo_customer(cid, email=f"c{cid}@example.co.il", first_name=name,
                                  consent="yes" if consent else "no", modified=gmt(day))
            record["billing"]["first_name"] = name
            sandbox.add_customer("woocommerce", str(cid), record)
            post("customer.created", record)
            if phone:  # the SMS opt-in (Twilio START, a store's SMS consent)
                push(f"sms-start:{cid}", cid, day + timedelta(seconds=1), type="customer.consent_changed",
                     customer={"id": str(cid), "phone": phone, "sms_consent": True})
            if channel:  # chosen on the personal page
                push(f"pref:{cid}", cid, day + timedelta(seconds=2), type="customer.preference_changed",
                     data={"preferred_channel": channel})
        worker.wait_idle([shop_id])
        at = day + timedelta(minutes=5)
        clock.set(at)
        for cid in (101, 103, 104, 105):
            order(cid, 5000 + cid, at)
        worker.wait_idle([shop_id])

        # Dana: the thank-you as a text in Hebrew, UCS-2, its segments and cost on the effect
        (dana,) = [m for m in sink.messages if m["to"] == "+972525551234"]
        dana_touch = _decision(live, shop_id, "101")
        coupon_code = next(a["code"] for a in dana_touch.decision["actions"] if a["type"] == "coupon")
        assert coupon_code in dana["body"] and "שלום דנה! תודה על ההזמנה מקפה טוב" in dana["body"]
        count = segments(dana["body"])
        assert count.encoding == "UCS-2" and count.parts == 2 and dana["num_segments"] == "2"
        sms_effect = _effect(live, dana_touch.key, "sms")
        assert (sms_effect.status, sms_effect.message_id, sms_effect.segments) == ("done", dana["sid"], 2)
        assert (Decimal(sms_effect.cost), sms_effect.cost_currency) == (Decimal("0.0158"), "USD")
        # Eli: no stated channel, the shop's first (email); the same coupon flow
        eli = [m for m in smtp.messages if m["To"].addresses[0].addr_spec == "c104@example.co.il"]
        assert [str(m["Subject"]) for m in eli] == ["Thank you, Eli"]
        assert not [m for m in sink.messages if m["to"] == "+972525550104"]
        # Ben: consent on neither channel
        ben = _decision(live, shop_id, "103")
        assert (ben.kind, ben.reason, ben.status) == ("suppressed", "consent", "suppressed")
        assert "not opted in to marketing on any of email, sms" in ben.detail
        # Gil: Twilio says he unsubscribed (21610): a recorded skip, and his SMS consent withdrawn
        gil_effect = _effect(live, _decision(live, shop_id, "105").key, "sms")
        assert gil_effect.status == "skipped" and "21610" in gil_effect.error and gil_effect.cost is None
        assert _state(live, shop_id, "105")["sms_consent"] is False

        # Noa orders at 22:00 in Jerusalem: the text waits for 09:00, recorded as a deferral
        night = day + timedelta(hours=12)
        clock.set(night)
        order(102, 5102, night)
        worker.wait_idle([shop_id])
        noa = _decision(live, shop_id, "102")
        assert (noa.kind, noa.reason, noa.status) == ("suppressed", "quiet_hours", "suppressed")
        morning = day + timedelta(days=1, hours=-1)  # 07:00 UTC: 09:00 in Jerusalem
        assert f"deferred to {morning.isoformat()}" in noa.detail
        assert not [m for m in sink.messages if m["to"] == "+972547654321"]
        with live.rt.sessions() as session:
            assert session.scalar(select(TimerRow.wake_at).where(TimerRow.shop_id == shop_id,
                                                                 TimerRow.customer_id == "102")) == morning
        clock.set(morning + timedelta(minutes=1))
        sweep_timers(live.rt, grace=timedelta(0))
        worker.wait_idle([shop_id])
        (text,) = [m for m in sink.messages if m["to"] == "+972547654321"]
        assert "שלום נועה!" in text["body"]
        noa = _decision(live, shop_id, "102")
        assert (noa.kind, noa.status) == ("touch", "done")
        assert trouble(live, [shop_id]) == {}, worker.output()
        assert "Traceback" not in worker.output(), worker.output()
    assert len(sink.messages) == 2  # Dana and Noa; nobody else got a text
    # the texts' cost is the rule's own line in its report and part of its send cost (its ROI)
    with live.rt.sessions() as session:
        report = build_report(load_inputs(session, shop_id), now=clock())
        costs = session.scalars(select(EffectRow.cost).where(EffectRow.shop_id == shop_id, EffectRow.type == "sms",
                                                             EffectRow.status == "done")).all()
    thanks = report.rules["thanks"]
    assert (thanks.texts_sent, thanks.emails_sent) == (2, 1)
    assert thanks.sms_cost == sum(Decimal(c) for c in costs) > 0
    assert thanks.send_cost == thanks.sms_cost + Decimal("0.001")  # and the email
    assert f"thanks: 2 texts, {thanks.sms_cost} USD" in format_table(report, shop_id)


def _decision(live, shop_id, cid):
    with live.rt.sessions() as session:
        (row,) = session.scalars(select(DecisionRow).where(DecisionRow.shop_id == shop_id, DecisionRow.customer_id == cid,
                                                           DecisionRow.rule_id == "thanks")).all()
        session.expunge(row)
        return row


def _effect(live, key, kind):
    with live.rt.sessions() as session:
        row = session.scalar(select(EffectRow).where(EffectRow.decision_key == key, EffectRow.type == kind))
        session.expunge(row)
        return row


def _state(live, shop_id, cid):
    with live.rt.sessions() as session:
        return session.get(CustomerRow, (shop_id, cid)).state


assert datetime and timezone

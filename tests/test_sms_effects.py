"""The sms effect handler run by the effects runner (in process, real database and Redis), Twilio
mocked at the HTTP layer with its documented answers: consent and the number are read again at
the last moment (a STOP after the decision means no text), an invalid number or a shop without a
provider is a recorded skip with no request, Twilio's 429 is retried after its Retry-After, 21211
is a recorded skip, and a sent text records its segments and cost."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import responses

from plugin import effects
from plugin.db import CustomerRow, DecisionRow, EffectRow
from plugin.engine.actions import Sms
from plugin.engine.decisions import Decision, Kind
from plugin.engine.state import new_state, state_to_dict
from plugin.shops import install_rules, set_sms
from engine_helpers import day
from live import running, scheduled

FIXTURES = Path(__file__).parent / "fixtures" / "twilio"
SID, TOKEN = "AC" + "12" * 16, "effects-auth-token"
URL = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
FILES = {"rules.yaml": "settings:\n  sms: {region: IL, price_per_segment: 0.05 ILS}\nrules: []\n",
         "templates/hello.sms.txt": "שלום {{ customer.first_name }}, תודה!"}


@pytest.fixture
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        live.clock.now = day(1)
        yield live


def touch(live, *, phone="052-555-1234", consent=True, provider=True) -> tuple[str, str]:
    shop_id, _ = live.add_shop("shopify", "brew-and-bean.myshopify.com", access_token="shpat_sms")
    state = replace(new_state(shop_id, "77"), first_name="דנה", sms_phone=phone, sms_consent=consent)
    action = Sms(key=f"{shop_id}:hello:77:order.paid:1:0", template="hello", customer_id="77", to=phone)
    d = Decision(kind=Kind.TOUCH, key=f"{shop_id}:hello:77:order.paid:1", shop=shop_id, rule_id="hello",
                 customer_id="77", at=datetime(2026, 12, 10, 10, tzinfo=timezone.utc), event_id="e1",
                 marketing=True, actions=(action,))
    with live.rt.sessions.begin() as session:
        install_rules(session, shop_id, FILES)
        if provider:
            set_sms(session, live.config, shop_id, {"account_sid": SID, "auth_token": TOKEN, "from": "+14155552345"})
        session.add(CustomerRow(shop_id=shop_id, customer_id="77", state=state_to_dict(state)))
        session.add(DecisionRow(shop_id=shop_id, key=d.key, rule_id="hello", customer_id="77", kind="touch",
                                status="pending", event_id="e1", decision=d.to_dict()))
        session.add(EffectRow(shop_id=shop_id, key=action.key, decision_key=d.key, customer_id="77", type="sms"))
    return shop_id, d.key


def twilio(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@responses.activate
@pytest.mark.parametrize("given, why", [
    ({"consent": False}, "customer has not opted in to SMS marketing"),  # STOP after the decision
    ({"phone": "050-12"}, "'050-12' is not a valid phone number"),
    ({"phone": None}, "no phone number"),
    ({"provider": False}, "the shop has no SMS provider (`keepwell shop sms`)"),
])
def test_a_customer_who_cannot_get_the_text_is_a_recorded_skip(live, given, why):
    shop_id, key = touch(live, **given)
    assert effects.run(live.rt, shop_id, key) == "done"
    (eff,) = live.rows(EffectRow, shop_id=shop_id)
    assert (eff.status, eff.error, eff.cost, eff.message_id) == ("skipped", why, None, None)
    assert len(responses.calls) == 0


@responses.activate
def test_twilio_saying_later_is_retried_and_the_sent_text_records_its_cost(live):
    shop_id, key = touch(live)
    responses.post(URL, json=twilio("error_20429.json"), status=429, headers={"Retry-After": "25"})
    assert effects.run(live.rt, shop_id, key) == "pending"
    (eff,) = live.rows(EffectRow, shop_id=shop_id)
    assert (eff.status, eff.attempts) == ("pending", 1) and "Too Many Requests" in eff.error
    ((job, when),) = scheduled(live)
    assert job.args == (shop_id, key)
    assert timedelta(seconds=20) < when - datetime.now(timezone.utc) <= timedelta(seconds=26)
    responses.replace(responses.POST, URL, json=twilio("message_created.json"), status=201)
    assert effects.run(live.rt, shop_id, key) == "done"
    (eff,) = live.rows(EffectRow, shop_id=shop_id)
    assert (eff.status, eff.message_id, eff.segments, eff.error) == ("done", "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1, None)
    assert (Decimal(eff.cost), eff.cost_currency) == (Decimal("0.05"), "ILS")
    form = parse_qs(responses.calls[-1].request.body)
    assert form["To"] == ["+972525551234"] and form["Body"] == ["שלום דנה, תודה!"]


@responses.activate
def test_an_invalid_number_at_twilio_is_a_recorded_skip_not_a_retry(live):
    shop_id, key = touch(live)
    responses.post(URL, json=twilio("error_21211.json"), status=400)
    assert effects.run(live.rt, shop_id, key) == "done"
    (eff,) = live.rows(EffectRow, shop_id=shop_id)
    assert eff.status == "skipped" and "21211" in eff.error and eff.cost is None
    assert scheduled(live) == []

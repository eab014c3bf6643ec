"""The merchant's own events end to end: ``POST /api/v1/events`` on the real Flask app with the
shop's API key, the real worker, Shopify's GraphQL Admin API behind `responses` (the new
customer's consent) and aiosmtpd: a custom.heatwave event creates the customer and fires the
rule that tests its data; a wrong or rotated key is refused, a duplicate id is processed once,
a bad body is answered with the field that is wrong, and too many events get 429."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import responses

from live import FakeShopify, decisions, finish, iso, mails_to, start, text_and_html, work
from plugin import api_keys
from plugin.db import CustomerRow
from plugin.rulefile import RULES_DIR
from plugin.shops import install_rules, read_rule_dir

DOMAIN = "cool-drinks.myshopify.com"
NOW = datetime(2027, 7, 1, 11, 0, tzinfo=timezone.utc)
RULES = """
rules:
  - id: heatwave_flavour
    name: A heat wave, a new refreshing flavour
    trigger: {event: custom.heatwave}
    when:
      all:
        - event.data.temperature: {at_least: 30}
        - event.data.city: {in: [Tel Aviv, חיפה]}
    holdout: 0%
    actions:
      - email:
          template: heatwave
          subject: "{{ customer.first_name }}, it is hot: try our new mint lemonade"
"""
TEMPLATES = {"templates/heatwave.txt": "Cool down with mint lemonade.\n{{ shop.url }}\nUnsubscribe: {{ unsubscribe_url }}\n",
             "templates/heatwave.html": "<p>Cool down with mint lemonade.</p><p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>"}


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    url = f"sqlite:///{tmp_path}/keepwell.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    live = start(redis_server, url, smtp)
    live.clock.now = NOW
    try:
        yield live
    finally:
        finish(live)


@pytest.fixture
def shop(live):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        store = FakeShopify(rsps, DOMAIN, "shpat_cool")
        shop_id, _ = live.add_shop("shopify", DOMAIN, access_token="shpat_cool", settings={"name": "Cool Drinks"})
        files = {k: v for k, v in read_rule_dir(RULES_DIR).items() if k.startswith("templates/")}
        files.update({"heat.yaml": RULES, **TEMPLATES})
        with live.rt.sessions.begin() as session:
            install_rules(session, shop_id, files)
            key = api_keys.rotate(session, live.config, shop_id)
        store.consents["8801"] = ("SUBSCRIBED", iso(NOW - timedelta(days=90)))
        yield shop_id, key, store


def post(live, key: str | None, body, headers: dict | None = None):
    h = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    if isinstance(body, (dict, list)):
        return live.client.post("/api/v1/events", json=body, headers=h)
    return live.client.post("/api/v1/events", data=body, headers=h)


def heatwave(event_id: str = "heat-2027-07-01-8801", temperature=36, city="Tel Aviv", customer: str = "8801") -> dict:
    return {"id": event_id, "type": "custom.heatwave",
            "customer": {"id": customer, "email": f"noa.{customer}@example.co.il", "first_name": "נועה", "locale": "he"},
            "data": {"temperature": temperature, "city": city, "source": "weather-feed"}}


def test_a_heatwave_event_creates_the_customer_and_sends_the_email_once(live, shop):
    shop_id, key, store = shop
    r = post(live, key, heatwave())
    assert r.status_code == 202 and r.get_json() == {"status": "accepted", "id": "heat-2027-07-01-8801"}
    again = post(live, key, heatwave())
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    work(live)
    (row,) = live.rows(CustomerRow, shop_id=shop_id, customer_id="8801")
    assert row.state["email"] == "noa.8801@example.co.il" and row.state["first_name"] == "נועה"
    (mail,) = mails_to(live, "noa.8801@example.co.il")
    assert mail["Subject"] == "נועה, it is hot: try our new mint lemonade"
    assert "mint lemonade" in text_and_html(mail)[0]
    (d,) = decisions(live, "heatwave_flavour", "8801")
    assert d.kind == "touch" and d.status == "done" and d.event_id == "api:heat-2027-07-01-8801"
    # the same event again later (a client retry with the Idempotency-Key header): still once
    assert post(live, key, {k: v for k, v in heatwave().items() if k != "id"},
                {"Idempotency-Key": "heat-2027-07-01-8801"}).status_code == 200
    work(live)
    assert len(mails_to(live, "noa.8801@example.co.il")) == 1


def test_conditions_on_the_events_data_decide(live, shop):
    shop_id, key, store = shop
    store.consents["8802"] = ("SUBSCRIBED", iso(NOW - timedelta(days=90)))
    assert post(live, key, heatwave("cool-day", temperature="24.5", customer="8802")).status_code == 202
    assert post(live, key, heatwave("haifa-heat", temperature="31", city="חיפה", customer="8802")).status_code == 202
    work(live)
    (mail,) = mails_to(live, "noa.8802@example.co.il")  # 24.5 is no heat wave; 31 (sent as text) in Haifa is
    (d,) = [d for d in decisions(live, "heatwave_flavour", "8802") if d.kind == "touch"]
    assert d.event_id == "api:haifa-heat"


def test_a_wrong_missing_or_rotated_key_is_refused(live, shop):
    shop_id, key, _ = shop
    assert post(live, None, heatwave()).status_code == 401
    wrong = post(live, key[:-4] + "AAAA", heatwave())
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert post(live, f"kw_no-such-shop.{key.rpartition('.')[2]}", heatwave()).status_code == 401
    with live.rt.sessions.begin() as session:
        new = api_keys.rotate(session, live.config, shop_id)
    assert post(live, key, heatwave("after-rotation")).status_code == 401
    assert post(live, new, heatwave("after-rotation")).status_code == 202


@pytest.mark.parametrize("body, status, field, words", [
    (b"{not json", 400, None, "not JSON"),
    (b'{"data": {"pad": "' + b"x" * (1024 * 1024) + b'"}}', 413, None, "over the 1048576-byte limit"),
    ({**heatwave(), "customer": {"email": "a@example.com"}}, 422, "customer.id", "customer.id is required"),
    ({**heatwave(), "type": "heatwave"}, 422, "type", "must be custom."),
    ({**heatwave(), "type": "order.paid"}, 422, "type", "must be custom."),
    ({**heatwave(), "customer": {"id": "1", "email": "not-an-address"}}, 422, "customer.email", "is not a valid email"),
    ({**heatwave(), "customer": {"id": "1", "accepts_marketing": True}}, 422, "customer", "customer has unknown field(s) accepts_marketing; allowed: id, email"),
    ({**heatwave(), "data": {"event": {"id": "x"}}}, 422, "data", "may not have a field named 'event'"),
    ({**heatwave(), "data": [1, 2]}, 422, "data", "is not of type 'object'"),
    ({k: v for k, v in heatwave().items() if k != "id"}, 422, "id", "give the event an id"),
    ({**heatwave(), "occurred_at": "yesterday"}, 422, None, "yesterday"),
])
def test_a_bad_body_is_answered_with_the_field_and_nothing_is_queued(live, shop, body, status, field, words):
    shop_id, key, _ = shop
    r = post(live, key, body)
    assert r.status_code == status, r.get_json()
    assert words in r.get_json()["error"] and r.get_json().get("field") == field, r.get_json()
    assert live.rt.redis.llen(live.rt.handoff.keys(shop_id).backlog) == 0


@pytest.mark.parametrize("live", ["sqlite"], indirect=True)
def test_too_many_events_a_minute_get_429_with_retry_after(live, shop):
    from dataclasses import replace

    from plugin.app import create_app

    shop_id, key, _ = shop
    client = create_app(replace(live.config, api_events_per_minute=5)).test_client()

    def send(event_id):
        return client.post("/api/v1/events", json=heatwave(event_id), headers={"Authorization": f"Bearer {key}"})

    codes = [send(f"burst-{n}").status_code for n in range(5)]
    r = send("one-too-many")
    accepted = 5
    if r.status_code == 202:  # the minute turned over during the burst: the next burst fills the new one
        codes = [send(f"burst-again-{n}").status_code for n in range(4)]
        r = send("one-too-many-again")
        accepted += 5
    assert set(codes) == {202}
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    assert "more than 5 events a minute" in r.get_json()["error"]
    work(live)
    assert len(mails_to(live, "noa.8801@example.co.il")) == accepted  # each accepted event decided, the refused not


def _path(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.mark.parametrize("live", ["sqlite"], indirect=True)
def test_the_dashboard_shows_the_key_once_and_rotates_it(live):
    import re

    from plugin.admin_auth import admin_link

    shop_id, _ = live.add_shop("woocommerce", "https://hanut.example", consumer_key="ck", consumer_secret="cs")
    client = live.app.test_client()
    client.get(_path(admin_link(live.config, shop_id, 60)))
    page = client.get("/admin/api").get_data(as_text=True)
    assert "No key yet." in page and "https://keepwell.test/api/v1/events" in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert client.post("/admin/api", data={"csrf": "stale"}).status_code == 400
    made = client.post("/admin/api", data={"csrf": csrf}).get_data(as_text=True)
    first = re.search(r'<code dir="ltr">(kw_[^<]+)</code>', made).group(1)
    assert post(live, first, heatwave("from-dashboard")).status_code == 202
    page = client.get("/admin/api").get_data(as_text=True)
    assert f"…{first[-4:]}" in page and first not in page  # shown once; only its end is kept
    second = re.search(r'<code dir="ltr">(kw_[^<]+)</code>',
                       client.post("/admin/api", data={"csrf": csrf}).get_data(as_text=True)).group(1)
    assert post(live, first, heatwave("old-key")).status_code == 401
    assert post(live, second, heatwave("new-key")).status_code == 202


@pytest.mark.parametrize("live", ["sqlite"], indirect=True)
def test_keepwell_shop_api_key_rotates_and_describes(live, monkeypatch):
    from click.testing import CliRunner

    from plugin.cli import main

    shop_id, _ = live.add_shop("woocommerce", "https://hanut.example", consumer_key="ck", consumer_secret="cs")
    monkeypatch.setenv("DATABASE_URL", live.config.database_url)
    monkeypatch.setenv("KEEPWELL_SECRET_KEY", ",".join(live.config.secret_keys))
    assert "has no API key yet" in CliRunner().invoke(main, ["shop", "api-key", shop_id]).output
    made = CliRunner().invoke(main, ["shop", "api-key", shop_id, "--rotate"])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[0]
    assert post(live, key, heatwave("from-cli")).status_code == 202
    shown = CliRunner().invoke(main, ["shop", "api-key", shop_id]).output
    assert f"ending in ...{key[-4:]}" in shown and key not in shown
    gone = CliRunner().invoke(main, ["shop", "api-key", "wo_nope", "--rotate"])
    assert gone.exit_code == 1 and "no shop 'wo_nope'" in gone.output

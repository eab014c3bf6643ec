"""How the dashboard speaks: customers' store-admin links, statuses in words, durations in days,
a decision's story from the shipped icebreaker rule; the front page and the test send."""
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace


from plugin.admin.charts import money
from plugin.admin.people import admin_link, days, person, status_text, zone
from plugin.admin.preview import with_direction
from plugin.admin.story import story
from plugin.admin_auth import admin_link as sign_in_link
from plugin.rulefile import lint_sources
from test_dashboard import live, path  # noqa: F401  (fixture)

SHOPIFY = {"domain": "dash-test.myshopify.com", "platform": "shopify"}
UTC = timezone.utc


def test_customers_link_to_their_page_in_the_store_admin():
    assert admin_link(SHOPIFY, "7001") == "https://admin.shopify.com/store/dash-test/customers/7001"
    assert admin_link({"domain": "shop.example", "platform": "shopify"}, "7001") == \
        "https://shop.example/admin/customers/7001"
    assert admin_link({"domain": "https://w.example/", "platform": "woocommerce"}, "12") == \
        "https://w.example/wp-admin/user-edit.php?user_id=12"
    assert admin_link(SHOPIFY, "guest:abc") is None  # no page in the store for it
    assert person(SHOPIFY, "7001", {"first_name": "דנה", "last_name": "לוי", "email": "d@example.com"})["name"] == "דנה לוי"
    assert person(SHOPIFY, "7001", {"email": "d@example.com"})["name"] == "d@example.com"
    assert person(SHOPIFY, "7001", None)["name"] == "Customer 7001"


def test_statuses_and_durations_in_words():
    tz = zone("Asia/Jerusalem")
    assert status_text("touch", "done", None, "", None, True, tz) == "Sent"
    assert status_text("touch", "failed", None, "", "SMTP said no", True, tz) == "Failed: SMTP said no"
    assert status_text("suppressed", "suppressed", "consent", "", None, False, tz) == "Skipped: no marketing consent"
    deferred = "2 touches per 7 days reached; deferred to 2026-12-19T23:30:00+00:00"
    assert status_text("suppressed", "suppressed", "cap", deferred, None, False, tz) == "Waiting until Dec 20"
    assert status_text("suppressed", "failed", "cap", deferred, "timer failed", False, tz) == "Failed: timer failed"
    assert days(timedelta(days=14)) == "14 days" and days(timedelta(days=1)) == "1 day"
    assert days(timedelta(hours=36)) == "1.5 days"
    assert zone("Nowhere/Else") == UTC


def test_a_touch_of_the_icebreaker_reads_as_a_story():
    from pathlib import Path

    rules = Path(__file__).resolve().parents[1] / "rules"
    ruleset, problems = lint_sources([("icebreaker.yaml", (rules / "icebreaker.yaml").read_bytes())],
                                     {p.name: p.read_text() for p in (rules / "templates").iterdir()})
    assert not problems
    rule = ruleset.by_id["icebreaker"]
    row = SimpleNamespace(shop_id="s1", rule_id="icebreaker", customer_id="c1", key="s1:icebreaker:c1:order.paid:1201",
                          kind="touch", status="done", reason=None, detail="", error=None,
                          decision={"actions": [{"type": "coupon", "code": "THANKS-AB12", "discount_type": "percent",
                                                 "value": "15"}, {"type": "email", "template": "icebreaker"}]})
    redeemed = {"order": "1244", "revenue": Decimal("64"), "currency": "USD"}
    assert " → ".join(story(row, rule, redeemed, money)) == (
        "Order #1201 paid → waited 14 days → still no second order → sent 15% coupon THANKS-AB12 by email → "
        "redeemed on order #1244 (+64.00 USD)")
    assert story(row, rule, None, money)[-1] == "not redeemed yet"
    skipped = SimpleNamespace(**{**vars(row), "kind": "suppressed", "reason": "holdout"})
    assert story(skipped, rule, None, money)[-1] == "skipped: held out to measure lift"


def test_the_preview_is_laid_out_in_the_chosen_direction():
    page = '<!doctype html><html lang="en" dir="ltr"><body>Hi</body></html>'
    assert '<html lang="en" dir="rtl">' in with_direction(page, "rtl")
    assert with_direction("<p>Hi</p>", "rtl") == '<div dir="rtl"><p>Hi</p></div>'


def test_the_front_page_leads_to_the_dashboard(live):
    r = live.app.test_client().get("/?dir=rtl")
    assert r.status_code == 302 and r.headers["Location"].startswith("/admin") and "dir=rtl" in r.headers["Location"]


def test_a_test_email_goes_to_the_shops_own_address_only(live):
    now = datetime.now(UTC).isoformat()
    a, _ = live.add_shop("woocommerce", "https://a.example", consumer_key="ck", consumer_secret="cs",
                         settings={"profile": {"email": "owner@a.example", "fetched_at": now}})
    client = live.app.test_client()
    client.get(path(sign_in_link(live.config, a, 60)))
    page = client.get("/admin/rules/preview?rule=icebreaker&direction=rtl").get_data(as_text=True)
    assert 'id="preview-html"' in page and "THANKS-PREVIEW" in page and "Send a test to owner@a.example" in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert client.post("/admin/rules/preview/send", data={"csrf": "stale", "rule": "icebreaker"}).status_code == 400
    assert client.post("/admin/rules/preview/send", data={"csrf": csrf, "rule": "nope"}).status_code == 404
    r = client.post("/admin/rules/preview/send", data={"csrf": csrf, "rule": "icebreaker", "direction": "rtl",
                                                       "to": "someone@else.example"})
    assert r.status_code == 302 and "sent=owner@a.example" in r.headers["Location"]
    (sent,) = live.smtp.messages
    assert sent["To"] == "owner@a.example" and sent["Subject"].startswith("[Test] ")
    assert 'dir="rtl"' in sent.get_body(("html",)).get_content()


def test_times_are_in_the_zone_the_store_reported(live):
    from plugin.db import DecisionRow

    at = datetime(2026, 12, 20, 22, 30, tzinfo=UTC)
    a, _ = live.add_shop("shopify", "zone-test.myshopify.com", access_token="shpat_x",
                         settings={"profile": {"timezone": "Asia/Jerusalem", "fetched_at": at.isoformat()}})
    with live.rt.sessions.begin() as s:
        s.add(DecisionRow(shop_id=a, key=f"{a}:welcome:7001:customer.created", rule_id="welcome", customer_id="7001",
                          kind="touch", status="done", event_id="e1", decision={"at": at.isoformat(), "actions": []}))
    client = live.app.test_client()
    client.get(path(sign_in_link(live.config, a, 60)))
    page = client.get("/admin/activity").get_data(as_text=True)
    assert "time zone (Asia/Jerusalem)" in page and "Dec 21, 2026 00:30" in page  # UTC+2 in December
    assert 'href="https://admin.shopify.com/store/zone-test/customers/7001"' in page

"""The personal page (/p/<token>) end to end on both databases: a real touch email carries the
link; the page shows the offer; each answer is a canonical event the real worker folds and the
rules trigger on; links that are tampered with, expired, revoked or erased are a plain 404."""
import re
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
import responses

from plugin.db import CustomerRow, DecisionRow, PageRow, UnsubscribeRow
from plugin import page_links as links
from plugin.sms_consent import allows_sms
from live import backlog, load_json, running, woo_customer

STORE = "https://store.example"
RULES = """rules:
  - id: thanks
    name: Thanks for joining
    trigger: customer.created
    actions:
      - coupon:
          discount: 15%
          expires_in: 30d
          code_prefix: THANKS
      - email:
          template: thanks
          subject: "Thanks for joining"
    survey:
      id: first_visit
      question: How was your first visit?
      choices: [Loved it, It was fine, Not for me]
  - id: came_by
    name: Glad you came by
    trigger: page.opened
    when:
      page.channel: {equals: email}
    actions:
      - email:
          template: came_by
          subject: "Glad you came by"
  - id: sorry
    name: Sorry to hear
    trigger: survey.answered
    when:
      all:
        - survey.answer: {equals: Not for me}
        - survey.question: {equals: first_visit}
    actions:
      - email:
          template: sorry
          subject: "Sorry to hear that"
"""
TEMPLATES = {
    "templates/thanks.html": "<p>Thanks! Your code: {{ coupon.code }}. <a href=\"{{ page_url }}\">Your page</a></p>",
    "templates/thanks.txt": "Thanks! Your code: {{ coupon.code }}. Your page: {{ page_url }}",
    "templates/came_by.html": "<p>Glad you came by.</p>",
    "templates/came_by.txt": "Glad you came by.",
    "templates/sorry.html": "<p>Sorry to hear that, {{ customer.first_name }}.</p>",
    "templates/sorry.txt": "Sorry to hear that, {{ customer.first_name }}.",
}


@pytest.fixture(params=["sqlite", "postgres"])
def live(request, redis_server, smtp, tmp_path):
    with running(request, redis_server, smtp, tmp_path) as live:
        yield live


def install(live, shop_id):
    from plugin.shops import install_rules

    with live.rt.sessions.begin() as session:  # no frequency cap: every rule's touch goes out
        install_rules(session, shop_id, {"settings.yaml": "settings:\n  referral_prefix: REF\n", "pages.yaml": RULES,
                                         **TEMPLATES})


def signed_up(live, **customer):
    """A WooCommerce shop whose new customer got the `thanks` touch; (shop id, page token)."""
    shop_id, secret = live.add_shop("woocommerce", STORE, consumer_key="ck_test", consumer_secret="cs_test",
                                    settings={"consent_meta_key": "_keepwell_marketing_opt_in",
                                              "coupon_url_param": "keepwell_coupon", "name": "Café Lumière"})
    install(live, shop_id)
    created = load_json("woocommerce", "rest-v3-docs-examples", "coupon_create_response.json")
    responses.post(f"{STORE}/wp-json/wc/v3/coupons", json=created, status=201)
    assert live.post_woocommerce(shop_id, secret, "customer.created", woo_customer(**customer)).status_code == 202
    live.work()
    msg, = live.smtp.messages
    url = re.search(r"https://keepwell\.test/p/(\S+)", msg.get_body(("plain",)).get_content()).group(0)
    assert url.startswith(live.config.app_url)
    return shop_id, urlsplit(url).path.rsplit("/", 1)[1]


def csrf(live, token):
    html = live.client.get(f"/p/{token}").get_data(as_text=True)
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def post(live, token, what, **form):
    return live.client.post(f"/p/{token}/{what}", data={"csrf": csrf(live, token), **form})


def state(live, shop_id, customer_id="25"):
    return live.rows(CustomerRow, shop_id=shop_id, customer_id=customer_id)[0].state


def page_row(live):
    row, = live.rows(PageRow, rule_id="thanks")
    return row


@responses.activate
def test_the_touch_links_to_a_page_with_the_offer_and_opening_it_counts_once(live):
    shop_id, token = signed_up(live)
    assert token[0] == "e" and len(token) == links.TOKEN_CHARS
    decision, = live.rows(DecisionRow, rule_id="thanks")
    row = page_row(live)
    assert (row.customer_id, row.touch, row.rule_id) == ("25", decision.key, "thanks")

    r = live.client.get(f"/p/{token}")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    code = re.search(r'data-code="([^"]+)"', html).group(1)
    assert code.startswith("THANKS-") and "15%" in html and "Café Lumière" in html
    assert f'href="{STORE}/?keepwell_coupon={code}"' in html
    assert "How was your first visit?" in html and 'value="Not for me"' in html
    policy = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["Cache-Control"] == "no-store"
    # a GET (a mail privacy proxy, a link scanner) is no open
    assert backlog(live, shop_id) == 0 and page_row(live).opened_at is None

    assert live.client.post(f"/p/{token}/opened", data={}).status_code == 403  # no form token
    assert live.client.post(f"/p/{token}/opened", data={"csrf": "x" * 22}).status_code == 403
    assert post(live, token, "opened").status_code == 204
    assert backlog(live, shop_id) == 1
    live.work()
    assert page_row(live).opened_at is not None
    came_by, = live.rows(DecisionRow, rule_id="came_by")  # a rule on page.opened, testing page.channel
    assert came_by.status == "done" and came_by.event_id == f"page:{page_row(live).nonce}:opened"
    assert [m["Subject"] for m in live.smtp.messages].count("Glad you came by") == 1
    assert post(live, token, "opened").status_code == 204
    assert backlog(live, shop_id) == 0  # counted once


@responses.activate
def test_survey_answer_is_an_event_a_rule_fires_on(live):
    shop_id, token = signed_up(live, first_name="Ana")
    assert post(live, token, "survey", answer="Something else").status_code == 400  # not one of the choices
    r = post(live, token, "survey", answer="Not for me")
    assert r.status_code == 303 and r.headers["Location"].endswith("?done=answered")
    live.work()
    sorry, = live.rows(DecisionRow, rule_id="sorry")
    assert sorry.status == "done", (sorry.status, sorry.error)
    event = sorry.decision
    assert event["rule_id"] == "sorry"
    mail = [m for m in live.smtp.messages if m["Subject"] == "Sorry to hear that"]
    assert len(mail) == 1 and "Ana" in mail[0].get_body(("plain",)).get_content()
    assert page_row(live).answers[-1]["summary"] == "first_visit: Not for me"
    assert "Thank you for your answer." in live.client.get(f"/p/{token}?done=answered").get_data(as_text=True)
    post(live, token, "survey", answer="Loved it")  # a second answer from the same page changes nothing
    live.work()
    assert len(live.rows(DecisionRow, rule_id="sorry")) == 1
    assert len(live.rows(PageRow)) == 1  # the sorry email does not link to a page: no page made for it


@responses.activate
def test_forward_sends_the_offer_to_the_address_on_file_once(live):
    shop_id, token = signed_up(live)
    code = re.search(r'data-code="([^"]+)"', live.client.get(f"/p/{token}").get_data(as_text=True)).group(1)
    assert post(live, token, "forward").status_code == 303
    live.work()
    forwarded = [m for m in live.smtp.messages if m["Subject"].startswith("Your offer from")]
    assert len(forwarded) == 1
    msg = forwarded[0]
    assert msg["To"].addresses[0].addr_spec == "john.doe@example.com"
    assert code in msg.get_body(("plain",)).get_content() and code in msg.get_body(("html",)).get_content()
    row = page_row(live)
    assert row.forward_message_id == msg["Message-ID"] and row.answers[-1]["type"] == "offer.forwarded"
    assert post(live, token, "forward").status_code == 303
    live.work()
    assert len([m for m in live.smtp.messages if m["Subject"].startswith("Your offer from")]) == 1


@responses.activate
def test_channel_occasion_and_unsubscribes_change_the_customers_state(live):
    shop_id, token = signed_up(live)
    now = datetime.now(timezone.utc)
    live.rt.handoff.push_event(shop_id, {"id": "sms-start:25:1", "type": "customer.consent_changed", "shop": shop_id,
                                         "customer_id": "25", "occurred_at": now.isoformat(),
                                         "customer": {"id": "25", "phone": "+972501234567", "sms_consent": True}})
    live.work()
    assert post(live, token, "channel", channel="fax").status_code == 400
    assert post(live, token, "channel", channel="sms").status_code == 303
    live.work()
    assert state(live, shop_id)["preferred_channel"] == "sms"

    r = post(live, token, "occasion", kind="birthday", date="not a date")
    assert r.status_code == 400
    assert '<p class="problem" role="alert">Please choose an occasion and a date.</p>' in r.get_data(as_text=True)
    assert post(live, token, "occasion", kind="birthday", date="2027-03-14", recipient="  Noa  ",
                remind="yes").status_code == 303
    live.work()
    occasion, = state(live, shop_id)["occasions"]
    assert (occasion["kind"], occasion["date"], occasion["recipient"], occasion["remind"]) == \
        ("birthday", "2027-03-14", "Noa", True)
    assert post(live, token, "occasion", occasion_id="someone-elses", kind="wedding", date="2027-05-01").status_code == 400
    assert post(live, token, "occasion", occasion_id=occasion["id"], kind="anniversary", date="2027-03-15").status_code == 303
    live.work()
    edited, = state(live, shop_id)["occasions"]
    assert (edited["id"], edited["kind"], edited["remind"]) == (occasion["id"], "anniversary", False)
    # one told at checkout in the customer's own words keeps its kind when edited here
    live.rt.handoff.push_event(shop_id, {"id": "occasion:o9", "type": "occasion.captured", "shop": shop_id,
                                         "customer_id": "25", "occurred_at": now.isoformat(),
                                         "data": {"occasion_id": "o9", "kind": "graduation", "date": "2027-06-20",
                                                  "recipient": None, "remind": True}})
    live.work()
    assert '<option value="graduation" selected>graduation</option>' in live.client.get(f"/p/{token}").get_data(as_text=True)
    assert post(live, token, "occasion", occasion_id="o9", kind="graduation", date="2027-06-21",
                remind="yes").status_code == 303
    assert post(live, token, "occasion", kind="graduation", date="2027-06-21").status_code == 400  # not a new one's
    live.work()
    assert {o["id"]: (o["kind"], o["date"]) for o in state(live, shop_id)["occasions"]}["o9"] == ("graduation", "2027-06-21")

    assert post(live, token, "unsubscribe", channel="sms").status_code == 303
    with live.rt.sessions() as session:  # at once, before the worker folds the stop: no text goes out
        assert allows_sms(session, shop_id, "25") is False and state(live, shop_id)["sms_consent"] is True
    live.work()
    assert state(live, shop_id)["sms_consent"] is False
    assert post(live, token, "unsubscribe", channel="email").status_code == 303
    live.work()
    assert state(live, shop_id)["accepts_marketing"] is False
    assert live.rows(UnsubscribeRow, shop_id=shop_id, customer_id="25")


@responses.activate
def test_tampered_expired_revoked_and_erased_links_are_a_plain_404(live):
    from plugin.privacy import redact_customer

    shop_id, token = signed_up(live)
    assert live.client.get(f"/p/{token}").status_code == 200
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    other_channel = "s" + token[1:]  # the channel letter is signed too
    for bad in (flipped, other_channel, token[:-1], token + "A", "e" + "A" * 38, "nope"):
        r = live.client.get(f"/p/{bad}")
        assert r.status_code == 404, bad
        assert "expired" not in r.get_data(as_text=True).lower()
    assert live.client.post(f"/p/{flipped}/survey", data={"answer": "Loved it"}).status_code == 404

    with live.rt.sessions.begin() as s:
        s.get(PageRow, page_row(live).id).expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
    assert live.client.get(f"/p/{token}").status_code == 404
    with live.rt.sessions.begin() as s:
        s.get(PageRow, page_row(live).id).expires_at = datetime.now(timezone.utc) + timedelta(days=1)
        assert links.revoke(s, shop_id, datetime.now(timezone.utc), customer_id="25") == 1
    assert live.client.get(f"/p/{token}").status_code == 404
    with live.rt.sessions.begin() as s:
        s.get(PageRow, page_row(live).id).revoked_at = None
    assert live.client.get(f"/p/{token}").status_code == 200
    with live.rt.sessions.begin() as s:
        assert redact_customer(s, shop_id, "25")["pages"] == 1
    assert live.client.get(f"/p/{token}").status_code == 404


@responses.activate
def test_uninstall_revokes_every_page_of_the_shop(live):
    shop_id, token = signed_up(live)
    from webhooks.shops import ShopCache

    ShopCache(live.rt.sessions, live.config).uninstall(shop_id)
    assert live.client.get(f"/p/{token}").status_code == 404
    assert page_row(live).revoked_at is not None


@responses.activate
def test_a_hebrew_customer_gets_a_right_to_left_page(live):
    shop_id, token = signed_up(live, first_name="נועה")
    now = datetime.now(timezone.utc)
    live.rt.handoff.push_event(shop_id, {"id": "locale:25", "type": "customer.updated", "shop": shop_id,
                                         "customer_id": "25", "occurred_at": now.isoformat(),
                                         "customer": {"id": "25", "locale": "he-IL"}})
    live.work()
    html = live.client.get(f"/p/{token}").get_data(as_text=True)
    assert '<html lang="he" dir="rtl">' in html and "שלום נועה" in html and "ההטבה שלך" in html


@responses.activate
def test_opens_and_answers_show_per_rule_on_the_activity_and_decision_pages_and_in_explain(live):
    from plugin.admin_auth import admin_link
    from plugin.explain import ledger_lines

    shop_id, token = signed_up(live)
    post(live, token, "survey", answer="Loved it")
    live.work()
    client = live.app.test_client()
    link = urlsplit(admin_link(live.config, shop_id, 60))
    assert client.get(f"{link.path}?{link.query}").status_code == 302
    html = client.get("/admin/activity").get_data(as_text=True)
    pages = re.search(r'<table id="pages".*?</table>', html, re.S).group(0)
    row = re.search(r"<tr><td data-label=\"Rule\"><bdi>Thanks for joining</bdi></td>(.*?)</tr>", pages, re.S).group(1)
    assert re.findall(r'data-label="(?:Pages|Opened|Answered)">(\d+)<', row) == ["1", "1", "1"]
    assert "survey: 1" in row
    assert "opened, 1 answer" in html
    touch, = live.rows(DecisionRow, rule_id="thanks")
    html = client.get(f"/admin/activity/{touch.id}").get_data(as_text=True)
    shown = re.search(r'<ul id="page">(.*?)</ul>', html, re.S).group(1)
    assert "personal page opened" in shown and "survey: first_visit: Loved it" in shown
    with live.rt.sessions() as session:
        text = "\n".join(ledger_lines(session, shop_id, "25"))
    assert "  thanks: touch done\n    personal page opened " in text and "survey: first_visit: Loved it" in text


@responses.activate
def test_a_page_takes_a_bounded_number_of_answers(live):
    from plugin.pages.answers import MAX_ANSWERS

    shop_id, token = signed_up(live)
    assert post(live, token, "opened").status_code == 204
    live.work()
    with live.rt.sessions.begin() as s:
        s.get(PageRow, page_row(live).id).answers = [{"type": "occasion.captured", "at": "2026-12-08T00:00:00"}] \
            * MAX_ANSWERS
    r = post(live, token, "occasion", kind="birthday", date="2027-03-14")
    assert r.status_code == 429 and "Too many answers from this page" in r.get_data(as_text=True)
    assert backlog(live, shop_id) == 0


def test_use_it_links_and_brand_colours():
    from connectors.base import Shop
    from plugin.pages.offers import use_link
    from plugin.pages.views import DEFAULT_BRAND, brand_colors

    shopify = Shop(id="sh_1", platform="shopify", domain="cafe-lumiere.myshopify.com", api_url="")
    assert use_link(shopify, "THANKS 15/Ü") == \
        "https://cafe-lumiere.myshopify.com/discount/THANKS%2015%2F%C3%9C?redirect=/"
    woo = Shop(id="wo_1", platform="woocommerce", domain="https://store.example", api_url="https://store.example")
    assert use_link(woo, "thanks-ab12") == "https://store.example/"  # core WooCommerce: no link applies it
    plugin = Shop(id="wo_2", platform="woocommerce", domain="https://store.example", api_url="https://store.example",
                  settings={"coupon_url_param": "keepwell_coupon"})
    assert use_link(plugin, "thanks-ab12") == "https://store.example/?keepwell_coupon=thanks-ab12"
    assert brand_colors({}) == (DEFAULT_BRAND, "#ffffff")
    assert brand_colors({"brand_color": "#ffd400"}) == ("#ffd400", "#1a1a1a")  # light: dark text on it
    assert brand_colors({"brand_color": "red; background: url(x)"}) == (DEFAULT_BRAND, "#ffffff")


@responses.activate
def test_unsubscribing_is_all_a_customer_may_do_on_the_page(live):
    shop_id, token = signed_up(live)
    started = time.monotonic()
    r = post(live, token, "unsubscribe", channel="email")  # the first interaction: the open is counted with it
    assert r.status_code == 303 and time.monotonic() - started < 5
    assert live.rows(UnsubscribeRow, shop_id=shop_id, customer_id="25")
    assert page_row(live).opened_at is not None
    live.work()
    assert state(live, shop_id)["accepts_marketing"] is False
    html = live.client.get(f"/p/{token}?done=unsubscribed").get_data(as_text=True)
    assert "you will not get these messages any more" in html and "Stop marketing emails" not in html

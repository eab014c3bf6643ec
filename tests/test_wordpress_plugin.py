"""The companion WordPress plugin (connectors/woocommerce/wordpress-plugin/keepwell): every file
passes `php -l`; run under the PHP command line with WordPress's and WooCommerce's hooks
(tests/wordpress), what it stores at checkout, on the account page and from MailPoet is what
Keepwell's WooCommerce connector reads; its REST filter narrows the customer list; `make
wordpress-plugin` builds the zip merchants upload."""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
import responses

from connectors.base import Shop
from connectors.woocommerce import connector
from plugin.engine.occasions import captured, field_names

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "connectors" / "woocommerce" / "wordpress-plugin" / "keepwell"
RUN = Path(__file__).resolve().parent / "wordpress" / "run.php"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "woocommerce"
SHOP = Shop(id="wc_1", platform="woocommerce", domain="https://shop.example.co.il",
            api_url="https://shop.example.co.il", webhook_secrets=("s",), settings={})
GIFT_FOR_MOM = {"keepwell_marketing_opt_in": "1", "keepwell_occasion": "birthday",
                "keepwell_occasion_date": "2026-12-20", "keepwell_occasion_for": "Mom",
                "keepwell_occasion_remind": "1", "keepwell_birthday": "1991-04-09"}


@pytest.fixture(scope="module")
def php():
    binary = shutil.which("php")
    if binary is None:  # scripts/services.sh, which `make test` runs, installs it
        pytest.fail("php is not installed (apt-get install php-cli): it checks the WordPress plugin")
    return binary


@pytest.fixture(autouse=True)
def store():
    """Order parsing asks the store for its products' categories: it has none to tell."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(re.compile(r"https://shop\.example\.co\.il/wp-json/wc/v3/products.*"), json=[],
                 headers={"X-WP-Total": "0", "X-WP-TotalPages": "0"})
        yield mock


def run(php, *steps) -> dict:
    out = subprocess.run([php, str(RUN), str(PLUGIN)], input=json.dumps(list(steps)), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr, out.stderr
    return json.loads(out.stdout)


def meta(entries: list) -> dict:
    return {m["key"]: m["value"] for m in entries}


def as_order(meta_data: list, customer_id: int = 7) -> dict:
    """The plugin's order meta in a WooCommerce order payload (the REST v3 shape)."""
    order = json.loads((FIXTURES / "order_with_occasion.json").read_text(encoding="utf-8"))
    order["customer_id"] = customer_id
    order["meta_data"] = copy.deepcopy(meta_data)
    return order


def as_customer(meta_data: list) -> dict:
    customer = json.loads((FIXTURES / "customer_with_consent.json").read_text(encoding="utf-8"))
    customer["meta_data"] = copy.deepcopy(meta_data)
    return customer


def test_every_file_passes_php_lint(php):
    files = sorted(PLUGIN.rglob("*.php")) + sorted(RUN.parent.glob("*.php"))
    assert len(files) >= 9
    for path in files:
        out = subprocess.run([php, "-l", str(path)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr


def test_the_plugin_header_and_readme_agree():
    header = (PLUGIN / "keepwell.php").read_text()
    readme = (PLUGIN / "readme.txt").read_text()
    assert re.search(r"License:\s+GPL-2\.0-or-later", header) and re.search(r"License:\s+GPL-2\.0-or-later", readme)
    version = re.search(r"Version:\s+(\S+)", header).group(1)
    assert re.search(r"Stable tag:\s+(\S+)", readme).group(1) == version
    for path in PLUGIN.rglob("*.php"):
        assert "defined( 'ABSPATH' ) || exit;" in path.read_text(), path  # never run outside WordPress


def test_a_classic_checkout_gives_keepwell_the_consent_the_birthday_and_the_occasion(php):
    out = run(php, {"do": "boot"}, {"do": "user", "id": 7}, {"do": "render_checkout"},
              {"do": "classic_checkout", "order": 4310, "post": GIFT_FOR_MOM})
    shown = out["steps"][0]
    assert set(shown["printed"]) == {"keepwell_occasion", "keepwell_occasion_date", "keepwell_occasion_for",
                                     "keepwell_occasion_remind", "keepwell_marketing_opt_in", "keepwell_sms_opt_in"}
    assert shown["printed"]["keepwell_marketing_opt_in"]["value"] == 0  # never ticked for the customer
    assert "Is it for a special occasion?" in shown["html"]
    assert shown["checkout_fields"]["order"]["keepwell_birthday"]["required"] is False

    order_meta = meta(out["orders"]["4310"])
    assert (order_meta["_keepwell_marketing_opt_in"], order_meta["_keepwell_marketing_opt_in_source"]) == ("yes", "checkout")
    assert datetime.fromisoformat(order_meta["_keepwell_marketing_opt_in_at"]).tzinfo is not None
    customer_meta = meta(out["customers"]["7"])
    assert customer_meta["_keepwell_marketing_opt_in"] == "yes" and customer_meta["_keepwell_birthday"] == "1991-04-09"

    # What Keepwell makes of it, on a store that configured nothing:
    events = connector.parse(SHOP, "order.created", as_order(out["orders"]["4310"]))
    assert events and all(e.customer.accepts_marketing is True for e in events)
    (occasion,) = {o.id: o for e in events for o in captured(e, field_names())}.values()
    assert (occasion.data["kind"], occasion.data["date"], occasion.data["recipient"], occasion.data["remind"]) == \
        ("birthday", "2026-12-20", "Mom", True)
    (customer,) = connector.parse(SHOP, "customer.updated", as_customer(out["customers"]["7"]))
    assert customer.customer.accepts_marketing is True and customer.customer.birthday.isoformat() == "1991-04-09"


def test_an_unticked_box_and_no_date_store_nothing_and_withdraw_nothing(php):
    out = run(php, {"do": "boot"},
              {"do": "user", "id": 7, "meta": {"_keepwell_marketing_opt_in": "yes",
                                               "_keepwell_marketing_opt_in_at": "2025-01-02T03:04:05+00:00"}},
              {"do": "classic_checkout", "order": 4311,
               "post": {"keepwell_occasion": "birthday", "keepwell_occasion_for": "Dad", "keepwell_occasion_date": "20/12"}})
    assert out["orders"]["4311"] == []
    assert meta(out["customers"]["7"])["_keepwell_marketing_opt_in_at"] == "2025-01-02T03:04:05+00:00"
    guest = run(php, {"do": "boot"}, {"do": "classic_checkout", "order": 4312, "post": GIFT_FOR_MOM})
    assert meta(guest["orders"]["4312"])["_keepwell_marketing_opt_in"] == "yes"  # a guest's consent is on the order
    assert guest["customers"] == {}


def test_the_account_page_shows_gives_and_withdraws_consent(php):
    given = {"_keepwell_marketing_opt_in": "yes", "_keepwell_marketing_opt_in_at": "2025-01-02T03:04:05+00:00",
             "_keepwell_marketing_opt_in_source": "checkout"}
    out = run(php, {"do": "boot"}, {"do": "user", "id": 7, "meta": given}, {"do": "render_account"},
              {"do": "save_account", "post": {"keepwell_marketing_opt_in": "1", "keepwell_birthday": "1991-04-09"}})
    assert out["steps"][0]["printed"]["keepwell_marketing_opt_in"]["value"] == 1
    kept = meta(out["customers"]["7"])
    assert {k: kept[k] for k in given} == given  # unchanged answer: its time and source stay
    assert kept["_keepwell_birthday"] == "1991-04-09"

    out = run(php, {"do": "boot"}, {"do": "user", "id": 7, "meta": given}, {"do": "save_account", "post": {}})
    withdrawn = meta(out["customers"]["7"])
    assert (withdrawn["_keepwell_marketing_opt_in"], withdrawn["_keepwell_marketing_opt_in_source"]) == ("no", "account")
    assert withdrawn["_keepwell_marketing_opt_in_at"] != given["_keepwell_marketing_opt_in_at"]
    (customer,) = connector.parse(SHOP, "customer.updated", as_customer(out["customers"]["7"]))
    assert customer.customer.accepts_marketing is False

    out = run(php, {"do": "boot"}, {"do": "user", "id": 8}, {"do": "save_account", "post": {"keepwell_marketing_opt_in": "1"}})
    assert meta(out["customers"]["8"])["_keepwell_marketing_opt_in_source"] == "account"


def test_the_block_checkout_copies_its_answers_into_the_same_meta(php):
    fields = {"keepwell/marketing-opt-in": True, "keepwell/occasion": "anniversary",
              "keepwell/occasion-date": "2027-01-03", "keepwell/occasion-for": "<b>Miguel</b>",
              "keepwell/occasion-remind": True, "someone-else/field": "x"}
    out = run(php, {"do": "boot"}, {"do": "user", "id": 7}, {"do": "block_checkout", "order": 4313, "fields": fields})
    assert set(out["block_fields"]) == {"keepwell/marketing-opt-in", "keepwell/occasion", "keepwell/occasion-date",
                                        "keepwell/occasion-for", "keepwell/occasion-remind", "keepwell/sms-opt-in"}
    order_meta = meta(out["orders"]["4313"])
    assert {k: order_meta[k] for k in ("_keepwell_marketing_opt_in", "_keepwell_occasion", "_keepwell_occasion_date",
                                       "_keepwell_occasion_for", "_keepwell_occasion_remind")} == \
        {"_keepwell_marketing_opt_in": "yes", "_keepwell_occasion": "anniversary",
         "_keepwell_occasion_date": "2027-01-03", "_keepwell_occasion_for": "Miguel", "_keepwell_occasion_remind": "yes"}
    assert meta(out["customers"]["7"])["_keepwell_marketing_opt_in"] == "yes"
    events = connector.parse(SHOP, "order.created", as_order(out["orders"]["4313"]))
    (occasion,) = {o.id: o for e in events for o in captured(e, field_names())}.values()
    assert (occasion.data["kind"], occasion.data["recipient"]) == ("anniversary", "Miguel")

    bad_date = run(php, {"do": "boot"}, {"do": "block_checkout", "order": 4314,
                                         "fields": {"keepwell/occasion-date": "next friday"}})
    assert meta(bad_date["orders"]["4314"])["_keepwell_occasion_date"] == ""


def test_a_store_that_asks_no_occasion_or_birthday_still_collects_consent(php):
    options = {"keepwell_ask_occasion": "no", "keepwell_ask_birthday": "no"}
    out = run(php, {"do": "boot", "options": options}, {"do": "user", "id": 7}, {"do": "render_checkout"},
              {"do": "render_account"}, {"do": "classic_checkout", "order": 4315, "post": GIFT_FOR_MOM},
              {"do": "block_checkout", "order": 4316, "fields": {"keepwell/marketing-opt-in": True}})
    assert set(out["steps"][0]["printed"]) == {"keepwell_marketing_opt_in", "keepwell_sms_opt_in"}
    assert out["steps"][0]["checkout_fields"] == {"order": []}
    assert set(out["steps"][1]["printed"]) == {"keepwell_marketing_opt_in", "keepwell_sms_opt_in"}
    assert set(out["block_fields"]) == {"keepwell/marketing-opt-in", "keepwell/sms-opt-in"}
    assert set(meta(out["orders"]["4315"])) == {"_keepwell_marketing_opt_in", "_keepwell_marketing_opt_in_at",
                                                 "_keepwell_marketing_opt_in_source"}
    assert meta(out["orders"]["4316"])["_keepwell_marketing_opt_in"] == "yes"

    own = run(php, {"do": "boot", "options": {"keepwell_occasions": "Bar mitzvah, Hanukkah ,, Wedding"}},
              {"do": "render_checkout"})
    assert own["steps"][0]["printed"]["keepwell_occasion"]["args"]["options"] == \
        {"": "—", "bar-mitzvah": "Bar mitzvah", "hanukkah": "Hanukkah", "wedding": "Wedding"}


def test_the_sms_opt_in_is_its_own_box_and_keepwell_reads_it_as_sms_consent(php):
    out = run(php, {"do": "boot"}, {"do": "user", "id": 7}, {"do": "render_checkout"},
              {"do": "classic_checkout", "order": 4320, "post": {"keepwell_sms_opt_in": "1"}})
    assert "Reply STOP to unsubscribe" in out["steps"][0]["printed"]["keepwell_sms_opt_in"]["args"]["label"]
    assert out["steps"][0]["printed"]["keepwell_sms_opt_in"]["value"] == 0
    order_meta, customer_meta = meta(out["orders"]["4320"]), meta(out["customers"]["7"])
    assert (order_meta["_keepwell_sms_opt_in"], order_meta["_keepwell_sms_opt_in_source"]) == ("yes", "checkout")
    assert "_keepwell_marketing_opt_in" not in order_meta  # texts are not email
    assert customer_meta["_keepwell_sms_opt_in"] == "yes"

    order = as_order(out["orders"]["4320"])
    order["billing"]["phone"] = "054-123-4567"
    created = connector.parse(SHOP, "order.created", order)[0]
    assert (created.customer.sms_consent, created.customer.phone) == (True, "054-123-4567")
    assert created.customer.accepts_marketing is None
    (customer,) = connector.parse(SHOP, "customer.updated", as_customer(out["customers"]["7"]))
    assert customer.customer.sms_consent is True

    # Unticked on the account page: withdrawn; the email opt-in is left as it was.
    given = {"_keepwell_sms_opt_in": "yes", "_keepwell_marketing_opt_in": "yes"}
    out = run(php, {"do": "boot"}, {"do": "user", "id": 7, "meta": given}, {"do": "render_account"},
              {"do": "save_account", "post": {"keepwell_marketing_opt_in": "1"}})
    assert out["steps"][0]["printed"]["keepwell_sms_opt_in"]["value"] == 1
    kept = meta(out["customers"]["7"])
    assert (kept["_keepwell_sms_opt_in"], kept["_keepwell_sms_opt_in_source"], kept["_keepwell_marketing_opt_in"]) == \
        ("no", "account", "yes")
    (customer,) = connector.parse(SHOP, "customer.updated", as_customer(out["customers"]["7"]))
    assert (customer.customer.sms_consent, customer.customer.accepts_marketing) == (False, True)

    block = run(php, {"do": "boot"}, {"do": "user", "id": 9},
                {"do": "block_checkout", "order": 4321, "fields": {"keepwell/sms-opt-in": True}})
    assert meta(block["orders"]["4321"])["_keepwell_sms_opt_in"] == "yes"
    assert meta(block["customers"]["9"])["_keepwell_sms_opt_in"] == "yes"
    guest = run(php, {"do": "boot"}, {"do": "classic_checkout", "order": 4322, "post": {}})
    assert guest["orders"]["4322"] == []  # no box ticked: no consent recorded, none withdrawn


def test_mailpoet_subscriber_status_becomes_the_customers_consent(php):
    def status(subscriber_id, wp_user_id, value):
        return {"do": "mailpoet_status", "subscriber": {"id": subscriber_id, "email": "noa@example.co.il",
                                                        "wp_user_id": wp_user_id, "status": value}}
    out = run(php, {"do": "boot", "mailpoet": True}, {"do": "user", "id": 7}, status(3, 7, "subscribed"))
    got = meta(out["customers"]["7"])
    assert (got["_keepwell_marketing_opt_in"], got["_keepwell_marketing_opt_in_source"]) == ("yes", "mailpoet")

    for value, expected in (("unsubscribed", "no"), ("bounced", "no"), ("inactive", "no"), ("unconfirmed", "yes")):
        out = run(php, {"do": "boot", "mailpoet": True}, {"do": "user", "id": 7, "meta": {"_keepwell_marketing_opt_in": "yes"}},
                  status(3, 7, value))
        assert meta(out["customers"]["7"])["_keepwell_marketing_opt_in"] == expected, value

    guest = run(php, {"do": "boot", "mailpoet": True}, status(4, None, "subscribed"))
    assert guest["customers"] == {}  # a subscriber without a WordPress account has no customer meta
    without = run(php, {"do": "boot"}, {"do": "user", "id": 7}, status(3, 7, "subscribed"))
    assert without["customers"]["7"] == []  # MailPoet not active: nothing happens


def test_the_customer_list_learns_modified_after(php):
    gmt = run(php, {"do": "boot"}, {"do": "rest_customers",
                                    "params": {"modified_after": "2026-11-30T19:00:00", "dates_are_gmt": "true"}},
              {"do": "rest_customers", "params": {"orderby": "id"}},
              {"do": "rest_customers", "params": {"modified_after": "not a date", "dates_are_gmt": "true"}})
    narrowed, plain, junk = gmt["steps"]
    cutoff = int(datetime(2026, 11, 30, 19, 0, tzinfo=timezone.utc).timestamp())
    assert narrowed["query"] == {"number": 100, "meta_query": [
        {"key": "last_update", "value": cutoff, "compare": ">=", "type": "NUMERIC"}]}
    assert narrowed["headers"] == {"X-Keepwell-Modified-After": "applied"}
    assert plain == {"query": {"number": 100}, "headers": []} and junk == plain
    local = run(php, {"do": "boot", "options": {"timezone_string": "Asia/Jerusalem"}},
                {"do": "rest_customers", "params": {"modified_after": "2026-11-30T21:00:00"}})
    assert local["steps"][0]["query"]["meta_query"][0]["value"] == cutoff  # 21:00 in Israel is 19:00 UTC


def test_make_builds_the_zip_merchants_upload(tmp_path):
    target = tmp_path / "keepwell.zip"
    out = subprocess.run(["make", "-s", "wordpress-plugin", f"WORDPRESS_PLUGIN_ZIP={target}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    with zipfile.ZipFile(target) as z:
        names = set(z.namelist())
        assert "keepwell/keepwell.php" in names and "keepwell/readme.txt" in names
        shipped = {n for n in names if n.endswith(".php")}
        assert shipped == {f"keepwell/{p.relative_to(PLUGIN)}" for p in PLUGIN.rglob("*.php")}
        assert z.read("keepwell/keepwell.php") == (PLUGIN / "keepwell.php").read_bytes()


def test_activation_copies_the_subscribers_mailpoet_already_has_in_batches(php):
    subscribers = [{"id": i, "email": f"s{i}@example.co.il", "wp_user_id": 100 + i if i % 3 else None,
                    "status": "unsubscribed" if i % 5 == 0 else "subscribed"} for i in range(1, 251)]
    answered = {"_keepwell_marketing_opt_in": "no", "_keepwell_marketing_opt_in_source": "account"}
    out = run(php, {"do": "boot", "mailpoet": True}, {"do": "user", "id": 101, "meta": answered},
              {"do": "subscribers", "subscribers": subscribers}, {"do": "activate"}, {"do": "request"},
              {"do": "run_actions"}, {"do": "request"}, {"do": "run_actions"})
    assert out["steps"][0]["ran"] == [["keepwell_mailpoet_sync", [0], "keepwell"],
                                      ["keepwell_mailpoet_sync", [100], "keepwell"],
                                      ["keepwell_mailpoet_sync", [200], "keepwell"]]
    assert out["steps"][1]["ran"] == []  # one copy per activation
    customers = {int(k): meta(v) for k, v in out["customers"].items()}
    with_account = [s for s in subscribers if s["wp_user_id"]]
    assert set(customers) == {s["wp_user_id"] for s in with_account}
    assert customers[101] == answered  # an answer the customer gave stays
    for s in with_account[1:]:
        got = customers[s["wp_user_id"]]
        assert got["_keepwell_marketing_opt_in"] == ("no" if s["status"] == "unsubscribed" else "yes")
        assert got["_keepwell_marketing_opt_in_source"] == "mailpoet"

    without = run(php, {"do": "boot"}, {"do": "activate"}, {"do": "request"}, {"do": "run_actions"})
    assert without["steps"][0]["ran"] == []  # no MailPoet: nothing to copy


def test_a_coupon_link_applies_the_code_to_the_cart_and_lands_on_it(php):
    out = run(php, {"do": "boot"}, {"do": "visit", "get": {"keepwell_coupon": " THANKS-Ab12 "}},
              {"do": "visit", "get": {"keepwell_coupon": "thanks-ab12"}}, {"do": "visit", "get": {"p": "12"}},
              {"do": "visit", "get": {"keepwell_coupon": ["a", "b"]}})
    first, again, other, odd = out["steps"]
    # core WooCommerce has no such link: the plugin applies the code, starts the visitor's session so an
    # empty cart keeps it, and sends them to the cart without the parameter
    assert first == {"redirect": "https://shop.example.co.il/cart/", "coupons": ["thanks-ab12"], "session": True}
    assert again["coupons"] == ["thanks-ab12"]  # applied once
    assert other["redirect"] is None and odd["redirect"] is None  # other pages are left alone

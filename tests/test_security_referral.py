"""Referral codes cannot be computed from what anyone can see (shop and customer ids), cannot be
guessed, survive a prefix change, and a referrer who refers themself under another account earns
nothing: the reward is a recorded suppression with its reason."""
from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from connectors.shopify.coupons import discount_input
from connectors.woocommerce.coupons import coupon_body
from engine_helpers import (CODES, REFERRAL_KEY, SHOP, Shell, action, customer_created, order_paid, shipped_rules)
from plugin.engine import Kind
from plugin.events import Event
from plugin.engine.decisions import Reason
from plugin.engine.referral import (ALPHABET, TAG_CHARS, decode_referral_code, legacy_referral_code, normalized_email,
                                    referral_code)
from plugin.engine.ruleset import LEGACY_REFERRAL_CODES_UNTIL, Settings, for_shop

REFERRER, FRIEND = "7001", "7002"
AFTER_TRANSITION = LEGACY_REFERRAL_CODES_UNTIL + timedelta(days=30)


def only(decisions, rule_id):
    found = [d for d in decisions if d.rule_id == rule_id]
    assert len(found) == 1, [(d.rule_id, d.kind, d.reason) for d in decisions]
    return found[0]


# --- the code itself ---------------------------------------------------------------------------

def test_codes_are_keyed_long_enough_and_readable():
    code = referral_code(CODES, SHOP, REFERRER)
    assert TAG_CHARS * 5 >= 40  # bits an attacker must guess
    assert code.startswith("REF") and len(code) <= 16
    assert not set(code[3:]) & set("01OI") and set(code[3:]) <= set(ALPHABET)
    assert decode_referral_code(CODES, SHOP, code.lower()) == REFERRER  # WooCommerce lower-cases codes
    # without the shop's key, the code cannot be computed: another key gives another code, which does not decode
    other = referral_code(Settings(referral_key="a guess"), SHOP, REFERRER)
    assert other != code and decode_referral_code(CODES, SHOP, other) is None
    assert referral_code(Settings(), SHOP, REFERRER) is None  # no key, no code


def test_a_tampered_or_neighbouring_code_is_refused():
    code = referral_code(CODES, SHOP, REFERRER)
    neighbour = referral_code(CODES, SHOP, "7002")
    forged = code[:-TAG_CHARS] + neighbour[-TAG_CHARS:]  # 7001's id with 7002's tag
    assert decode_referral_code(CODES, SHOP, forged) is None
    flipped = code[:-1] + ("A" if code[-1] != "A" else "B")
    assert decode_referral_code(CODES, SHOP, flipped) is None


def test_changing_the_prefix_keeps_shared_codes_valid():
    shared = referral_code(CODES, SHOP, REFERRER)
    renamed = replace(CODES, referral_prefix="FRIEND")
    assert referral_code(renamed, SHOP, REFERRER).startswith("FRIEND")
    assert decode_referral_code(renamed, SHOP, shared) == REFERRER


def test_codes_anyone_could_compute_count_only_during_the_transition():
    computed = legacy_referral_code(SHOP, REFERRER)  # from the shop and customer ids alone, no key
    before = LEGACY_REFERRAL_CODES_UNTIL - timedelta(days=1)
    assert decode_referral_code(CODES, SHOP, computed, before) == REFERRER
    assert decode_referral_code(CODES, SHOP, computed, AFTER_TRANSITION) is None
    assert decode_referral_code(CODES, SHOP, computed) is None  # no order time: no trust


def test_a_computed_code_earns_no_referral_after_the_transition():
    shell = Shell(shipped_rules())
    at = AFTER_TRANSITION
    shell.handle(customer_created(REFERRER, at))
    shell.handle(order_paid(REFERRER, "5101", at + timedelta(days=1)))
    shell.handle(customer_created(FRIEND, at + timedelta(days=5)))
    shell.handle(order_paid(FRIEND, "5201", at + timedelta(days=6), codes=[legacy_referral_code(SHOP, REFERRER)]))
    assert shell.state(FRIEND).referred_by is None


# --- the friend's coupon: once per customer, in the store itself -----------------------------

def test_the_friend_coupon_is_once_per_customer_in_both_stores():
    shell = Shell(shipped_rules())
    shell.handle(customer_created(REFERRER, datetime(2026, 3, 2, tzinfo=timezone.utc)))
    invite = only(shell.handle(order_paid(REFERRER, "5101", datetime(2026, 3, 3, tzinfo=timezone.utc))),
                  "referral_invite")
    coupon = action(only(shell.fire(invite), "referral_invite"), "coupon")
    assert coupon.code == referral_code(CODES, SHOP, REFERRER) and coupon.once_per_customer is True
    assert discount_input(coupon)["appliesOncePerCustomer"] is True
    assert coupon_body(coupon, [], None)["usage_limit_per_user"] == 1


# --- the same person under two accounts --------------------------------------------------------

@pytest.mark.parametrize("mine,theirs", [
    ("Ana.Silva@Gmail.com", "anasilva+friend@googlemail.com"),
    ("ana@outlook.com", "ANA+2@outlook.com"),
    ("ana.silva@example.com", "Ana.Silva@EXAMPLE.com"),
])
def test_normalized_emails_name_one_mailbox(mine, theirs):
    assert normalized_email(mine) == normalized_email(theirs)


def test_dots_count_where_the_provider_counts_them():
    assert normalized_email("ana.silva@example.com") != normalized_email("anasilva@example.com")
    assert normalized_email("ana+x@example.com") != normalized_email("ana@example.com")


def _converted(shell, data, at):
    event = Event(id=f"signal-{data['order_id']}", type="referral.converted", shop=SHOP, customer_id=REFERRER,
                  occurred_at=at, data=data)
    return only(shell.handle(event), "referral_reward")


@pytest.mark.parametrize("friend,reason", [
    ({"friend_email": "olivia7001+new@gmail.com"}, "email"),
    ({"friend_email": "someone.else@example.com", "friend_phone": "+1 (555) 625-1199"}, "phone"),
    ({"friend_email": "someone.else@example.com", "friend_address": "12 Rue de la Paix, 75002, FR"}, "shipping address"),
])
def test_a_self_referral_under_another_account_is_a_recorded_suppression(friend, reason):
    shell = Shell(shipped_rules())
    at = datetime(2026, 3, 2, tzinfo=timezone.utc)
    shell.handle(customer_created(REFERRER, at, email="Olivia.7001@gmail.com"))
    shell.states[REFERRER] = replace(shell.state(REFERRER), phone="555-625-1199",
                                     shipping_address="12 rue de la Paix 75002 FR")
    d = _converted(shell, {"friend_id": FRIEND, "order_id": "5201", **friend}, at + timedelta(days=36))
    assert (d.kind, d.reason) == (Kind.SUPPRESSED, Reason.SELF_REFERRAL)
    assert reason in d.detail
    assert d.to_dict()["reason"] == "self_referral"  # what the ledger records

    someone_else = _converted(shell, {"friend_id": FRIEND, "order_id": "5202", "friend_email": "zoe@example.com",
                                      "friend_phone": "555-000-1234", "friend_address": "1 Main St, 10001, US"},
                              at + timedelta(days=37))
    assert someone_else.kind == Kind.TOUCH


def test_the_key_reaches_the_engine_as_data_only():
    rules = shipped_rules()
    assert rules.settings.referral_key == REFERRAL_KEY
    bare = for_shop(rules, "")
    assert bare.rules is rules.rules and bare.settings.referral_key == ""
    assert re.fullmatch(r"REF[2-9A-HJ-NP-Z]+", referral_code(rules.settings, SHOP, REFERRER))


def test_a_history_import_credits_keyed_codes_in_past_orders(redis_server, smtp, tmp_path):
    from live import start, stop
    from plugin.db import CustomerRow
    from plugin.engine.state import state_from_dict
    from plugin.importing.fold import Folder
    from plugin.importing.importer import _begin
    from plugin.shops import referral_key

    live = start(redis_server, f"sqlite:///{tmp_path}/keepwell.db", smtp)
    try:
        shop_id, _ = live.add_shop("woocommerce", "https://a.example", consumer_key="ck", consumer_secret="cs")
        with live.rt.sessions.begin() as session:
            key = referral_key(session, live.config, shop_id)
        code = referral_code(Settings(referral_key=key), shop_id, REFERRER)
        *_, ruleset = _begin(live.rt, shop_id, None)  # the rule set the import folds with
        at = datetime(2026, 3, 2, tzinfo=timezone.utc)
        folder = Folder(live.rt.sessions, shop_id, ruleset.settings, at + timedelta(days=30))
        folder.add([customer_created(REFERRER, at, shop=shop_id), order_paid(REFERRER, "5101", at, shop=shop_id),
                    customer_created(FRIEND, at + timedelta(days=5), shop=shop_id),
                    order_paid(FRIEND, "5201", at + timedelta(days=6), codes=[code.lower()], shop=shop_id)])
        with live.rt.sessions.begin() as session:
            folder.flush(session)
        with live.rt.sessions() as session:
            friend = state_from_dict(session.get(CustomerRow, (shop_id, FRIEND)).state)
        assert friend.referred_by == REFERRER
    finally:
        stop(live)

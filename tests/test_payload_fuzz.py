"""Property tests: the real sample payloads of both platforms, and the canonical events made from
them, mutated (keys dropped, values of every JSON type swapped in, values nested, lists grown). A
parser either refuses a payload with the project's PayloadError or returns events the worker can
store, decode again and fold into a customer's state: no other exception may escape."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import connectors
from connectors.base import Shop
from plugin.engine import apply, new_state
from plugin.engine.state import state_to_dict
from plugin.errors import PayloadError
from plugin.events import Event, event_from_dict, event_to_dict
from plugin.shape import MAX_DEPTH, MAX_ITEMS, loads

FIXTURES = Path(__file__).resolve().parent / "fixtures"

# No api_url: order enrichment asks no store, so the properties are about parsing alone.
SHOPS = {
    "shopify": Shop(id="shop-1", platform="shopify", domain="fuzz.myshopify.com", api_url=""),
    "woocommerce": Shop(id="shop-2", platform="woocommerce", domain="https://store.example", api_url="",
                        settings={"consent_meta_key": "_keepwell_marketing_opt_in", "birthday_meta_key": "birthday"}),
}


def _json(*parts) -> dict:
    return json.loads(FIXTURES.joinpath(*parts).read_text())


def _woo_with_consent(name: str) -> dict:
    p = _json("woocommerce", "rest-v3-docs-examples", name)
    p["meta_data"] = [{"id": 1, "key": "_keepwell_marketing_opt_in", "value": "yes"},
                      {"id": 2, "key": "birthday", "value": "1990-05-17"}]
    return p


SAMPLES = [
    ("shopify", "orders/paid", _json("shopify", "webhooks", "2026-04__orders_paid.payload.json")),
    ("shopify", "orders/create", _json("shopify", "webhooks", "2026-04__orders_create.payload.json")),
    ("shopify", "orders/paid", _json("shopify", "order_paid.json")),
    ("shopify", "refunds/create", _json("shopify", "refund_create.json")),
    ("shopify", "customers/create", _json("shopify", "webhooks", "2026-04__customers_create.payload.json")),
    ("shopify", "customers/update", _json("shopify", "webhooks", "2026-04__customers_update.payload.json")),
    ("shopify", "customers_email_marketing_consent/update",
     _json("shopify", "webhooks", "2026-04__customers_email_marketing_consent_update.payload.json")),
    ("woocommerce", "order.created", _woo_with_consent("order_create_response.json")),
    ("woocommerce", "order.updated", _woo_with_consent("order_update_response.json")),
    ("woocommerce", "customer.created", _woo_with_consent("customer_create_response.json")),
]


def parse(platform: str, topic: str, payload) -> list[Event]:
    return connectors.get(platform).parse(SHOPS[platform], topic, payload, customer_of_order=lambda order_id: "42")


def usable(events: list[Event]) -> None:
    """What the worker does with parsed events: JSON for the backlog and timers, decoded again
    equal, folded into a customer's state, and the state stored as JSON."""
    for e in events:
        again = event_from_dict(json.loads(json.dumps(event_to_dict(e))))
        assert again == e
        state = apply(new_state(e.shop, e.customer_id), e)
        json.dumps(state_to_dict(state))


# --- mutations -----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
    | st.sampled_from(["", "0", "-1", "1e9999", "NaN", "12.50", "2026-11-23T12:00:00Z", "2026-02-30", "USD", "gid://shopify/Customer/x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:3]):
            yield from _paths(v, path + (i,))


def _at(root, path):
    for p in path:
        root = root[p]
    return root


@st.composite
def mutated(draw, sample):
    payload = copy.deepcopy(sample)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(payload) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _at(payload, path[:-1]), path[-1]
        op = draw(st.sampled_from(["drop", "replace", "nest", "grow"]))
        if op == "drop":
            del parent[key]
        elif op == "replace":
            parent[key] = draw(json_values)
        elif op == "nest":
            value = parent[key]
            for _ in range(draw(st.integers(1, 40))):
                value = draw(st.sampled_from([[value], {"v": value}]))
            parent[key] = value
        elif isinstance(parent[key], list) and parent[key]:
            parent[key] = parent[key] * draw(st.integers(2, 30))
        else:
            parent[key] = [parent[key]] * draw(st.integers(0, 5))
    return payload


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_the_unmutated_samples_parse_into_usable_events():
    assert all(parse(platform, topic, copy.deepcopy(p)) for platform, topic, p in SAMPLES
               if topic != "orders/paid" or p.get("customer"))
    for platform, topic, payload in SAMPLES:
        usable(parse(platform, topic, copy.deepcopy(payload)))


@pytest.mark.parametrize("platform, topic, sample", SAMPLES, ids=[f"{p}-{t}" for p, t, _ in SAMPLES])
def test_a_mutated_payload_is_refused_with_payload_error_or_parses_into_usable_events(platform, topic, sample):
    @FUZZ
    @given(mutated(sample))
    def check(payload):
        try:
            events = parse(platform, topic, payload)
        except PayloadError:
            return
        usable(events)

    check()


# One value of each JSON type, and the strings that look like what a field usually holds.
WRONG = [None, True, 0, 1, -1, 2**70, 1.5, "", "x", "12.50", "2026-02-30", [], [1], ["x"], {}, {"x": 1}]


@pytest.mark.parametrize("platform, topic, sample", SAMPLES, ids=[f"{p}-{t}" for p, t, _ in SAMPLES])
def test_every_field_of_a_sample_replaced_by_every_json_type_is_refused_or_parsed(platform, topic, sample):
    """Exhaustive where the random search is not: each field (to list index 2) dropped, and in
    turn given each value of WRONG, one at a time; every run checks every one."""
    tried = 0
    for path in [p for p in _paths(sample) if p]:
        for value in [...] + WRONG:
            payload = copy.deepcopy(sample)
            parent, key = _at(payload, path[:-1]), path[-1]
            if value is ...:
                del parent[key]
            else:
                parent[key] = copy.deepcopy(value)
            try:
                events = parse(platform, topic, payload)
            except PayloadError:
                continue
            finally:
                tried += 1
            usable(events)
    assert tried > 100


@pytest.mark.parametrize("platform, topic, sample", SAMPLES, ids=[f"{p}-{t}" for p, t, _ in SAMPLES])
def test_any_json_value_as_a_payload_is_refused_or_parsed(platform, topic, sample):
    @FUZZ
    @given(json_values)
    def check(payload):
        try:
            usable(parse(platform, topic, payload))
        except PayloadError:
            pass

    check()


def _events() -> list[dict]:
    out = []
    for platform, topic, payload in SAMPLES:
        out += [event_to_dict(e) for e in parse(platform, topic, copy.deepcopy(payload))]
    order = next(e for e in out if e.get("order") and e["order"].get("line_items"))
    timer = {"id": "timer:1", "type": "timer", "shop": "shop-1", "customer_id": order["customer_id"],
             "occurred_at": "2026-11-24T12:00:00+00:00",
             "data": {"rule_id": "winback", "version": 3, "event": order}}
    signal = {"id": "sig:1", "type": "referral.converted", "shop": "shop-1", "customer_id": "7",
              "occurred_at": "2026-11-24T12:00:00+00:00", "data": {"referred": "8", "order_id": "9"}}
    return out + [timer, signal]


EVENTS = _events()


@pytest.mark.parametrize("event", EVENTS, ids=[f"{e['type']}-{i}" for i, e in enumerate(EVENTS)])
def test_a_mutated_canonical_event_is_refused_with_payload_error_or_decodes_into_a_usable_event(event):
    @FUZZ
    @given(mutated(event))
    def check(d):
        try:
            e = event_from_dict(d)
        except PayloadError:
            return
        usable([e])

    check()


# --- the documented limits ---------------------------------------------------------------------

def _deep(depth: int):
    value = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("platform, topic, sample", [SAMPLES[2], SAMPLES[7]], ids=["shopify", "woocommerce"])
def test_limits_nesting_and_line_items(platform, topic, sample):
    deep = copy.deepcopy(sample)
    deep["note"] = _deep(MAX_DEPTH)  # one level below the payload object: MAX_DEPTH + 1 in all
    with pytest.raises(PayloadError, match=f"deeper than {MAX_DEPTH}"):
        parse(platform, topic, deep)
    many = copy.deepcopy(sample)
    many["line_items"] = many["line_items"][:1] * (MAX_ITEMS + 1)
    with pytest.raises(PayloadError, match=f"at most {MAX_ITEMS}"):
        parse(platform, topic, many)
    many["line_items"] = many["line_items"][:MAX_ITEMS]
    (_, *_) = parse(platform, topic, many)  # the limit itself is accepted


def test_the_worker_reads_bodies_with_the_same_limits():
    body = "[" * 1000 + "]" * 1000
    with pytest.raises(PayloadError, match=f"deeper than {MAX_DEPTH}"):
        loads(body)
    with pytest.raises(PayloadError, match=f"deeper than {MAX_DEPTH}"):
        loads(json.dumps(_deep(MAX_DEPTH + 1)))
    assert loads(json.dumps(_deep(MAX_DEPTH))) == _deep(MAX_DEPTH)
    with pytest.raises(PayloadError, match="not JSON"):
        loads('{"id": 1')
    with pytest.raises(PayloadError, match="deeper than"):
        event_from_dict({"id": "e", "type": "timer", "customer_id": "1", "occurred_at": "2026-11-23T12:00:00Z",
                         "data": {"x": _deep(MAX_DEPTH)}})


@pytest.mark.parametrize("kind", ["order.created", "order.paid", "order.refunded", "order.cancelled"])
def test_an_order_event_without_its_order_is_refused_naming_it(kind):
    d = {"id": "h:1", "type": kind, "shop": "shop-1", "customer_id": "7", "occurred_at": "2026-11-24T12:00:00+00:00"}
    with pytest.raises(PayloadError, match=f"an {kind} event needs its 'order'"):
        event_from_dict(d)

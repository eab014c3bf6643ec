"""The webhook endpoint, one for every platform: ``POST /webhooks/<platform>`` (and
``/webhooks/<platform>/<shop>`` for platforms whose webhooks are registered per shop). A request
does: read the body (size-limited), ask the platform's package which shop it is for, verify the
signature in constant time, parse, dedupe and append to the shop's backlog in one Redis round
trip, answer. Everything else happens in the worker. Every refusal is logged with its reason.

The edge fails fast when Redis stalls: its client waits ``KEEPWELL_EDGE_REDIS_TIMEOUT`` (1 s) for
an answer, then the delivery is answered 503 with Retry-After, and for ``COOLDOWN_S`` after that
the process answers 503 at once without asking Redis (one request then tries again). A web worker
is held at most a second per cooldown, not for the whole stall, so the deliveries queued behind it
are answered within Shopify's 5 s. A 503 is a delivery the store did not get through: Shopify
retries it (8 times over 4 hours); WooCommerce does not retry, and the reconciliation's order
poll picks the order up (and sets webhooks WooCommerce disabled after failures active again).
A delivery whose hand-off reached Redis just before the timeout is in the backlog; its retry is
then a duplicate (200). Nothing answered 2xx is lost: 202 means it is in the backlog.
"""
from __future__ import annotations

import orjson
import logging
import time

from flask import Blueprint, current_app, jsonify, request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

import connectors
from connectors.interfaces import Inbound
from plugin.errors import BacklogUnavailable, PayloadError, PayloadTooLarge, UnknownShop
from plugin.handoff import Envelope

log = logging.getLogger("keepwell.webhooks")
bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

#: after Redis did not answer in time, seconds this process answers 503 without asking it again
COOLDOWN_S = 2.0


class RedisGate:
    """Per process: whether Redis recently failed to answer, so deliveries are refused at once."""

    def __init__(self, cooldown: float = COOLDOWN_S):
        self.cooldown = cooldown
        self.closed_until = 0.0  # time.monotonic() before which deliveries get 503 without asking Redis

    def check(self) -> None:
        wait = self.closed_until - time.monotonic()
        if wait > 0:
            raise BacklogUnavailable(f"the backlog (Redis) did not answer {self.cooldown - wait:.1f} s ago; "
                                     "deliver again later")

    def trip(self, exc: Exception) -> BacklogUnavailable:
        self.closed_until = time.monotonic() + self.cooldown
        return BacklogUnavailable(f"the backlog (Redis) did not answer: {exc}; deliver again later")


def _gate() -> RedisGate:
    return current_app.extensions.setdefault("keepwell.redis_gate", RedisGate())


def _edge():
    return current_app.extensions["keepwell"]


def _body() -> bytes:
    limit = _edge().config.max_webhook_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body of {request.content_length} bytes is over the {limit}-byte limit")
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"body is over the {limit}-byte limit")
    return body


def _json(body: bytes) -> dict:
    try:
        payload = orjson.loads(body)  # strict UTF-8 JSON, as both platforms send; twice as fast as json
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadError("body is not a JSON object")
    return payload


def _status(status: str, code: int):
    """``{"status": ...}`` as jsonify writes it, without the JSON provider's cost on the hot path."""
    return current_app.response_class(f'{{"status":"{status}"}}\n', status=code, mimetype="application/json")


def _accept(shop_id: str, platform: str, topic: str, key: str, body: bytes):
    env = Envelope(platform, topic, key, time.time(), body.decode("utf-8"))
    gate = _gate()
    gate.check()
    try:
        pushed = _edge().handoff.push(shop_id, env)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise gate.trip(exc) from None
    if not pushed:
        return _status("duplicate", 200)
    return _status("accepted", 202)


@bp.post("/<platform>")
@bp.post("/<platform>/<shop_ref>")
def receive(platform: str, shop_ref: str | None = None):
    """Every platform's deliveries: its package identifies the shop and verifies the signature.
    ``shop_ref`` is the last part of a per-shop URL (WooCommerce's, registered per shop)."""
    body = _body()
    try:
        connector: Inbound = connectors.get(platform)
    except KeyError:
        raise UnknownShop(f"no platform {platform!r}") from None
    topic = connector.topic(request.headers)
    early = connector.unbound(_edge(), topic, request.headers, body)  # before the shop lookup
    if early is not None:
        return jsonify(status=early.status), early.code
    ref = connector.identify(request.headers, shop_ref)
    if ref is None:
        raise UnknownShop(f"this {platform} address names no shop")
    shop = _edge().shops.find(platform, ref)
    if shop is None:
        gone = "uninstalled" if ref.by == "domain" else "disconnected"
        raise UnknownShop(f"unknown or {gone} shop {ref.value!r}")
    if connector.is_ping(request.headers, body):
        return "", 200  # an unsigned "is this URL alive" call (WooCommerce's): only a 200 counts as success
    connector.verify(shop, request.headers, body)
    payload = _json(body)
    done = connector.lifecycle(_edge(), shop, topic, payload)  # e.g. app/uninstalled
    if done is not None:
        return jsonify(status=done.status), done.code
    if topic not in connector.topics:
        return _status("ignored", 200)
    return _accept(shop.id, platform, topic, connector.delivery_key(request.headers, payload), body)

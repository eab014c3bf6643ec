"""Webhook endpoints. A request does: read the body (size-limited), find the shop, verify the
signature in constant time, parse, dedupe and append to the shop's backlog in one Redis round
trip, answer. Everything else happens in the worker. Every refusal is logged with its reason.
"""
from __future__ import annotations

import orjson
import logging
import time

from flask import Blueprint, current_app, jsonify, request

import connectors
from connectors.shopify import binding
from plugin.errors import PayloadError, PayloadTooLarge, UnknownShop
from plugin.handoff import Envelope
from webhooks import compliance

log = logging.getLogger("keepwell.webhooks")
bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


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
    if not _edge().handoff.push(shop_id, env):
        return _status("duplicate", 200)
    return _status("accepted", 202)


@bp.post("/shopify")
def shopify():
    body = _body()
    connector = connectors.get("shopify")
    domain, topic = connector.shop_domain(request.headers), connector.topic(request.headers)
    if topic in compliance.TOPICS:  # before the shop lookup: they also come for uninstalled shops
        return compliance.handle(_edge(), topic, request.headers, body)
    shop = _edge().shops.get("shopify", domain)
    if shop is None:
        raise UnknownShop(f"unknown or uninstalled shop {domain!r}")
    connector.verify(shop, request.headers, body)
    payload = _json(body)
    key = connector.delivery_key(request.headers, payload)
    if topic == "app/uninstalled":  # only the shop's own shop object: the topic header is not signed
        _edge().shops.uninstall(shop.id, binding.check_uninstalled(payload, shop.domain))
        log.info("shop %s uninstalled the app", shop.id)
        return jsonify(status="uninstalled"), 200
    if topic not in connector.topics:
        return jsonify(status="ignored"), 200
    return _accept(shop.id, "shopify", topic, key, body)


@bp.post("/woocommerce/<shop_id>")
def woocommerce(shop_id: str):
    body = _body()
    connector = connectors.get("woocommerce")
    shop = _edge().shops.by_id("woocommerce", shop_id)
    if shop is None:
        raise UnknownShop(f"unknown or disconnected shop {shop_id!r}")
    if connector.is_ping(request.headers, body):
        return "", 200  # WooCommerce's unsigned creation ping: only a 200 counts as success
    connector.verify(shop, request.headers, body)
    payload = _json(body)
    topic = connector.topic(request.headers)
    if topic not in connector.topics:
        return jsonify(status="ignored"), 200
    return _accept(shop.id, "woocommerce", topic, connector.delivery_key(request.headers, payload), body)

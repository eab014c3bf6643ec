"""``POST /api/v1/events``: the merchant's own events (``custom.heatwave``), for rules to trigger on.

Authenticated by the shop's API key (``Authorization: Bearer kw_...``, see plugin.api_keys),
rate-limited per key (429 with Retry-After), validated against a JSON Schema (400 for a body that
is not JSON, 422 naming the field that is wrong), deduplicated by the event's ``id`` or the
``Idempotency-Key`` header like webhooks, and queued on the shop's backlog as a canonical event.
A customer Keepwell does not know yet is created from the fields given (and their marketing
consent is asked of the store, as for any new customer).
"""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone

import jsonschema
from flask import Blueprint, current_app, jsonify, request

from plugin import api_keys, ratelimit
from plugin.errors import EventError
from plugin.events import event_from_dict, event_to_dict
from plugin.handoff import Envelope

log = logging.getLogger("keepwell.api")
bp = Blueprint("events_api", __name__, url_prefix="/api/v1")

_TEXT = {"type": "string", "minLength": 1, "maxLength": 255}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "customer"],
    "properties": {
        "type": {"type": "string", "pattern": r"^custom\.[a-z0-9][a-z0-9_.-]{0,63}$"},
        "id": {"type": "string", "minLength": 1, "maxLength": 200},
        "occurred_at": {"type": "string", "format": "date-time"},
        "customer": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id"],
            "properties": {
                "id": {"oneOf": [{"type": "string", "pattern": r"^[^:\s][^\s]{0,127}$"}, {"type": "integer", "minimum": 0}]},
                "email": {"type": "string", "format": "email", "maxLength": 254},
                "first_name": _TEXT, "last_name": _TEXT,
                "locale": {"type": "string", "pattern": "^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$"},
            },
        },
        "data": {"type": "object", "maxProperties": 100, "propertyNames": {"not": {"const": "event"}}},
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _edge():
    return current_app.extensions["keepwell"]


def _refuse(status: int, error: str, field: str | None = None, headers: dict | None = None):
    log.warning("refused %s %s from %s: %s (%d)", request.method, request.path, request.remote_addr, error, status)
    body = {"error": error, **({"field": field} if field else {})}
    return jsonify(body), status, headers or {}


def _key() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _problem(err: jsonschema.ValidationError) -> tuple[str, str]:
    """(the field, what is wrong with it) of a schema error, in words."""
    field = ".".join(str(p) for p in err.absolute_path) or "(body)"
    if err.validator == "required":
        missing = err.message.split("'")[1]
        return (f"{field}.{missing}" if err.absolute_path else missing), "is required"
    if err.validator == "additionalProperties":
        unknown = sorted(set(err.instance) - set(err.schema["properties"]))
        return field, f"has unknown field(s) {', '.join(unknown)}; allowed: {', '.join(err.schema['properties'])}"
    if err.validator == "pattern" and field == "type":
        return field, "must be custom. and a name of lower case letters, digits, '_', '.' or '-', e.g. custom.heatwave"
    if "propertyNames" in err.schema_path:
        return field, "may not have a field named 'event' (Keepwell's own): name it e.g. 'kind'"
    if err.validator == "format":
        return field, f"is not a valid {err.validator_value}"
    return field, err.message


@bp.post("/events")
def receive():
    edge = _edge()
    with edge.sessions() as session:
        shop_id = api_keys.shop_of(session, edge.config, _key())
    if shop_id is None:
        return _refuse(401, "a valid API key is required: Authorization: Bearer kw_...", headers={
            "WWW-Authenticate": 'Bearer realm="keepwell"'})
    wait = ratelimit.hit(edge.handoff.redis, edge.config.queue, "api-events", shop_id,
                         edge.config.api_events_per_minute, 60)
    if wait:
        return _refuse(429, f"more than {edge.config.api_events_per_minute} events a minute: try again in {wait} s",
                       headers={"Retry-After": str(wait)})
    limit = edge.config.max_webhook_bytes
    raw = request.stream.read(limit + 1)
    if len(raw) > limit or (request.content_length or 0) > limit:
        return _refuse(413, f"body is over the {limit}-byte limit")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        return _refuse(400, f"body is not JSON: {exc}")
    if not isinstance(body, dict):
        return _refuse(400, "body is not a JSON object")
    errors = sorted(_VALIDATOR.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        field, problem = _problem(errors[0])
        return _refuse(422, f"{field} {problem}", field)
    header_key = request.headers.get("Idempotency-Key", "").strip()
    given = body.get("id")
    if given and header_key and given != header_key:
        return _refuse(422, "id and the Idempotency-Key header differ: give one, or the same in both", "id")
    idempotency = given or header_key
    if not idempotency or len(idempotency) > 200:
        return _refuse(422, "give the event an id (or an Idempotency-Key header, up to 200 characters): a retry "
                            "with the same id is then processed once", "id")
    return _accept(shop_id, body, idempotency)


def _accept(shop_id: str, body: dict, idempotency: str):
    customer = {k: str(v) for k, v in body["customer"].items()}
    event = {"id": f"api:{idempotency}", "type": body["type"], "shop": shop_id, "customer_id": customer["id"],
             "occurred_at": body.get("occurred_at") or datetime.now(timezone.utc).isoformat(),
             "customer": customer, "data": body.get("data") or {}}
    try:
        canonical = event_to_dict(event_from_dict(event))
    except EventError as exc:
        return _refuse(422, str(exc))
    env = Envelope("keepwell", "event", f"api:{idempotency}", time.time(), json.dumps(canonical, ensure_ascii=False))
    if not _edge().handoff.push(shop_id, env):
        return jsonify(status="duplicate", id=idempotency), 200
    return jsonify(status="accepted", id=idempotency), 202


__all__ = ["bp", "SCHEMA"]

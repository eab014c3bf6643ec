"""Twilio's inbound-message webhook: what customers text back to the shop's number.

The shop's Twilio number (Messaging → "A message comes in") points at
``POST {KEEPWELL_APP_URL}/sms/twilio/<shop id>``. Every request is checked against
``X-Twilio-Signature``: base64 HMAC-SHA1, keyed with the shop's auth token, of the public URL
Twilio called (KEEPWELL_APP_URL, so it holds behind a proxy) followed by each POST parameter's
name and value, sorted by name. A request that fails is answered 403 and logged; nothing is done.

The whole message, in any case, is the keyword:
- STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT withdraw SMS consent at once (``sms-stop:``);
- START, YES, UNSTOP give it back (``sms-start:``);
- HELP, INFO are answered with the shop's name and how to stop.
Twilio itself also handles these keywords for long codes (it confirms a STOP and blocks further
messages until START); Keepwell records the change so no touch is attempted and the store knows.
The sender's number is matched to the shop's customers by E.164 (``phones``); an unknown number,
or any other message, is answered 200 with an empty reply.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import datetime, timezone
from xml.sax.saxutils import escape

from flask import Blueprint, Response, current_app, request

from plugin.sms_consent import change_event, customers_for, record
from plugin.sms_consent.phones import e164

log = logging.getLogger("keepwell.sms_consent")
bp = Blueprint("sms_inbound", __name__)

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})


def signature(auth_token: str, url: str, params) -> str:
    """Twilio's signature of a form POST to ``url`` (``params``: a MultiDict or a mapping)."""
    data = url
    for name in sorted(params.keys()):
        values = params.getlist(name) if hasattr(params, "getlist") else [params[name]]
        data += "".join(name + value for value in sorted(values))
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def valid(auth_token: str, url: str, params, given: str | None) -> bool:
    return bool(given and auth_token) and hmac.compare_digest(signature(auth_token, url, params), given)


def _twiml(message: str | None = None) -> Response:
    body = f"<Message>{escape(message)}</Message>" if message else ""
    return Response(f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>', mimetype="text/xml")


def _public_url(app_url: str) -> str:
    query = request.query_string.decode("latin-1")
    return f"{app_url.rstrip('/')}{request.path}" + (f"?{query}" if query else "")


def _shop_name(shop) -> str:
    return (shop.settings.get("profile") or {}).get("name") or shop.settings.get("name") or shop.domain


@bp.post("/sms/twilio/<shop_id>")
def inbound(shop_id: str):
    edge = current_app.extensions["keepwell"]
    if (request.content_length or 0) > edge.config.max_webhook_bytes:
        return Response("too large", status=413, mimetype="text/plain")  # a text message is small: not read
    shop = next((s for s in (edge.shops.by_id(p, shop_id) for p in _platforms()) if s is not None), None)
    token = str((shop.sms if shop is not None else {}).get("auth_token") or "")
    if not valid(token, _public_url(edge.config.app_url), request.form, request.headers.get("X-Twilio-Signature")):
        log.warning("sms inbound for shop %s refused: %s", shop_id,
                    "no such shop with SMS settings" if not token else "X-Twilio-Signature does not match")
        return Response("forbidden", status=403, mimetype="text/plain")
    word = " ".join(request.form.get("Body", "").split()).upper()
    if word in HELP_WORDS:
        return _twiml(f"{_shop_name(shop)}: offers and news by text. Msg&data rates may apply. "
                      "Reply STOP to unsubscribe, START to subscribe again.")
    if word not in STOP_WORDS and word not in START_WORDS:
        return _twiml()
    sender = e164(request.form.get("From", ""))
    subscribed = word in START_WORDS
    now = datetime.now(timezone.utc)
    with edge.sessions.begin() as session:
        found = customers_for(session, shop_id, sender) if sender else []
        changed = [cid for cid in found if record(session, shop_id, cid, subscribed, now, "twilio")]
    for cid in changed:  # the backlog folds it into the state; the worker writes it back to the store
        edge.handoff.push_event(shop_id, change_event(shop_id, cid, subscribed, now, "twilio"))
    if not found:
        log.info("shop %s: %s from a number of no known customer: nothing to change", shop_id, word)
    else:
        log.info("shop %s: %s from %d customer(s): SMS consent %s", shop_id, word, len(found),
                 "given back" if subscribed else "withdrawn")
    return _twiml()


def _platforms():
    import connectors

    return connectors.platforms()

"""Shopify's mandatory privacy webhooks: customers/data_request, customers/redact, shop/redact.

They arrive at the Shopify webhook endpoint like every topic, but are handled before the edge
looks the shop up (``unbound``): they are signed with the app's client secret (old and new during a rotation) and must
be answered for shops Keepwell no longer serves, since shop/redact comes 48 hours after an
uninstall. A bad signature gets 401, as Shopify requires; a shop Keepwell holds nothing on
gets 200 and nothing else happens.

The work is queued as an RQ job (plugin/privacy.py) and the answer is 200 at once: erasing a
shop can take far longer than Shopify's 5 seconds, and Shopify gives 30 days to complete it.

The header is not signed and every shop's deliveries share the app's secret, so a header alone
could aim a genuine body at another shop or relabel it as another topic: the body must have its
topic's shape and name the header's shop (connectors/shopify/binding.py), else 401. shop/redact
erases only a shop that has uninstalled, and its job checks that again when it runs. Jobs keep no result (``result_ttl=0``): a redaction's
arguments hold the contact data being erased. Shopify's retries of a request re-run its job,
which changes nothing the second time.
"""
from __future__ import annotations

import hashlib
import json
import logging
from typing import Mapping

from rq.exceptions import DuplicateJobError

from connectors.base import Shop
from connectors.interfaces import Answer
from connectors.shopify import binding, oauth, signature
from plugin import privacy
from plugin.errors import PayloadError
from plugin.shops import find_shop

log = logging.getLogger("keepwell.compliance")

TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})


def handle(edge, topic: str, headers: Mapping[str, str], body: bytes) -> Answer:
    """Verify, tie the body to the topic and shop, queue the privacy job; what to answer."""
    app = Shop(id="app", platform="shopify", domain="", api_url="", webhook_secrets=edge.config.shopify_api_secrets)
    signature.verify(app, headers, body)  # SignatureError: 401
    payload = _payload(body)
    said = signature.shop_domain(headers)
    domain = oauth.valid_shop_domain(said)
    held = None
    if domain is not None:
        with edge.sessions() as session:
            row = find_shop(session, "shopify", domain)  # installed or not: an uninstalled shop's data is still here
            if row is not None:
                held = (row.id, row.active, (row.settings or {}).get("shopify_shop_id"))
    binding.check_compliance(topic, payload, said, held[2] if held else None)  # SignatureError: 401
    if held is None:
        log.info("%s for %r: Keepwell holds nothing on this shop", topic, payload.get("shop_domain"))
        return Answer("nothing held")
    shop_id, active, _ = held
    if topic == "shop/redact" and active:
        # Shopify sends it 48 hours after an uninstall and never after a reinstall: a replay.
        log.warning("shop/redact for shop %s refused: the shop has the app installed", shop_id)
        return Answer("installed; nothing erased")
    function, args = _job(topic, shop_id, payload)
    job_id = "privacy-" + hashlib.sha256(json.dumps([function, args]).encode()).hexdigest()[:32]
    try:
        edge.handoff.queue.enqueue(function, *args, job_id=job_id, unique=True, retry=privacy.RETRY,
                                   result_ttl=0, failure_ttl=30 * 24 * 3600, description=f"{topic} {shop_id}")
        log.info("%s for shop %s queued as %s", topic, shop_id, job_id)
    except DuplicateJobError:
        log.info("%s for shop %s: already queued as %s", topic, shop_id, job_id)
    return Answer("queued")


def _payload(body: bytes) -> dict:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadError("body is not a JSON object")
    return payload


def _job(topic: str, shop_id: str, payload: dict) -> tuple[str, list]:
    """The privacy job and its arguments for one request."""
    if topic == "shop/redact":
        return "plugin.privacy.redact_shop_job", [shop_id]
    customer = payload.get("customer")
    customer_id = customer.get("id") if isinstance(customer, dict) else None
    if customer_id is None or isinstance(customer_id, bool) or str(customer_id).strip() == "":
        raise PayloadError(f"{topic}: the body names no customer id")
    customer_id = str(customer_id)  # as the connector keys customers: the numeric id as text
    if topic == "customers/data_request":
        request = payload.get("data_request")
        request_id = str(request.get("id", "")) if isinstance(request, dict) else ""
        return "plugin.privacy.export_job", [shop_id, customer_id, request_id]
    orders = [str(o) for o in payload.get("orders_to_redact") or () if o is not None]
    contact = [str(v) for v in (customer.get("email"), customer.get("phone")) if v]
    return "plugin.privacy.redact_customer_job", [shop_id, customer_id, orders, contact]

"""Email marketing consent in the store. Core WooCommerce has none: the shop's
``consent_meta_key`` setting names the customer meta a marketing plugin keeps it in. Read once
for a customer Keepwell meets without one; an unsubscribe written back as that meta's "no"."""
from __future__ import annotations

from datetime import datetime

from connectors.base import ConsentLookup, Shop
from connectors.woocommerce import client, sms
from connectors.woocommerce.parse import _consent, _meta

#: The "no" that matches the form of the "yes" a plugin stored (``1`` -> ``0``, ``on`` -> ``off``).
_NO_FOR = {"yes": "no", "1": "0", "true": "false", "on": "off", "no": "no", "0": "0", "false": "false", "off": "off"}


def _writable(shop: Shop, customer_id: str) -> bool:
    return bool(shop.settings.get("consent_meta_key")) and not customer_id.startswith("guest:")


def marketing_consent(shop: Shop, customer_id: str) -> ConsentLookup | None:
    """The consent the customer's meta holds (email, and SMS with the billing phone, from the same
    record); None for guests, shops without a consent meta key, and values that say neither yes
    nor no."""
    if not _writable(shop, customer_id):
        return None
    customer = client.call(shop, "GET", f"customers/{customer_id}")
    accepts, texts = _consent(shop, customer), sms.consent(shop, customer)
    if accepts is None and texts is None:
        return None
    return ConsentLookup(accepts, None, sms_consent=texts, phone=sms.phone(customer, f"customer {customer_id}"))


def unsubscribe(shop: Shop, customer_id: str, at: datetime) -> str:
    """Set the customer's consent meta to "no" (GET, then PUT only when it is not "no" already);
    what was done ("done", or "skipped: why"). StoreError on failure."""
    key = shop.settings.get("consent_meta_key")
    if not key:
        return "skipped: the shop has no consent meta key"
    if customer_id.startswith("guest:"):
        return "skipped: a guest has no customer record"
    customer = client.call(shop, "GET", f"customers/{customer_id}")
    if _consent(shop, customer) is False:
        return "done"  # the store says "no" already
    found, value = _meta(customer, key)
    meta = {"key": key, "value": _no_like(value) if found else "no"}
    entry = next((m for m in customer.get("meta_data") or () if isinstance(m, dict) and m.get("key") == key), None)
    if entry is not None and entry.get("id"):
        meta["id"] = entry["id"]  # update that entry rather than add a second one
    client.call(shop, "PUT", f"customers/{customer_id}", json={"meta_data": [meta]})
    return "done"


def _no_like(value) -> object:
    """The "no" in the form of the value a plugin stored there."""
    if isinstance(value, bool):
        return False
    return _NO_FOR.get(str(value).strip().lower(), "no")

"""SMS marketing consent in WooCommerce. Core WooCommerce keeps a phone number (``billing.phone``)
but no consent to text it: the companion WordPress plugin's checkout and account checkbox stores
it in ``_keepwell_sms_opt_in`` (yes/no, with ``_at`` and ``_source`` beside it), and a shop whose
SMS plugin keeps it elsewhere names that meta key in the ``sms_consent_meta_key`` setting (read
first). Without either, a customer has no SMS consent: a phone number is not a consent.

Keepwell's own changes (STOP, START, the personal page) are written back to the first of those
keys the customer has, in the form of the value stored there (``1`` -> ``0``, ``on`` -> ``off``).
"""
from __future__ import annotations

from datetime import datetime

from connectors.base import Shop
from connectors.woocommerce import client
from plugin import shape

#: The companion plugin's SMS opt-in meta key.
OPT_IN_KEY = "_keepwell_sms_opt_in"
_YES, _NO = ("yes", "1", "true", "on"), ("no", "0", "false", "off")
#: The answer in the form of the value a plugin stored (``1`` -> ``0``, ``on`` -> ``off``).
_FORM = {y: (y, n) for y, n in zip(_YES, _NO)} | {n: (y, n) for y, n in zip(_YES, _NO)}


def keys(shop: Shop) -> tuple[str, ...]:
    """The meta keys read for SMS consent, in order: the shop's own, then the companion plugin's."""
    own = shop.settings.get("sms_consent_meta_key")
    return tuple(dict.fromkeys([*([own] if own else []), OPT_IN_KEY]))


def _meta(p: dict, key: str) -> tuple[bool, object]:
    for m in shape.objects(p, "meta_data", "meta_data"):
        if m.get("key") == key:
            return True, m.get("value")
    return False, None


def consent(shop: Shop, p: dict) -> bool | None:
    """The SMS consent an order or customer payload's meta states; None when none of the keys is
    there (or holds neither yes nor no)."""
    for key in keys(shop):
        found, value = _meta(p, key)
        if not found:
            continue
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _YES:
            return True
        if text in _NO or text == "":  # an empty value is an unticked box
            return False
    return None


def phone(p: dict, where: str) -> str | None:
    """The billing phone of an order or customer payload, as typed."""
    billing = shape.obj(p, "billing", where)
    return (shape.text(billing, "phone", f"{where} billing") or "").strip() or None if billing else None


def update(shop: Shop, customer_id: str, subscribed: bool, at: datetime) -> str:
    """Write the customer's SMS consent into their meta (GET, then PUT only when it differs);
    "done", or "skipped: why". StoreError on failure."""
    if customer_id.startswith("guest:"):
        return "skipped: a guest has no customer record"
    customer = client.call(shop, "GET", f"customers/{customer_id}")
    if consent(shop, customer) is subscribed:
        return "done"  # the store says so already
    key = next((k for k in keys(shop) if _meta(customer, k)[0]), keys(shop)[0])
    found, value = _meta(customer, key)
    if isinstance(value, bool):
        new: object = subscribed
    else:
        yes, no = _FORM.get(str(value).strip().lower(), ("yes", "no")) if found else ("yes", "no")
        new = yes if subscribed else no
    meta: dict = {"key": key, "value": new}
    entry = next((m for m in customer.get("meta_data") or () if isinstance(m, dict) and m.get("key") == key), None)
    if entry is not None and entry.get("id"):
        meta["id"] = entry["id"]  # update that entry rather than add a second one
    entries = [meta]
    if key == OPT_IN_KEY:
        entries += [{"key": f"{OPT_IN_KEY}_at", "value": at.isoformat()}, {"key": f"{OPT_IN_KEY}_source", "value": "keepwell"}]
    client.call(shop, "PUT", f"customers/{customer_id}", json={"meta_data": entries})
    return "done"

"""SMS marketing consent in Shopify: read from webhooks and GraphQL, written back.

Reading. The customer's phone and ``sms_marketing_consent`` {state, opt_in_level,
consent_updated_at, consent_collected_from} come in REST-shaped customers (webhooks of API
versions before 2025-01, and the payloads reconciliation and the history import build from
GraphQL) and in ``customers_marketing_consent/update`` deliveries, the topic that tells of SMS
consent since 2025-01. Only ``subscribed`` is consent; ``pending`` (a confirmation not answered
yet) says nothing; every other state is no consent. In GraphQL (2026-10) the same is
``defaultPhoneNumber { phoneNumber smsMarketingConsent { state updatedAt } }``.

Writing. ``customerSmsMarketingConsentUpdate`` sets UNSUBSCRIBED or SUBSCRIBED (requires
write_customers; Shopify refuses it for a customer without a phone number, in userErrors).
"""
from __future__ import annotations

from datetime import datetime, timezone

from connectors.base import Shop
from connectors.shopify import api
from plugin import shape
from plugin.errors import PayloadError, StoreError
from plugin.events import Customer, Event, parse_time

TOPIC = "customers_marketing_consent/update"

#: sms_marketing_consent.state (REST, lower case) or CustomerMarketingConsentState (GraphQL) -> consent
STATES = {"subscribed": True, "not_subscribed": False, "unsubscribed": False, "redacted": False, "invalid": False,
          "pending": None}

#: The GraphQL selection of a customer's phone and its SMS consent.
PHONE_FIELDS = "defaultPhoneNumber { phoneNumber smsMarketingConsent { state updatedAt } }"

UPDATE = """
mutation KeepwellSmsConsent($input: CustomerSmsMarketingConsentUpdateInput!) {
  customerSmsMarketingConsentUpdate(input: $input) {
    customer { id defaultPhoneNumber { phoneNumber smsMarketingConsent { state } } }
    userErrors { field message code }
  }
}
"""


def consent(d: dict, where: str) -> bool | None:
    """The consent a REST-shaped customer's ``sms_marketing_consent`` states; None when it says none."""
    c = shape.obj(d, "sms_marketing_consent", where)
    state = shape.text(c, "state", f"{where} sms_marketing_consent") if c else None
    return STATES.get(state.lower()) if state else None


def consent_event(shop: Shop, p: dict) -> Event:
    """A ``customers_marketing_consent/update`` delivery as a canonical consent change."""
    where = TOPIC
    raw = p.get("customer_id", p.get("id"))
    if raw is None or isinstance(raw, (bool, float)) or not str(raw).strip():
        raise PayloadError(f"{where}: missing 'id'")
    customer_id = api.numeric_id(str(raw))
    if not customer_id.isdigit():
        raise PayloadError(f"{where}: 'id' is not an id: {raw!r}")
    c = shape.obj(p, "sms_marketing_consent", where) or {}
    state = (shape.text(c, "state", where) or "").lower() or None
    updated = shape.text(c, "consent_updated_at", where)
    try:
        occurred_at = parse_time(updated) if updated else datetime.now(timezone.utc)
    except ValueError:
        raise PayloadError(f"{where}: 'consent_updated_at' is not an ISO time: {updated!r}") from None
    stamp = occurred_at.astimezone(timezone.utc).isoformat() if updated else "-"
    return Event(
        id=f"shopify:{TOPIC}:{customer_id}:{stamp}:{state or '-'}",
        type="customer.consent_changed",
        shop=shop.id,
        customer_id=customer_id,
        occurred_at=occurred_at,
        customer=Customer(id=customer_id, phone=shape.text(p, "phone", where) or None,
                          sms_consent=STATES.get(state) if state else None),
    )


def rest_fields(node: dict) -> dict:
    """A GraphQL customer's ``defaultPhoneNumber`` as the REST fields ``phone`` and
    ``sms_marketing_consent`` (empty when the customer has no phone number)."""
    phone = node.get("defaultPhoneNumber") or {}
    if not phone.get("phoneNumber"):
        return {}
    out: dict = {"phone": phone["phoneNumber"]}
    sms = phone.get("smsMarketingConsent") or {}
    if sms.get("state"):
        out["sms_marketing_consent"] = {"state": str(sms["state"]).lower(), "consent_updated_at": sms.get("updatedAt")}
    return out


def update(shop: Shop, customer_id: str, subscribed: bool, at: datetime) -> str:
    """Set the customer's SMS marketing consent in the store, as of ``at``; "done", or "skipped:
    why". StoreError when Shopify refuses (userErrors) or fails."""
    given = {"marketingState": "SUBSCRIBED" if subscribed else "UNSUBSCRIBED", "consentUpdatedAt": at.isoformat()}
    if subscribed:
        given["marketingOptInLevel"] = "SINGLE_OPT_IN"  # a START texted back: no confirmation step
    data = api.execute(shop, UPDATE, {"input": {"customerId": api.gid("Customer", customer_id),
                                                "smsMarketingConsent": given}})
    result = data.get("customerSmsMarketingConsentUpdate") or {}
    errors = api.user_errors(result)
    if errors:
        raise StoreError(f"Shopify refused the SMS consent change of customer {customer_id}: "
                         f"{api.user_error_message(errors)}",
                         retryable=any(e.get("code") == "INTERNAL_ERROR" for e in errors), code="USER_ERROR")
    if result.get("customer") is None:
        return "skipped: the store has no such customer"
    return "done"

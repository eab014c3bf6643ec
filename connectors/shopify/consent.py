"""Marketing consent in the store: read once for a customer Keepwell meets without one (email,
and the phone's SMS consent), and an unsubscribe written back
(``customerEmailMarketingConsentUpdate`` -> UNSUBSCRIBED; SMS: ``connectors.shopify.sms``)."""
from __future__ import annotations

from datetime import datetime

from connectors.base import ConsentLookup, Shop
from connectors.shopify import api, sms
from connectors.shopify.payloads import CONSENT_STATES
from plugin.errors import StoreError
from plugin.events import parse_time

CUSTOMER_CONSENT = """
query KeepwellCustomerConsent($id: ID!) {
  customer(id: $id) {
    id
    defaultEmailAddress { marketingState marketingUpdatedAt }
    %s
  }
}
""" % sms.PHONE_FIELDS

UNSUBSCRIBE = """
mutation KeepwellUnsubscribe($input: CustomerEmailMarketingConsentUpdateInput!) {
  customerEmailMarketingConsentUpdate(input: $input) {
    customer { id defaultEmailAddress { marketingState } }
    userErrors { field message code }
  }
}
"""


def marketing_consent(shop: Shop, customer_id: str) -> ConsentLookup | None:
    """The customer's email and SMS marketing consent as the store has it; None when the store
    has no such customer, or neither an email address nor a phone number for them."""
    data = api.execute(shop, CUSTOMER_CONSENT, {"id": api.gid("Customer", customer_id)})
    customer = data.get("customer") or {}
    email = customer.get("defaultEmailAddress") or {}
    phone = sms.rest_fields(customer)
    if not email.get("marketingState") and not phone:
        return None
    state = str(email.get("marketingState") or "").lower()
    updated = email.get("marketingUpdatedAt")
    texts = phone.get("sms_marketing_consent") or {}
    sms_state, sms_at = texts.get("state"), texts.get("consent_updated_at")
    return ConsentLookup(CONSENT_STATES.get(state), parse_time(updated) if updated else None,
                         sms_consent=sms.STATES.get(sms_state) if sms_state else None,
                         sms_consent_at=parse_time(sms_at) if sms_at else None, phone=phone.get("phone"))


def unsubscribe(shop: Shop, customer_id: str, at: datetime) -> str:
    """Mark the customer UNSUBSCRIBED from email marketing in the store, as of ``at``; what was
    done ("done", or "skipped: why"). StoreError when Shopify refuses or fails."""
    consent = {"marketingState": "UNSUBSCRIBED", "consentUpdatedAt": at.isoformat()}
    data = api.execute(shop, UNSUBSCRIBE, {"input": {"customerId": api.gid("Customer", customer_id),
                                                     "emailMarketingConsent": consent}})
    result = data.get("customerEmailMarketingConsentUpdate") or {}
    errors = api.user_errors(result)
    if errors:
        raise StoreError(f"Shopify refused the unsubscribe of customer {customer_id}: "
                         f"{api.user_error_message(errors)}", retryable=any(e.get("code") == "INTERNAL_ERROR"
                                                                            for e in errors), code="USER_ERROR")
    if result.get("customer") is None:
        return "skipped: the store has no such customer"
    return "done"

"""Email marketing consent in the store: read once for a customer Keepwell meets without one,
and an unsubscribe written back (``customerEmailMarketingConsentUpdate`` -> UNSUBSCRIBED)."""
from __future__ import annotations

from datetime import datetime

from connectors.base import ConsentLookup, Shop
from connectors.shopify import api
from connectors.shopify.payloads import CONSENT_STATES
from plugin.errors import StoreError
from plugin.events import parse_time

CUSTOMER_CONSENT = """
query KeepwellCustomerConsent($id: ID!) {
  customer(id: $id) {
    id
    defaultEmailAddress { marketingState marketingUpdatedAt }
  }
}
"""

UNSUBSCRIBE = """
mutation KeepwellUnsubscribe($input: CustomerEmailMarketingConsentUpdateInput!) {
  customerEmailMarketingConsentUpdate(input: $input) {
    customer { id defaultEmailAddress { marketingState } }
    userErrors { field message code }
  }
}
"""


def marketing_consent(shop: Shop, customer_id: str) -> ConsentLookup | None:
    """The customer's email marketing consent as the store has it; None when the store has no
    such customer or no email address for them."""
    data = api.execute(shop, CUSTOMER_CONSENT, {"id": api.gid("Customer", customer_id)})
    email = (data.get("customer") or {}).get("defaultEmailAddress")
    if not email or not email.get("marketingState"):
        return None
    state = str(email["marketingState"]).lower()
    updated = email.get("marketingUpdatedAt")
    return ConsentLookup(CONSENT_STATES.get(state), parse_time(updated) if updated else None)


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

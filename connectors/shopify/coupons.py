"""Personal and referral coupons as Shopify basic code discounts (``discountCodeBasicCreate``).

A coupon's ``collections`` may be numeric ids, gids or handles (``brewing``, as the shipped packs
write them); a handle is resolved with ``collectionByIdentifier`` and the answer cached for
``COLLECTION_TTL_S`` where every worker process sees it (``connectors.cache.SharedCache``). A
reference made only of digits is an id.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from urllib.parse import quote

from connectors.base import CouponResult, Shop
from connectors.shopify import api
from connectors.cache import MISSING, SharedCache
from plugin.errors import StoreError

CREATE_DISCOUNT = """
mutation KeepwellCouponCreate($discount: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $discount) {
    codeDiscountNode { id }
    userErrors { field message code extraInfo }
  }
}
"""

FIND_DISCOUNT = """
query KeepwellCouponByCode($code: String!) {
  codeDiscountNodeByCode(code: $code) { id }
}
"""

COLLECTION_BY_HANDLE = """
query KeepwellCollectionByHandle($identifier: CollectionIdentifierInput!) {
  collectionByIdentifier(identifier: $identifier) { id }
}
"""

COLLECTION_TTL_S = 600.0
#: (Keepwell shop id, handle) -> collection gid
COLLECTION_IDS = SharedCache("collection-ids", COLLECTION_TTL_S, 2_000)

#: Shopify reports a code that is in use as ``code: TAKEN`` on the ``code`` field with the message
#: "Code must be unique. Please try a different code."; older answers carry only the message.
_TAKEN_MESSAGE = re.compile(r"must be unique|already (been )?taken|already exists", re.IGNORECASE)

#: Our coupons stack with free-shipping offers but not with other product or order discounts,
#: so a retention coupon never doubles up with a sale the merchant runs.
COMBINES_WITH = {"productDiscounts": False, "orderDiscounts": False, "shippingDiscounts": True}


def create_coupon(shop: Shop, action: dict) -> CouponResult:
    """Create the discount code an engine ``coupon`` action describes.

    A "code already taken" answer for this very code counts as success: codes are derived from
    the decision key, so a retry after a crash asks for the same code.
    """
    code = action["code"]
    if action.get("collections"):
        action = {**action, "collections": collection_gids(shop, action["collections"])}
    data = api.execute(shop, CREATE_DISCOUNT, {"discount": discount_input(action)})
    result = data.get("discountCodeBasicCreate") or {}
    errors = api.user_errors(result)
    if not errors:
        node = result.get("codeDiscountNode") or {}
        return CouponResult(code=code, store_id=node.get("id"))
    if all(code_taken(e) for e in errors):
        found = api.execute(shop, FIND_DISCOUNT, {"code": code}).get("codeDiscountNodeByCode") or {}
        return CouponResult(code=code, store_id=found.get("id"), already_existed=True)
    raise StoreError(f"Shopify refused coupon {code}: {api.user_error_message(errors)}", retryable=False,
                     code=next((e.get("code") for e in errors if e.get("code")), "USER_ERROR"))


def collection_gids(shop: Shop, refs) -> list[str]:
    """Collection gids for references given as numeric ids, gids or handles; StoreError for an unknown handle."""
    out = []
    for ref in refs:
        text = str(ref).strip()
        if isinstance(ref, int) or text.isdigit() or text.startswith("gid://"):
            out.append(api.gid("Collection", text))
            continue
        handle = text.lower()  # Shopify makes every handle lower-case
        found = COLLECTION_IDS.get((shop.id, handle))
        if found is MISSING:
            data = api.execute(shop, COLLECTION_BY_HANDLE, {"identifier": {"handle": handle}})
            found = (data.get("collectionByIdentifier") or {}).get("id")
            if not found:
                raise StoreError(f"Shopify has no collection with handle {handle!r}", retryable=False,
                                 status=404, code="UNKNOWN_COLLECTION")
            COLLECTION_IDS.put((shop.id, handle), found)
        out.append(found)
    return out


def discount_link(shop: Shop, code: str) -> str:
    """Shopify's shareable discount link: opening it puts ``code`` in the visitor's cart."""
    domain = shop.domain.removeprefix("https://").removeprefix("http://").rstrip("/")
    return f"https://{domain}/discount/{quote(code, safe='')}"


def code_taken(error: dict) -> bool:
    """True when a DiscountUserError says the discount code is already in use."""
    field = error.get("field") or []
    about_code = not field or field[-1] == "code"
    return about_code and (error.get("code") == "TAKEN" or bool(_TAKEN_MESSAGE.search(error.get("message") or "")))


def discount_input(action: dict) -> dict:
    """The ``DiscountCodeBasicInput`` for a coupon action (its JSON form, values as strings)."""
    customer = action.get("customer_id")
    minimum = action.get("minimum_subtotal")
    return {
        "title": action.get("title") or action["code"],
        "code": action["code"],
        "startsAt": action.get("starts_at") or datetime.now(timezone.utc).isoformat(),
        "endsAt": action.get("expires_at"),
        # A personal coupon is for one customer; a referral code (no customer) is for any friend.
        "context": {"customers": {"add": [api.gid("Customer", customer)]}} if customer else {"all": "ALL"},
        "customerGets": {"value": _value(action), "items": _items(action)},
        "minimumRequirement": (
            {"subtotal": {"greaterThanOrEqualToSubtotal": str(_decimal(minimum["amount"], "minimum_subtotal"))}}
            if minimum else None
        ),
        "usageLimit": action.get("usage_limit"),
        "appliesOncePerCustomer": bool(action.get("once_per_customer", True)),
        "combinesWith": COMBINES_WITH,
    }


def _value(action: dict) -> dict:
    amount = _decimal(action["value"], "value")
    if action["discount_type"] == "percent":
        if not 0 < amount <= 100:
            raise StoreError(f"coupon {action['code']}: percentage {amount} is not in (0, 100]", retryable=False,
                             code="BAD_ACTION")
        return {"percentage": float(amount / 100)}  # Shopify wants 0..1: 15 % is 0.15
    if action["discount_type"] == "fixed":
        # Spread over the entitled items, not taken off each one: "5 USD off" means 5 off the order.
        return {"discountAmount": {"amount": str(amount), "appliesOnEachItem": False}}
    raise StoreError(f"coupon {action['code']}: unknown discount_type {action['discount_type']!r}",
                     retryable=False, code="BAD_ACTION")


def _items(action: dict) -> dict:
    products = [api.gid("Product", p) for p in action.get("products") or ()]
    collections = [api.gid("Collection", c) for c in action.get("collections") or ()]
    if not products and not collections:
        return {"all": True}
    items = {}
    if products:
        items["products"] = {"productsToAdd": products}
    if collections:
        items["collections"] = {"add": collections}
    return items


def _decimal(value, name: str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise StoreError(f"coupon {name} {value!r} is not a number", retryable=False, code="BAD_ACTION") from None

"""Personal and referral coupons as Shopify basic code discounts (``discountCodeBasicCreate``).

A coupon's ``collections`` may be numeric ids, gids or handles (``brewing``, as the shipped packs
write them); a handle is resolved with ``collectionByIdentifier`` and the answer cached for
``COLLECTION_TTL_S`` where every worker process sees it (``connectors.cache.SharedCache``). A
reference made only of digits is an id.
"""
from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from urllib.parse import quote

from connectors.base import CouponResult, Shop, currency_mismatch, fresh_code
from connectors.shopify import api
from connectors.cache import MISSING, SharedCache
from plugin.engine.actions import Coupon
from plugin.errors import StoreError

CREATE_DISCOUNT = """
mutation KeepwellCouponCreate($discount: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $discount) {
    codeDiscountNode { id }
    userErrors { field message code extraInfo }
  }
}
"""

#: What ``discountCodeBasicCreate`` would have set, to tell our own earlier attempt from another discount.
FIND_DISCOUNT = """
query KeepwellCouponByCode($code: String!) {
  codeDiscountNodeByCode(code: $code) {
    id
    codeDiscount {
      __typename
      ... on DiscountCodeBasic {
        startsAt
        endsAt
        usageLimit
        appliesOncePerCustomer
        context {
          __typename
          ... on DiscountCustomers { customers { id } }
        }
        customerGets {
          value {
            __typename
            ... on DiscountPercentage { percentage }
            ... on DiscountAmount { amount { amount } appliesOnEachItem }
          }
          items {
            __typename
            ... on DiscountProducts { products(first: 50) { nodes { id } } }
            ... on DiscountCollections { collections(first: 50) { nodes { id } } }
          }
        }
        minimumRequirement {
          __typename
          ... on DiscountMinimumSubtotal { greaterThanOrEqualToSubtotal { amount } }
        }
      }
    }
  }
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


def create_coupon(shop: Shop, action: Coupon, fresh: bool = False) -> CouponResult:
    """Create the discount code an engine ``coupon`` action describes.

    Codes are derived from the decision key, so a retry after a crash asks for the same code and
    Shopify answers TAKEN: the existing discount is adopted when it is the one this action
    describes (our earlier attempt). A discount that differs is someone else's: the touch is
    created under a fresh code derived from the decision key, and the conflict is reported.
    """
    code = action.code
    if problem := currency_mismatch(shop, action):  # Shopify reads discountAmount in the shop's currency
        raise StoreError(f"coupon {code}: {problem}", retryable=False, code="BAD_ACTION")
    if action.collections:
        action = replace(action, collections=tuple(collection_gids(shop, action.collections)))
    sent = discount_input(action)
    data = api.execute(shop, CREATE_DISCOUNT, {"discount": sent})
    result = data.get("discountCodeBasicCreate") or {}
    errors = api.user_errors(result)
    if not errors:
        node = result.get("codeDiscountNode") or {}
        return CouponResult(code=code, store_id=node.get("id"))
    if not all(code_taken(e) for e in errors):
        raise StoreError(f"Shopify refused coupon {code}: {api.user_error_message(errors)}", retryable=False,
                         code=next((e.get("code") for e in errors if e.get("code")), "USER_ERROR"))
    found = api.execute(shop, FIND_DISCOUNT, {"code": code}).get("codeDiscountNodeByCode") or {}
    differences = discount_differences(found.get("codeDiscount"), sent)
    if not differences:
        return CouponResult(code=code, store_id=found.get("id"), already_existed=True)
    conflict = f"code {code} is another discount's ({'; '.join(differences)})"
    other = None if fresh else fresh_code(action)
    if other is None:
        raise StoreError(f"Shopify refused coupon {code}: {conflict}", retryable=False, code="CODE_CONFLICT")
    created = create_coupon(shop, replace(action, code=other, title=str(sent["title"]).replace(code, other)), fresh=True)
    return replace(created, conflict=f"{conflict}; created {other} instead")


def discount_differences(existing: dict | None, sent: dict) -> list[str]:
    """How an existing ``DiscountCodeBasic`` differs from the ``DiscountCodeBasicInput`` we would
    send (customer eligibility, value, items, minimum, dates, usage limits); [] when it is ours."""
    if not existing or existing.get("__typename") != "DiscountCodeBasic":
        return [f"a {(existing or {}).get('__typename', 'missing')} discount"]
    out = []
    customers = sorted(c["id"] for c in (existing.get("context") or {}).get("customers") or ())
    if customers != sorted((sent["context"].get("customers") or {}).get("add") or ()):
        out.append(f"for customers {customers or 'all'}")
    gets = existing.get("customerGets") or {}
    if _value_of(gets.get("value") or {}) != _value_of(sent["customerGets"]["value"]):
        out.append(f"value {_value_of(gets.get('value') or {})}")
    if _items_of(gets.get("items") or {}) != _items_of(sent["customerGets"]["items"]):
        out.append(f"items {_items_of(gets.get('items') or {})}")
    minimum = ((existing.get("minimumRequirement") or {}).get("greaterThanOrEqualToSubtotal") or {}).get("amount")
    wanted = ((sent.get("minimumRequirement") or {}).get("subtotal") or {}).get("greaterThanOrEqualToSubtotal")
    if _number(minimum) != _number(wanted):
        out.append(f"minimum subtotal {minimum}")
    for name in ("startsAt", "endsAt"):
        if _instant(existing.get(name)) != _instant(sent.get(name)):
            out.append(f"{name} {existing.get(name)}")
    for name in ("usageLimit", "appliesOncePerCustomer"):
        if existing.get(name) != sent.get(name):
            out.append(f"{name} {existing.get(name)}")
    return out


def _value_of(value: dict) -> tuple:
    if "percentage" in value:
        return ("percentage", round(float(value["percentage"]), 6))
    amount = value.get("discountAmount") or value
    money = amount.get("amount")
    return ("amount", _number(money.get("amount") if isinstance(money, dict) else money),
            bool(amount.get("appliesOnEachItem")))


def _items_of(items: dict) -> tuple:
    products = (items.get("products") or {})
    collections = (items.get("collections") or {})
    return (tuple(sorted(products.get("productsToAdd") or [n["id"] for n in products.get("nodes") or ()])),
            tuple(sorted(collections.get("add") or [n["id"] for n in collections.get("nodes") or ()])))


def _number(value) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def _instant(value) -> datetime | None:
    if not value:
        return None
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t.astimezone(timezone.utc).replace(microsecond=0)


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


def discount_input(action: Coupon) -> dict:
    """The ``DiscountCodeBasicInput`` for a coupon action (its JSON form, values as strings)."""
    customer = action.customer_id
    minimum = action.minimum_subtotal
    return {
        "title": action.title or action.code,
        "code": action.code,
        "startsAt": action.starts_at.isoformat(),
        "endsAt": action.expires_at.isoformat() if action.expires_at else None,
        # A personal coupon is for one customer; a referral code (no customer) is for any friend.
        "context": {"customers": {"add": [api.gid("Customer", customer)]}} if customer else {"all": "ALL"},
        "customerGets": {"value": _value(action), "items": _items(action)},
        "minimumRequirement": (
            {"subtotal": {"greaterThanOrEqualToSubtotal": str(_decimal(minimum.amount, "minimum_subtotal"))}}
            if minimum else None
        ),
        "usageLimit": action.usage_limit,
        "appliesOncePerCustomer": bool(action.once_per_customer),
        "combinesWith": COMBINES_WITH,
    }


def _value(action: Coupon) -> dict:
    amount = _decimal(action.value, "value")
    if action.discount_type == "percent":
        if not 0 < amount <= 100:
            raise StoreError(f"coupon {action.code}: percentage {amount} is not in (0, 100]", retryable=False,
                             code="BAD_ACTION")
        return {"percentage": float(amount / 100)}  # Shopify wants 0..1: 15 % is 0.15
    if action.discount_type == "fixed":
        # Spread over the entitled items, not taken off each one: "5 USD off" means 5 off the order.
        return {"discountAmount": {"amount": str(amount), "appliesOnEachItem": False}}
    raise StoreError(f"coupon {action.code}: unknown discount_type {action.discount_type!r}",
                     retryable=False, code="BAD_ACTION")


def _items(action: Coupon) -> dict:
    products = [api.gid("Product", p) for p in action.products]
    collections = [api.gid("Collection", c) for c in action.collections]
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

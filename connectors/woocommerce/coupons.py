"""Personal coupons through ``POST /wc/v3/coupons``."""
from __future__ import annotations

from dataclasses import replace
from datetime import timezone
from decimal import Decimal, InvalidOperation

from connectors.base import CouponResult, Shop, currency_mismatch, fresh_code
from connectors.woocommerce import client
from plugin.engine.actions import Coupon
from plugin.errors import StoreError
from plugin.events import parse_time

ALREADY_EXISTS = "woocommerce_rest_coupon_code_already_exists"
KEY_META = "keepwell_key"
_DISCOUNT_TYPES = {"percent": "percent", "fixed": "fixed_cart"}


def create_coupon(shop: Shop, action: Coupon, fresh: bool = False) -> CouponResult:
    """Create the coupon an engine ``coupon`` action describes.

    Codes come from the decision key, so a retry asks for the same code and the store answers
    "already exists": the coupon is adopted when it is the one this action describes (our
    earlier attempt, carrying its key in ``keepwell_key``). Another coupon under that code is
    left alone: the touch is created under a fresh code derived from the decision key, and the
    conflict is reported.
    """
    code = action.code
    if problem := currency_mismatch(shop, action):
        raise _invalid(action, problem)
    categories = [_category_id(shop, c) for c in action.collections]
    body = coupon_body(action, categories, _restricted_email(shop, action))
    try:
        created = client.call(shop, "POST", "coupons", json=body)
    except StoreError as exc:
        if exc.code != ALREADY_EXISTS:
            raise
        existing = _existing(shop, code)
        differences = coupon_differences(existing, body)
        if not differences:
            return CouponResult(code=code, store_id=str(existing["id"]), already_existed=True)
        conflict = f"code {code} is another coupon's ({'; '.join(differences)})"
        other = None if fresh else fresh_code(action)
        if other is None:
            raise StoreError(f"WooCommerce refused coupon {code}: {conflict}", retryable=False,
                             code="keepwell_code_conflict") from exc
        result = create_coupon(shop, replace(action, code=other, title=(action.title or "").replace(code, other)),
                               fresh=True)
        return replace(result, conflict=f"{conflict}; created {other} instead")
    return CouponResult(code=code, store_id=str(created["id"]) if created.get("id") else None)


def coupon_differences(existing: dict | None, body: dict) -> list[str]:
    """How a stored coupon differs from the ``POST /coupons`` body we would send; [] when it is ours."""
    if not existing:
        return ["no coupon readable under that code"]
    out = []
    meta = {m.get("key"): m.get("value") for m in existing.get("meta_data") or () if isinstance(m, dict)}
    if meta.get(KEY_META) != body["meta_data"][0]["value"]:
        out.append(f"made for {meta.get(KEY_META) or 'no Keepwell touch'}")
    if existing.get("discount_type") != body["discount_type"] or _dec(existing.get("amount")) != _dec(body["amount"]):
        out.append(f"{existing.get('amount')} {existing.get('discount_type')}")
    if sorted(str(e).lower() for e in existing.get("email_restrictions") or ()) != body.get("email_restrictions", []):
        out.append(f"for {existing.get('email_restrictions') or 'everyone'}")
    for name in ("usage_limit", "usage_limit_per_user"):
        if existing.get(name) != body.get(name):
            out.append(f"{name} {existing.get(name)}")
    for name in ("product_ids", "product_categories"):
        if sorted(existing.get(name) or ()) != sorted(body.get(name) or ()):
            out.append(f"{name} {existing.get(name)}")
    if _dec(existing.get("minimum_amount")) != _dec(body.get("minimum_amount")):
        out.append(f"minimum {existing.get('minimum_amount')}")
    expires = parse_time(existing["date_expires_gmt"]) if existing.get("date_expires_gmt") else None
    if expires != (parse_time(body["date_expires"]) if body.get("date_expires") else None):
        out.append(f"expires {existing.get('date_expires_gmt')}")
    return out


def _dec(value) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def coupon_body(action: Coupon, category_ids: list[int], email: str | None) -> dict:
    """The ``POST /coupons`` body for a coupon action (pure; ``category_ids`` already resolved)."""
    kind = action.discount_type
    if kind not in _DISCOUNT_TYPES:
        raise _invalid(action, f"discount_type {kind!r} is not one of {', '.join(_DISCOUNT_TYPES)}")
    body = {
        "code": action.code,
        "discount_type": _DISCOUNT_TYPES[kind],
        "amount": _amount(action, action.value, "value"),  # WooCommerce wants a string
        "individual_use": True,
        "description": action.title or "",
        "product_ids": [_int(action, p, "products") for p in action.products],
        "product_categories": category_ids,
        "meta_data": [{"key": KEY_META, "value": action.key}],
    }
    if action.expires_at:
        # WC_Coupon has set_date_expires() but no set_date_expires_gmt(), so the REST API drops a
        # date_expires_gmt; date_expires with an explicit UTC offset is read as that instant.
        expires = action.expires_at.astimezone(timezone.utc)
        body["date_expires"] = expires.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    if action.minimum_subtotal:
        body["minimum_amount"] = _amount(action, action.minimum_subtotal.amount, "minimum_subtotal")
    if email:
        body["email_restrictions"] = [email.lower()]
    if action.usage_limit is not None:
        body["usage_limit"] = int(action.usage_limit)
    if action.once_per_customer:
        body["usage_limit_per_user"] = 1
    # WooCommerce has no start date: the coupon is valid from creation, which is starts_at.
    return body


def _restricted_email(shop: Shop, action: Coupon) -> str | None:
    """The email a personal coupon is locked to (WooCommerce restricts by email, not customer id).

    No customer means a shared referral code. A personal action without an email takes it
    from the guest id or the store's customer record, so the coupon is never left open.
    """
    if action.email:
        return action.email.strip()
    cid = action.customer_id
    if not cid:
        return None
    cid = str(cid)
    if cid.startswith("guest:"):
        return cid.split(":", 1)[1]
    customer = client.call(shop, "GET", f"customers/{cid}")
    if not customer.get("email"):
        raise _invalid(action, f"customer {cid} has no email to restrict the coupon to")
    return customer["email"]


def _category_id(shop: Shop, ref) -> int:
    """A product category id, looking a slug up with ``GET /products/categories?slug=``."""
    if isinstance(ref, int) or str(ref).isdigit():
        return int(ref)
    found = client.call(shop, "GET", "products/categories", params={"slug": str(ref)})
    for cat in found if isinstance(found, list) else ():
        if str(cat.get("slug", "")).lower() == str(ref).lower():
            return int(cat["id"])
    raise StoreError(f"WooCommerce has no product category with slug {ref!r}", retryable=False,
                     status=404, code="keepwell_unknown_category")


def _existing(shop: Shop, code: str) -> dict | None:
    """The stored coupon with this code; WooCommerce lower-cases codes, so compare so."""
    found = client.call(shop, "GET", "coupons", params={"code": code})
    for coupon in found if isinstance(found, list) else ():
        if str(coupon.get("code", "")).lower() == code.lower():
            return coupon
    return None


def _amount(action: Coupon, value, what: str) -> str:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise _invalid(action, f"{what} {value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise _invalid(action, f"{what} {value!r} is not a positive number")
    return str(amount)


def _int(action: Coupon, value, what: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise _invalid(action, f"{what}: {value!r} is not a WooCommerce id") from None


def _invalid(action: Coupon, problem: str) -> StoreError:
    return StoreError(f"coupon {action.code}: {problem}", retryable=False, code="keepwell_invalid_action")

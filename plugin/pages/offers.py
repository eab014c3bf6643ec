"""The offers a personal page shows: the customer's coupons from the ledger, this touch's first,
each with a one-tap link that opens the store with the code applied."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

import connectors
from plugin.db import DecisionRow, EffectRow
from plugin.mail.context import coupon_vars

#: Older touches' coupons shown besides this touch's, newest first.
MAX_OFFERS = 5


def use_link(shop, code: str) -> str:
    """Opens the store with ``code`` applied: Shopify's discount link back to the home page;
    WooCommerce's link of the companion plugin (``coupon_url_param``), else the store."""
    link = connectors.get(shop.platform).discount_link(shop, code)
    return f"{link}?redirect=/" if shop.platform == "shopify" else link


def _coupon_actions(row: DecisionRow) -> list[dict]:
    return [a for a in (row.decision or {}).get("actions", ()) if a.get("type") == "coupon"]


def offers(session, shop, customer_id: str, touch: str, now: datetime) -> list[dict]:
    """The customer's live coupons (made in the store, not expired), this touch's first."""
    rows = session.scalars(select(DecisionRow).where(DecisionRow.shop_id == shop.id,
                                                     DecisionRow.customer_id == customer_id,
                                                     DecisionRow.kind == "touch", DecisionRow.status == "done")
                           .order_by(DecisionRow.id.desc()).limit(50)).all()
    rows.sort(key=lambda r: r.key != touch)  # stable: this touch first, then newest first
    made = {e.key: e.coupon_code for e in session.scalars(
        select(EffectRow).where(EffectRow.shop_id == shop.id, EffectRow.customer_id == customer_id,
                                EffectRow.type == "coupon", EffectRow.status == "done"))}
    out = []
    for row in rows:
        for action in _coupon_actions(row):
            code = made.get(action.get("key"))  # the code the store took; none until it did
            expires = action.get("expires_at")
            if not code or (expires and datetime.fromisoformat(expires) <= now):
                continue
            try:
                shown = coupon_vars({**action, "code": code})
            except (KeyError, ValueError, ArithmeticError):
                continue  # a row written by an older version: not worth a broken page
            out.append({**shown, "use_url": use_link(shop, code), "touch": row.key, "rule_id": row.rule_id})
        if len(out) >= MAX_OFFERS:
            break
    return out[:MAX_OFFERS]

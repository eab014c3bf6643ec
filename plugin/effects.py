"""Running a touch's effects: coupons and tags through the store, emails over SMTP, signals.

Each effect row is marked done as soon as it succeeded, so a retried job skips it. Coupon codes
come from the decision key: a retry asks the store for the same code, and "already exists"
counts as success. Retryable failures (429, 5xx, timeouts, throttling, SMTP down) reschedule
the decision with backoff; any other failure marks it failed with the store's message, and the
effects after it (an email that would show a missing coupon) are skipped.
"""
from __future__ import annotations

import logging

from sqlalchemy import select

import connectors
from plugin import mail
from plugin.db import CustomerRow, DecisionRow, EffectRow, UnsubscribeRow
from plugin.engine.referral import referral_code
from plugin.engine.ruleset import for_shop
from plugin.errors import DeliveryError, StoreError
from plugin.events import Event, event_to_dict
from plugin.shops import rules_for

log = logging.getLogger("keepwell.effects")


def run(rt, shop_id: str, key: str) -> str:
    from plugin.pipeline import MAX_EFFECT_ATTEMPTS, retry_decision_later

    with rt.sessions() as session:
        drow = session.scalar(select(DecisionRow).where(DecisionRow.shop_id == shop_id, DecisionRow.key == key))
        if drow is None or drow.status != "pending":
            return drow.status if drow else "missing"
        shop = rt.shop(shop_id)
        if shop is None:
            return "pending"
        effects = session.scalars(select(EffectRow).where(EffectRow.shop_id == shop_id, EffectRow.decision_key == key)
                                  .order_by(EffectRow.id)).all()
        actions = {a["key"]: a for a in drow.decision["actions"]}
        coupon = None
        for eff in effects:
            action = actions[eff.key]
            if eff.status in ("done", "skipped"):
                if eff.type == "coupon":
                    coupon = {**action, "code": eff.coupon_code}
                continue
            try:
                if eff.type == "coupon":
                    result = connectors.get(shop.platform).create_coupon(shop, action)
                    eff.coupon_code, eff.store_id = result.code, result.store_id
                    coupon = {**action, "code": result.code}
                    if result.conflict:  # done under another code: the ledger keeps why
                        log.warning("shop %s: coupon for %s: %s", shop_id, key, result.conflict)
                        eff.status, eff.error = "done", result.conflict
                elif eff.type == "email":
                    eff.status = _email(rt, session, shop, drow, action, coupon, eff)
                elif eff.type == "tag":
                    connectors.get(shop.platform).add_tag(shop, drow.customer_id, action["tag"])
                elif eff.type == "signal" and action.get("customer_id"):
                    signal = Event(id=action["key"], type=action["event"], shop=shop_id,
                                   customer_id=action["customer_id"], occurred_at=rt.clock(), data=action["data"])
                    rt.handoff.push_event(shop_id, event_to_dict(signal))
                # a tier lives in Keepwell's customer state; the store gets the rule's tag action
            except (StoreError, DeliveryError, mail.TemplateError) as exc:
                eff.attempts += 1
                eff.error = message = getattr(exc, "message", str(exc))
                retryable = getattr(exc, "retryable", False)  # a template error waits for a fixed template
                if retryable and eff.attempts < MAX_EFFECT_ATTEMPTS:
                    session.commit()
                    delay = retry_decision_later(rt, shop_id, key, eff.attempts,
                                                 getattr(exc, "retry_after", None))
                    log.warning("shop %s: %s for %s failed (%s); retry in %.0fs", shop_id, eff.type, key, message, delay)
                    return "pending"
                eff.status = "failed"
                drow.status = "failed"
                drow.error = f"{eff.type}: {message}"
                for later in effects:
                    if later.status == "pending" and later is not eff:
                        later.status = "skipped"
                session.commit()
                log.error("shop %s: %s for %s failed for good: %s", shop_id, eff.type, key, message)
                return "failed"
            eff.attempts += 1
            if eff.status == "pending":
                eff.status = "done"
                eff.error = None  # an earlier attempt's failure; a skip keeps its reason
            session.commit()
        drow.status = "done"
        session.commit()
        return "done"


def _email(rt, session, shop, drow, action, coupon, eff) -> str:
    """Send the touch's email; 'done', or 'skipped' when the customer cannot be emailed."""
    if session.get(UnsubscribeRow, (shop.id, drow.customer_id)) is not None:
        eff.error = "customer unsubscribed"
        return "skipped"
    crow = session.get(CustomerRow, (shop.id, drow.customer_id))
    customer = crow.state if crow else {}
    to = customer.get("email") or action.get("to")
    if not to:
        eff.error = "no email address"
        return "skipped"
    ruleset, templates = rules_for(session, shop.id, drow.ruleset_version)  # the version that decided
    token = mail.unsubscribe_token(rt.config.secret_key, shop.id, drow.customer_id)
    unsubscribe_url = f"{rt.config.app_url}/unsubscribe/{token}"
    code = referral_code(for_shop(ruleset, shop.referral_key).settings, shop.id, drow.customer_id)
    referral_link = connectors.get(shop.platform).discount_link(shop, code) if code else None
    shop_info = {"name": shop.settings.get("name") or shop.domain, "url": shop.settings.get("url") or _store_url(shop)}
    context = mail.email_context(customer, coupon, shop_info, unsubscribe_url, referral_link)
    rendered = mail.render(action["template"], action["subject"], context, templates=templates)
    message = mail.build_message(rendered, to, rt.config.mail_from, action["key"], unsubscribe_url)
    eff.message_id = message["Message-ID"]
    session.commit()  # the message id is in the ledger before the send
    mail.send(message, rt.config.smtp_url)
    return "done"


def _store_url(shop) -> str:
    return shop.domain if shop.domain.startswith("http") else f"https://{shop.domain}"

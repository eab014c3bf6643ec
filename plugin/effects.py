"""Running a touch's effects: coupons and tags through the store, emails over SMTP, signals.

Each effect row is marked done as soon as it succeeded, so a retried job skips it. Coupon codes
come from the decision key: a retry asks the store for the same code, and "already exists"
counts as success. Retryable failures (429, 5xx, timeouts, throttling, SMTP down) reschedule
the decision with backoff; any other failure marks it failed with the store's message, and the
effects after it (an email that would show a missing coupon) are skipped.

An effect that raises anything else (a bug, a malformed store answer, data no check foresaw) fails
its touch with the exception as the reason instead of aborting the job: one bad customer must not
stop a drain or the housekeeping tick. Only our own services being down (database, Redis) still
raise, so the job is retried rather than the touch given up. What can be checked before any side
effect is: an email to an address that is not exactly one valid address skips the whole touch.
"""
from __future__ import annotations

import logging

from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError

import connectors
from plugin import mail
from plugin import sender as sending
from plugin.db import CustomerRow, DecisionRow, EffectRow, UnsubscribeRow
from plugin.engine.referral import referral_code
from plugin.engine.ruleset import for_shop
from plugin.errors import DeliveryError, StoreError
from plugin.events import Event, event_to_dict
from plugin.shops import rules_for

log = logging.getLogger("keepwell.effects")
#: Our own services failing: the job is retried, the touch is not given up.
OUTAGES = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError)


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
        refused = _unreachable(session, shop_id, drow, effects, actions)
        if refused is not None:
            return _give_up(session, drow, effects, None, f"email: {refused}", "skipped")
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
                # a template error names its template and line; the others carry the answer itself
                eff.error = message = str(exc) if isinstance(exc, mail.TemplateError) else getattr(exc, "message", str(exc))
                retryable = getattr(exc, "retryable", False)  # a template error waits for a fixed template
                if retryable and eff.attempts < MAX_EFFECT_ATTEMPTS:
                    session.commit()
                    delay = retry_decision_later(rt, shop_id, key, eff.attempts,
                                                 getattr(exc, "retry_after", None))
                    log.warning("shop %s: %s for %s failed (%s); retry in %.0fs", shop_id, eff.type, key, message, delay)
                    return "pending"
                log.error("shop %s: %s for %s failed for good: %s", shop_id, eff.type, key, message)
                return _give_up(session, drow, effects, eff, f"{eff.type}: {message}")
            except OUTAGES:
                raise
            except Exception as exc:
                log.exception("shop %s: %s for %s raised; the touch fails", shop_id, eff.type, key)
                session.rollback()  # whatever the effect left half-done in the session
                eff.attempts += 1
                eff.error = f"{type(exc).__name__}: {exc}"
                return _give_up(session, drow, effects, eff, f"{eff.type}: {eff.error}")
            eff.attempts += 1
            if eff.status == "pending":
                eff.status = "done"
                eff.error = None  # an earlier attempt's failure; a skip keeps its reason
            session.commit()
        drow.status = "done"
        session.commit()
        return "done"


def _give_up(session, drow, effects, eff, reason: str, status: str = "failed") -> str:
    """Fail the touch: ``eff`` (the effect that failed, if any) gets ``status``, every effect
    still pending is skipped, and the decision records ``reason``."""
    if eff is not None:
        eff.status = status
    for other in effects:
        if other.status == "pending":
            other.status = "skipped"
            other.error = other.error or reason
    drow.status = "failed"
    drow.error = reason
    session.commit()
    return "failed"


def _customer(session, shop_id: str, drow, action: dict) -> tuple[dict, str | None]:
    crow = session.get(CustomerRow, (shop_id, drow.customer_id))
    customer = crow.state if crow else {}
    return customer, customer.get("email") or action.get("to")


def _unreachable(session, shop_id: str, drow, effects, actions) -> str | None:
    """Why the touch's pending email could never be sent to the address we hold, or None."""
    for eff in effects:
        if eff.type == "email" and eff.status == "pending":
            _, to = _customer(session, shop_id, drow, actions[eff.key])
            if to:
                try:
                    mail.recipient(to)
                except mail.AddressError as exc:
                    return str(exc)
    return None


def _email(rt, session, shop, drow, action, coupon, eff) -> str:
    """Send the touch's email; 'done', or 'skipped' when the customer cannot be emailed."""
    if session.get(UnsubscribeRow, (shop.id, drow.customer_id)) is not None:
        eff.error = "customer unsubscribed"
        return "skipped"
    customer, to = _customer(session, shop.id, drow, action)
    if not to:
        eff.error = "no email address"
        return "skipped"
    to = mail.recipient(to)
    ruleset, templates = rules_for(session, shop.id, drow.ruleset_version)  # the version that decided
    token = mail.unsubscribe_token(rt.config.secret_key, shop.id, drow.customer_id)
    unsubscribe_url = f"{rt.config.app_url}/unsubscribe/{token}"
    code = referral_code(for_shop(ruleset, shop.referral_key).settings, shop.id, drow.customer_id)
    referral_link = connectors.get(shop.platform).discount_link(shop, code) if code else None
    sender = sending.for_shop(rt, shop, ruleset)
    shop_info = {"name": sender.name, "url": shop.settings.get("url") or _store_url(shop),
                 "postal_address": sender.postal_address}
    context = mail.email_context(customer, coupon, shop_info, unsubscribe_url, referral_link, action.get("occasion"))
    rendered = mail.with_postal_address(mail.render(action["template"], action["subject"], context, templates=templates),
                                        sender.postal_address)
    message = mail.build_message(rendered, to, sender.from_header, action["key"], unsubscribe_url,
                                 reply_to=sender.reply_to)
    eff.message_id = message["Message-ID"]
    session.commit()  # the message id is in the ledger before the send
    mail.send(message, rt.config.smtp_url)
    return "done"


def _store_url(shop) -> str:
    return shop.domain if shop.domain.startswith("http") else f"https://{shop.domain}"

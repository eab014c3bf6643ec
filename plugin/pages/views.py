"""The personal page, ``/p/<token>``: the customer's offers and their answers back.

A GET only shows the page (mail privacy proxies and link scanners fetch links: none of that
counts). The page counts as opened by a small POST its script sends once it has been visible
for a second, or by the customer's first answer. Every form POSTs with a token bound to the
page (CSRF). A token that is not valid for any reason is a plain 404.
"""
from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone

from flask import Blueprint, abort, current_app, redirect, render_template, request
from sqlalchemy import select

from plugin.db import CustomerRow, DecisionRow, PageRow, ShopRow, UnsubscribeRow
from plugin import page_links as links
from plugin.pages import answers, forward
from plugin.pages.offers import offers
from plugin.pages.words import direction, language, words
from plugin.shops import rules_for, to_shop
from plugin.unsubscribe import unsubscribe_email

bp = Blueprint("pages", __name__, template_folder="templates", static_folder="static", static_url_path="/p/static")
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
DEFAULT_BRAND = "#1f4e79"
DONE = ("channel_saved", "occasion_saved", "answered", "forwarded", "unsubscribed")


def _edge():
    return current_app.extensions["keepwell"]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _luminance(hex_color: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def brand_colors(settings: dict) -> tuple[str, str]:
    """The shop's colour (``brand_color`` setting, else a default) and the text colour on it
    that reads best (white or near-black, whichever contrasts more)."""
    brand = settings.get("brand_color") if _HEX.match(str(settings.get("brand_color") or "")) else DEFAULT_BRAND
    lum = _luminance(brand)
    return brand, "#ffffff" if (1.05 / (lum + 0.05)) >= ((lum + 0.05) / (_luminance("#1a1a1a") + 0.05)) else "#1a1a1a"


def _not_found():
    abort(404)


def _load(session, token: str):
    found = links.verify(session, _edge().config.secret_keys, token, _now())
    if found is None:
        _not_found()
    crow = session.get(CustomerRow, (found.page.shop_id, found.page.customer_id))
    if crow is None:  # erased: the page went with the customer
        _not_found()
    return found, crow.state or {}


def _channels(state: dict, unsubscribed: bool) -> list[str]:
    """The channels the customer can be reached on, email first."""
    out = ["email"] if state.get("email") and not unsubscribed else []
    return out + (["sms"] if state.get("sms_phone") and state.get("sms_consent") else [])


def _survey(session, row: PageRow):
    touch = session.scalar(select(DecisionRow).where(DecisionRow.shop_id == row.shop_id, DecisionRow.key == row.touch))
    ruleset, _ = rules_for(session, row.shop_id, touch.ruleset_version if touch else None)
    rule = ruleset.by_id.get(row.rule_id)
    return rule.survey if rule is not None else None


def _mask(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


def _page_context(session, found, state: dict, token: str) -> dict:
    row = found.page
    shop_row = session.get(ShopRow, row.shop_id)
    shop = to_shop(shop_row, _edge().config)
    unsubscribed = session.get(UnsubscribeRow, (row.shop_id, row.customer_id)) is not None
    shown = offers(session, shop, row.customer_id, row.touch, _now())
    profile = shop.settings.get("profile") or {}
    brand, on_brand = brand_colors(shop.settings)
    w = words(state.get("locale"))
    forwarded = row.forwarded_at is not None
    done = request.args.get("done")
    return {
        "w": w, "lang": language(state.get("locale")), "dir": direction(state.get("locale")),
        "shop_name": shop.settings.get("name") or profile.get("name") or shop.domain.split("//")[-1],
        "brand": brand, "on_brand": on_brand, "first_name": state.get("first_name"),
        "offers": shown, "can_forward": bool(shown and state.get("email")) and not forwarded, "forwarded": forwarded,
        "masked_email": _mask(state.get("email") or ""), "survey": _survey(session, row),
        "answered": any(a["type"] == "survey.answered" for a in row.answers or ()),
        "channels": _channels(state, unsubscribed), "preferred": state.get("preferred_channel"),
        "occasions": sorted(state.get("occasions") or (), key=lambda o: o["date"]), "none_occasion": {},
        "unsubscribable": ([] if unsubscribed or not state.get("email") or not state.get("accepts_marketing") else ["email"])
        + (["sms"] if state.get("sms_consent") else []),
        "csrf": links.csrf_token(_edge().config.secret_key, row.nonce), "done": w[done] if done in DONE else None,
        "opened_url": f"/p/{token}/opened", "action": lambda what: f"/p/{token}/{what}",
    }


def _secure(response, style_nonce: str):
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'self' 'nonce-{style_nonce}'; script-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _show(session, found, state: dict, token: str, problem: str | None = None):
    context = _page_context(session, found, state, token)
    context["problem"] = context["w"][problem] if problem else None
    nonce = secrets.token_urlsafe(16)
    return _secure(current_app.make_response(render_template("personal_page.html", style_nonce=nonce, **context)), nonce)


@bp.get("/p/<token>")
def page(token: str):
    with _edge().sessions() as session:
        found, state = _load(session, token)
        return _show(session, found, state, token)


def _answer(what: str, session, found, state: dict):
    """Carry out one answer; the ``done`` word to show."""
    edge, row, now = _edge(), found.page, _now()
    unsubscribed = session.get(UnsubscribeRow, (row.shop_id, row.customer_id)) is not None
    if what == "channel":
        return answers.channel(edge.handoff, row, request.form, _channels(state, unsubscribed), now)
    if what == "occasion":
        known = {o["id"]: o["kind"] for o in state.get("occasions") or ()}
        return answers.occasion(edge.handoff, row, request.form, known, now)
    if what == "survey":
        return answers.survey(edge.handoff, row, request.form, _survey(session, row), now)
    if what == "forward":
        if row.forwarded_at is None:
            row.forwarded_at = now
            session.commit()
            forward.enqueue(edge.handoff.queue, row.shop_id, row.id)
        return "forwarded"
    channel = request.form.get("channel")
    if channel == "email" and state.get("email"):
        answers.record(row, "customer.consent_changed", now, "email: unsubscribe")
        session.commit()  # before the unsubscribe's own transaction (SQLite has one writer at a time)
        unsubscribe_email(edge, row.shop_id, row.customer_id, now)
    elif channel == "sms" and state.get("sms_consent"):
        answers.stop_sms(edge.handoff, row, now)
    else:
        raise answers.AnswerError("bad_channel")
    return "unsubscribed"


@bp.post("/p/<token>/<what>")
def answer(token: str, what: str):
    if what not in ("opened", "channel", "occasion", "survey", "forward", "unsubscribe"):
        _not_found()
    edge = _edge()
    with edge.sessions() as session:
        found, state = _load(session, token)
        row = found.page
        if not links.csrf_ok(edge.config.secret_keys, row.nonce, request.form.get("csrf")):
            abort(403)
        answers.opened(edge.handoff, row, found.channel, _now())  # the first answer is an open too
        if what == "opened":
            session.commit()
            return "", 204
        if len(row.answers or ()) >= answers.MAX_ANSWERS:
            session.commit()
            return _show(session, found, state, token, problem="busy"), 429
        try:
            done = _answer(what, session, found, state)
        except answers.AnswerError as exc:
            session.commit()
            return _show(session, found, state, token, problem=exc.problem), 400
        session.commit()
    return redirect(f"/p/{token}?done={done}", code=303)

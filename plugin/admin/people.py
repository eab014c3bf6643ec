"""How the dashboard speaks of people and moments: a customer by name and email with a link to
their page in the store's admin, rule names instead of ids, times in the shop's time zone,
durations in days, and a decision's status in plain words."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import String, cast, func, or_, select

import connectors

from plugin.db import CustomerRow

REASONS = {
    "consent": "no marketing consent",
    "limit": "already reached (rule's limit)",
    "holdout": "held out to measure lift",
    "priority": "another rule took priority",
    "cap": "too many messages lately (frequency cap)",
    "cancelled": "no longer applied when it came due",
    "self_referral": "referred themselves",
    "quiet_hours": "a text due at night: waits for the morning",
    "conditions": "conditions did not hold",
}
SEARCH_LIMIT = 500


def zone(name: str | None):
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


def local(at: datetime | None, tz) -> datetime | None:
    if at is None:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).astimezone(tz)


def when(at: datetime | None, tz) -> str:
    """'Dec 20, 2026 14:05' in the shop's zone."""
    at = local(at, tz)
    return "-" if at is None else at.strftime("%b %-d, %Y %H:%M")


def day(at: datetime | None, tz) -> str:
    at = local(at, tz)
    return "-" if at is None else at.strftime("%b %-d")


def days(span: timedelta | None) -> str:
    if span is None:
        return "-"
    n = round(span.total_seconds() / 86400, 1)
    n = int(n) if n == int(n) else n
    return f"{n} day" if n == 1 else f"{n} days"


def admin_link(shop: dict, customer_id: str) -> str | None:
    """The customer's page in the store's own admin (its platform knows where), or None."""
    return connectors.get(shop["platform"]).customer_admin_url(shop["domain"], customer_id)


def person(shop: dict, customer_id: str, state: dict | None) -> dict:
    """Name (or the email, or 'Customer <id>' when the store told us neither), email and link."""
    state = state or {}
    name = " ".join(p for p in (state.get("first_name"), state.get("last_name")) if p).strip()
    email = state.get("email") or ""
    return {"id": customer_id, "name": name or email or f"Customer {customer_id}", "email": email if name else "",
            "link": admin_link(shop, customer_id)}


def people(session, shop: dict, customer_ids) -> dict[str, dict]:
    ids = sorted(set(customer_ids))
    states = {}
    for i in range(0, len(ids), 500):
        states.update(session.execute(select(CustomerRow.customer_id, CustomerRow.state).where(
            CustomerRow.shop_id == shop["id"], CustomerRow.customer_id.in_(ids[i:i + 500]))).all())
    return {cid: person(shop, cid, states.get(cid)) for cid in ids}


def search_customers(session, shop_id: str, query: str) -> list[str]:
    """Ids of the shop's customers whose name, email or id contains ``query`` (any case)."""
    q = query.strip().lower()
    if not q:
        return []
    escaped = json.dumps(q)[1:-1]  # how a JSON column holds non-ASCII text (\\u05d3...)
    like = lambda s: "%" + s.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"  # noqa: E731
    text = func.lower(cast(CustomerRow.state, String))
    rows = session.execute(select(CustomerRow.customer_id, CustomerRow.state).where(
        CustomerRow.shop_id == shop_id,
        or_(text.like(like(q), escape="!"), text.like(like(escaped), escape="!"),
            CustomerRow.customer_id == query.strip())).limit(SEARCH_LIMIT * 4)).all()
    out = []
    for cid, state in rows:
        words = " ".join(str(state.get(k) or "") for k in ("first_name", "last_name", "email")).lower()
        if q in words or q in f"{state.get('first_name') or ''} {state.get('last_name') or ''}".lower() \
                or cid == query.strip():
            out.append(cid)
    return out[:SEARCH_LIMIT]


def status_text(kind: str, status: str, reason: str | None, detail: str, error: str | None, has_email: bool,
                tz) -> str:
    """A decision's status as a merchant reads it: 'Sent', 'Skipped: no marketing consent'..."""
    if status == "failed":  # a touch that could not act, or a timer that could not fire
        return f"Failed: {error}" if error else "Failed"
    if kind == "touch":
        return ("Sent" if has_email else "Done") if status == "done" else "Sending"
    if reason == "cap" and "deferred to" in detail:
        at = _deferred_to(detail)
        return f"Waiting until {day(at, tz)}" if at else "Waiting (frequency cap)"
    return "Skipped: " + REASONS.get(reason or "", reason or "no reason given")


def _deferred_to(detail: str) -> datetime | None:
    for word in detail.split("deferred to", 1)[-1].split():
        try:
            return datetime.fromisoformat(word)
        except ValueError:
            continue
    return None

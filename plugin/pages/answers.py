"""What a customer does on their personal page, as canonical events on the shop's backlog.

Each answer is recorded on the page's row (for the dashboard) and pushed as an event the rules
trigger on: ``page.opened``, ``customer.preference_changed``, ``occasion.captured`` (the shape
the checkout capture makes), ``survey.answered``, ``customer.consent_changed`` (an ``sms-stop:``
withdrawal), and for email the unsubscribe path of the one-click link.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import object_session

from plugin import sms_consent
from plugin.db import PageRow
from plugin.engine import occasions as occ
from plugin.engine import survey as surveys
from plugin.errors import KeepwellError
from plugin.events import CHANNELS

#: Answers one page takes; more is someone scripting it, not a customer.
MAX_ANSWERS = 60
KINDS = ("birthday", "anniversary", "wedding", "other")
SMS_STOP_PREFIX = "sms-stop:"


class AnswerError(KeepwellError):
    """A page form sent something that is not an answer; ``problem`` names what, as a key of the
    page's words (plugin/pages/words.py), so the customer reads it in their language."""

    def __init__(self, problem: str):
        self.problem = problem
        super().__init__(problem)


def _event(row: PageRow, kind: str, now: datetime, **extra) -> dict:
    stamp = int(now.timestamp() * 1000)
    return {"id": f"page:{row.nonce}:{kind}:{stamp}:{len(row.answers or ())}", "shop": row.shop_id,
            "customer_id": row.customer_id, "occurred_at": now.isoformat(), **extra}


def record(row: PageRow, kind: str, now: datetime, summary: str) -> None:
    row.answers = [*(row.answers or ()), {"type": kind, "at": now.isoformat(), "summary": summary[:200]}]


def opened(handoff, row: PageRow, channel: str | None, now: datetime) -> bool:
    """Count the first open of the page (later ones change nothing); True when this was it."""
    if row.opened_at is not None:
        return False
    row.opened_at = now
    event = _event(row, "opened", now, type="page.opened", data={"touch": row.touch, "channel": channel})
    event["id"] = f"page:{row.nonce}:opened"
    handoff.push_event(row.shop_id, event)
    return True


def channel(handoff, row: PageRow, form, available: list[str], now: datetime) -> str:
    chosen = form.get("channel")
    if chosen not in CHANNELS or chosen not in available:
        raise AnswerError("bad_channel")
    handoff.push_event(row.shop_id, _event(row, "channel", now, type="customer.preference_changed",
                                           data={"preferred_channel": chosen}))
    record(row, "customer.preference_changed", now, chosen)
    return "channel_saved"


def occasion(handoff, row: PageRow, form, known: dict[str, str], now: datetime) -> str:
    """A new occasion, or an edit of one the customer has (``known``: id -> kind; same id: the
    fold replaces it). The kinds are the page's, or the one an edited occasion already has."""
    given_id = (form.get("occasion_id") or "").strip()
    if given_id and given_id not in known:
        raise AnswerError("bad_occasion")
    kind = form.get("kind") if form.get("kind") in (*KINDS, known.get(given_id)) else None
    day = occ.parse_day((form.get("date") or "").strip(), now) if form.get("date") else None
    if kind is None or day is None:
        raise AnswerError("bad_date")
    recipient = " ".join((form.get("recipient") or "").split())[:80] or None
    occasion_id = given_id or f"page-{row.nonce[:8]}-{int(now.timestamp() * 1000)}"
    data = {"occasion_id": occasion_id, "kind": kind, "date": day.isoformat(), "recipient": recipient,
            "remind": form.get("remind") == "yes", "captured_at": now.isoformat()}
    event = _event(row, "occasion", now, type="occasion.captured", data=data)
    handoff.push_event(row.shop_id, event)
    record(row, "occasion.captured", now, f"{kind} {day.isoformat()}")
    return "occasion_saved"


def survey(handoff, row: PageRow, form, asked: surveys.Survey | None, now: datetime) -> str:
    if asked is None:
        raise AnswerError("bad_answer")
    if any(a["type"] == "survey.answered" for a in row.answers or ()):
        return "answered"  # one answer per page: a second submit (back button) changes nothing
    answer = surveys.answer(asked, form.get("answer"))
    if answer is None:
        raise AnswerError("bad_choice" if asked.choices else "bad_answer")
    handoff.push_event(row.shop_id, _event(row, "survey", now, type="survey.answered", data={
        "question": asked.id, "answer": answer, "touch": row.touch, "rule": row.rule_id}))
    record(row, "survey.answered", now, f"{asked.id}: {answer}")
    return "answered"


def stop_sms(handoff, row: PageRow, now: datetime) -> None:
    """Withdraw SMS consent the way every Keepwell-originated withdrawal does (``sms-stop:``)."""
    event = _event(row, "sms", now, type="customer.consent_changed",
                   customer={"id": row.customer_id, "sms_consent": False})
    event["id"] = f"{SMS_STOP_PREFIX}page:{row.nonce}:{int(now.timestamp())}"
    # at once, as a texted STOP: a text about to go out checks it before its event is folded
    sms_consent.record(object_session(row), row.shop_id, row.customer_id, False, now, "page")
    handoff.push_event(row.shop_id, event)
    record(row, "customer.consent_changed", now, "sms: stop")

"""What customers did on their personal pages, for the dashboard and ``explain``: per rule (pages
linked, opened, answered) and per touch (when it was opened, each answer)."""
from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from plugin.db import PageRow

#: How an answer's type reads in the dashboard.
ANSWER_WORDS = {"customer.preference_changed": "preferred channel", "occasion.captured": "occasion",
                "survey.answered": "survey", "customer.consent_changed": "unsubscribed",
                "offer.forwarded": "offer forwarded to email"}


def by_rule(session, shop_id: str) -> dict[str, dict]:
    """rule id -> {"pages", "opened", "answered", "answers": Counter of answer words}."""
    out: dict[str, dict] = {}
    for rule_id, opened_at, answers in session.execute(
            select(PageRow.rule_id, PageRow.opened_at, PageRow.answers).where(PageRow.shop_id == shop_id)):
        row = out.setdefault(rule_id, {"pages": 0, "opened": 0, "answered": 0, "answers": Counter()})
        row["pages"] += 1
        row["opened"] += opened_at is not None
        row["answered"] += bool(answers)
        row["answers"].update(ANSWER_WORDS.get(a.get("type"), a.get("type")) for a in answers or ())
    return out


def summary(row: PageRow | None) -> str:
    """One touch's page in a few words: "not opened", "opened", "opened, 2 answers"."""
    if row is None:
        return ""
    n = len(row.answers or ())
    seen = "opened" if row.opened_at is not None else "not opened"
    return f"{seen}, {n} answer{'s' if n != 1 else ''}" if n else seen


def lines(row: PageRow) -> list[str]:
    """The page of one touch: when it was opened, then each answer, oldest first."""
    out = [f"personal page opened {row.opened_at.isoformat(timespec='seconds')}" if row.opened_at
           else "personal page not opened yet"]
    for a in row.answers or ():
        out.append(f"{a.get('at', '')[:19].replace('T', ' ')}: {ANSWER_WORDS.get(a.get('type'), a.get('type'))}"
                   f"{': ' + a['summary'] if a.get('summary') else ''}")
    return out


def for_touches(session, shop_id: str, keys: list[str]) -> dict[str, PageRow]:
    """touch key -> its page, for the touches that have one."""
    if not keys:
        return {}
    return {p.touch: p for p in session.scalars(select(PageRow).where(PageRow.shop_id == shop_id,
                                                                      PageRow.touch.in_(keys)))}

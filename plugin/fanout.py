"""The live fan-out of dated and yearly rules (``trigger: {date: ...}`` / ``{yearly: ...}``).

When an occurrence comes (in the shop's time zone), every customer of the shop gets one timer
(``plugin.engine.decide.moment_timer``) at their send slot in the rule's window; the timers go
the way of every timer (the tick's sweep puts them on the shop's backlog as they come due), so
a large segment reaches the store API a slice at a time, and the engine decides each one like
any timer: conditions, limits, consent, priority, holdout, the frequency cap.

Exactly once per customer per occurrence, whatever restarts: the timer's key is the same every
time (an existing row is left alone), its event is seen once, and the touch's ledger key names
the occurrence. The fan-out walks the customers in id order and keeps its cursor in Redis, so a
fan-out cut off half-way resumes where it stopped (or, with Redis lost, walks again and finds
the first half's timers already there).
"""
from __future__ import annotations

import logging
from datetime import timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from redis.exceptions import LockError
from sqlalchemy import select

from plugin.db import CustomerRow, ShopRow, TimerRow
from plugin.engine.decide import moment_timer
from plugin.engine.moments import LATE_BY, occurrences
from plugin.engine.ruleset import Rule
from plugin.errors import RuleError
from plugin.events import event_to_dict
from plugin.shops import rules_for

log = logging.getLogger("keepwell.moments")

BATCH = 500  # customers per transaction
LOCK_S = 120  # a fan-out that stops extending its lock for this long has died: another takes over
REMEMBER = timedelta(days=400)  # an occurrence's done mark outlives its late limit


def shop_zone(settings: dict | None) -> tzinfo:
    """The shop's time zone: its own setting, else the one its store reported; UTC when unknown."""
    settings = settings or {}
    name = settings.get("timezone") or (settings.get("profile") or {}).get("timezone") or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("unknown time zone %r: dated rules run on UTC", name)
        return timezone.utc


def _mark(rt, shop_id: str, rule_id: str, label: str) -> str:
    return f"{rt.config.queue}:{{{shop_id}}}:moment:{rule_id}:{label}"


def due(rt, shop_id: str) -> list[tuple[Rule, str, object, str]]:
    """(rule, occurrence label, its time in UTC, rule set version) of the shop's occurrences
    whose fan-out is due and not done: from the moment until the end of the window plus LATE_BY."""
    now = rt.clock()
    with rt.sessions() as session:
        row = session.get(ShopRow, shop_id)
        if row is None or not row.active:
            return []
        try:
            ruleset, _ = rules_for(session, shop_id)
        except RuleError:
            return []  # no rule set (yet): nothing is dated
        tz = shop_zone(row.settings)
    out = []
    for rule in ruleset.moment_rules:
        moment = rule.trigger.moment
        assert moment is not None
        for label, at in occurrences(moment, tz, now - moment.window - LATE_BY, now):
            if not rt.redis.exists(_mark(rt, shop_id, rule.id, label) + ":done"):
                out.append((rule, label, at, ruleset.version))
    return out


def fan_out(rt, shop_id: str) -> int:
    """Give every customer their timer for each due occurrence of the shop; the timers made."""
    return sum(_fan_out(rt, shop_id, *occurrence) for occurrence in due(rt, shop_id))


def _fan_out(rt, shop_id: str, rule: Rule, label: str, at, version: str) -> int:
    mark = _mark(rt, shop_id, rule.id, label)
    lock = rt.redis.lock(mark + ":lock", timeout=LOCK_S, blocking=False)
    if not lock.acquire():
        return 0  # another worker is at it
    made = 0
    try:
        cursor = (rt.redis.get(mark + ":cursor") or b"").decode()
        while True:
            with rt.sessions.begin() as session:
                ids = session.scalars(select(CustomerRow.customer_id).where(
                    CustomerRow.shop_id == shop_id, CustomerRow.customer_id > cursor)
                    .order_by(CustomerRow.customer_id).limit(BATCH)).all()
                if not ids:
                    break
                timers = {t.id: t for t in (moment_timer(shop_id, rule, cid, label, at, version) for cid in ids)}
                have = set(session.scalars(select(TimerRow.key).where(
                    TimerRow.shop_id == shop_id, TimerRow.key.in_(list(timers)))))
                for key, t in timers.items():
                    if key not in have:
                        session.add(TimerRow(shop_id=shop_id, key=key, customer_id=t.customer_id,
                                             wake_at=t.occurred_at, event=event_to_dict(t)))
                        made += 1
            cursor = ids[-1]
            rt.redis.set(mark + ":cursor", cursor, ex=int(REMEMBER.total_seconds()))
            lock.extend(LOCK_S, replace_ttl=True)
        rt.redis.set(mark + ":done", "1", ex=int(REMEMBER.total_seconds()))
        log.info("shop %s: %s at %s: %d customers' timers set", shop_id, rule.id, label, made)
    finally:
        try:
            lock.release()
        except LockError:
            pass  # it expired meanwhile: the next fan-out resumes from the cursor
    return made


__all__ = ["fan_out", "due", "shop_zone", "BATCH"]

"""Moments the merchant chooses: a dated (``{date: 2027-06-01T09:00}``) or yearly
(``{yearly: 06-01}``) trigger.

At each occurrence, in the shop's time zone, every customer is considered once: each gets one
timer (``plugin.engine.decide.moment_timer``) at a send slot spread over the rule's window, and the engine decides it
like any timer, through conditions, limits, consent, priority, holdout and the frequency cap.
The anchor names the occurrence, so a customer is touched at most once per occurrence however
often the fan-out runs. Pure: the shell passes the time zone and the clock.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Callable

from plugin.engine.values import parse_duration


#: When a moment goes out unless the rule says (local time of the shop).
DEFAULT_TIME = time(9, 0)
#: How long a moment's customers are spread over unless the rule says (``window: 4h``).
DEFAULT_WINDOW = timedelta(hours=2)
#: A window may last at most this: a moment is one day's message.
MAX_WINDOW = timedelta(days=1)
#: An occurrence Keepwell could not start by the end of its window plus this (the workers were
#: down, the rule was published later) is skipped: "summer is coming" a week late is wrong.
LATE_BY = timedelta(days=1)

_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}))?")
_YEARLY = re.compile(r"(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}))?")


@dataclass(frozen=True)
class Moment:
    """When a dated or yearly trigger fires: ``on`` (a date, once) or ``month``/``day`` (every
    year, 29 February on the 28th in common years), at ``at`` local time, spread over ``window``."""

    at: time = DEFAULT_TIME
    on: date | None = None
    month: int = 0
    day: int = 0
    window: timedelta = DEFAULT_WINDOW

    def local(self, year: int) -> datetime:
        """This moment's local (naive) time in ``year``; a dated moment ignores the year."""
        if self.on is not None:
            return datetime.combine(self.on, self.at)
        day = self.day if (self.month, self.day) != (2, 29) or _leap(year) else 28
        return datetime.combine(date(year, self.month, day), self.at)

    def describe(self) -> str:
        when = self.on.isoformat() if self.on is not None else f"every {self.month:02d}-{self.day:02d}"
        return f"{when} at {self.at.strftime('%H:%M')}"


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _clock(hh: str | None, mm: str | None) -> time:
    if hh is None or mm is None:
        return DEFAULT_TIME
    if int(hh) > 23 or int(mm) > 59:
        raise ValueError(f"{hh}:{mm} is not a time of day: write 00:00 to 23:59")
    return time(int(hh), int(mm))


def parse_date(value: object) -> Moment:
    """``2027-06-01`` or ``2027-06-01T09:00`` (YAML may already have made it a date or datetime);
    ValueError with a hint otherwise."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            raise ValueError("write the moment without a time zone: it is the shop's local time")
        return Moment(at=value.time().replace(second=0, microsecond=0), on=value.date())
    if isinstance(value, date):
        return Moment(on=value)
    m = _DATE.fullmatch(str(value).strip())
    if not m:
        raise ValueError(f"bad date {value!r}: write e.g. 2027-06-01T09:00 (the shop's local time) or 2027-06-01")
    try:
        day = date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise ValueError(f"{m[1]}-{m[2]}-{m[3]} is not a day of the calendar") from None
    return Moment(at=_clock(m[4], m[5]), on=day)


def parse_yearly(value: object) -> Moment:
    """``06-01`` or ``06-01T09:00`` (month-day); ValueError with a hint otherwise."""
    m = _YEARLY.fullmatch(str(value).strip())
    if not m:
        raise ValueError(f"bad yearly date {value!r}: write month-day in quotes, e.g. '06-01' or '06-01T09:00'")
    month, day = int(m[1]), int(m[2])
    try:
        date(2000, month, day)  # a leap year: 02-29 is a day of the calendar
    except ValueError:
        raise ValueError(f"{m[1]}-{m[2]} is not a day of the year (month-day, e.g. 06-01)") from None
    return Moment(at=_clock(m[3], m[4]), month=month, day=day)


Report = Callable[[tuple[Any, ...], str], None]  # (path, message): a lint problem


def parse_moment(trigger: dict[str, Any], path: tuple[Any, ...], report: Report) -> Moment | None:
    """The Moment of ``{date: ...}`` or ``{yearly: ...}``; None (reported) when it is malformed."""
    kind = "date" if "date" in trigger else "yearly"
    try:
        return parse_date(trigger[kind]) if kind == "date" else parse_yearly(trigger[kind])
    except ValueError as exc:
        report(path + (kind,), str(exc))
        return None


def with_window(moment: Moment, value: object, path: tuple[Any, ...], report: Report) -> Moment | None:
    """``moment`` spread over the rule's ``window: 4h``; None (reported) when it is malformed."""
    try:
        window = parse_duration(value)
    except ValueError as exc:
        report(path, f"window: {exc}")
        return None
    if window <= timedelta(0) or window > MAX_WINDOW:
        report(path, "window must be longer than zero and at most 1d: a moment is spread over a day at most")
        return None
    return replace(moment, window=window)


def occurrences(moment: Moment, tz: tzinfo, after: datetime, until: datetime) -> list[tuple[str, datetime]]:
    """(label, time in UTC) of each occurrence with ``after < time <= until``, oldest first. The
    label is the local time, e.g. ``2027-06-01T09:00``: it names the occurrence in the anchor."""
    first, last = after.astimezone(tz).year - 1, until.astimezone(tz).year + 1
    out = []
    for year in ([0] if moment.on is not None else range(first, last + 1)):
        local = moment.local(year)
        at = local.replace(tzinfo=tz).astimezone(timezone.utc)
        if after < at <= until:
            out.append((local.isoformat(timespec="minutes"), at))
    return out


__all__ = ["Moment", "parse_date", "parse_yearly", "parse_moment", "with_window", "occurrences", "DEFAULT_TIME", "DEFAULT_WINDOW", "MAX_WINDOW", "LATE_BY"]

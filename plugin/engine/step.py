"""``step(event, state, rules, now, recorded) -> Outcome``: the whole decision and ledger policy.

The live worker and ``simulate`` both call this one function, so a simulation runs exactly the
policy production runs: which decisions become ledger rows, how a touch the frequency cap
deferred is decided again, which consent wins, and when a timer that fired before its time (or
was deferred again to its own moment) is armed again or failed. Pure like ``decide``: what the
ledger and the timers table already hold comes in as ``recorded``; what to write goes out as
plain data in the ``Outcome``. Actions are passed through untouched.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Mapping, NamedTuple

from plugin.engine.decide import decide, decision_key
from plugin.engine.decisions import Decision, Kind, Reason
from plugin.engine.ruleset import RuleSet
from plugin.engine.state import CustomerState, apply, new_state, record
from plugin.events import Event, parse_time

#: An early timer comes back within a second or two of clock skew; this many attempts without
#: acting means something else is wrong (a clock far off, a deferral that never frees).
MAX_TIMER_ATTEMPTS = 10

#: The id prefix of the consent event our one-click unsubscribe sends (plugin.unsubscribe).
UNSUBSCRIBE_PREFIX = "unsubscribe:"

_CAP = Reason.CAP.value
#: Deferrals: the touch is decided again when its timer fires (the cap frees a slot, or the
#: customer's morning comes for a text due at night).
_DEFERRALS = frozenset({_CAP, Reason.QUIET_HOURS.value})
#: A touch deferred, or one whose re-check stood it down (a lapse counted from an order that
#: turned out not to be the last), may still go out when it is decided again as a touch.
_MAY_STILL_GO = _DEFERRALS | {Reason.CANCELLED.value}
_SUPPRESSED = Kind.SUPPRESSED.value


class Entry(NamedTuple):
    """What the ledger holds for a decision key."""

    kind: str  # touch | suppressed
    reason: str | None
    status: str  # pending | done | failed | suppressed


class TimerEntry(NamedTuple):
    """What the timers table holds for a timer id."""

    wake_at: datetime
    attempts: int = 0
    status: str = "pending"  # pending | fired | failed


@dataclass(frozen=True)
class Recorded:
    """What is already stored about the event's customer: ledger entries by decision key,
    timers by id, whether they used our one-click unsubscribe, and the store's consent when
    it was looked up before their first decision."""

    ledger: Mapping[str, Entry] = field(default_factory=dict)
    timers: Mapping[str, TimerEntry] = field(default_factory=dict)
    unsubscribed: bool = False
    store_consent: bool | None = None
    store_consent_at: datetime | None = None
    store_sms_consent: bool | None = None  # the store's SMS consent, looked up likewise
    store_sms_consent_at: datetime | None = None
    store_phone: str | None = None


class Write(NamedTuple):
    """A ledger row to write; ``replaces``: it takes the place of the key's row (a deferred touch going out)."""

    decision: Decision
    status: str  # pending (a touch to run) | suppressed | failed
    error: str | None = None
    replaces: bool = False


class Amend(NamedTuple):
    """Fields of the key's existing ledger row to change (None: unchanged)."""

    key: str
    detail: str | None = None
    status: str | None = None
    error: str | None = None


class TimerWrite(NamedTuple):
    """A timer to create (``event`` given) or to update; ``status`` pending: schedule it at ``wake_at``."""

    id: str
    customer_id: str
    wake_at: datetime
    attempts: int = 0
    status: str = "pending"
    error: str | None = None
    event: Event | None = None


class Outcome(NamedTuple):
    """What one event changes. ``state`` None: nothing was decided (a timer fired early)."""

    state: CustomerState | None
    ledger: tuple[Write | Amend, ...] = ()  # in order
    timers: tuple[TimerWrite, ...] = ()  # in order
    touches: tuple[Decision, ...] = ()  # the touch Decisions to run, in order
    decisions: tuple[Decision, ...] = ()  # everything ``decide`` returned (reports, explanations)
    seen: bool = True  # the event is decided for good; False: it is to be decided again when it fires


def is_unsubscribe(event: Event) -> bool:
    """The customer used our one-click unsubscribe (it outranks any later opt-in)."""
    return event.type == "customer.consent_changed" and event.id.startswith(UNSUBSCRIBE_PREFIX)


def due(wake_at: datetime, now: datetime) -> bool:
    """The one rule for every path (the scheduler, the tick's sweep, the worker, simulate): due at its time, not before."""
    return wake_at <= now


def timer_order(wake_at: datetime, origin_at: datetime | None, timer_id: str) -> tuple[datetime, datetime, str]:
    """The order timers due together fire in: by time; a tie (deferrals to the same free slot) by
    when the deferred touch was due, then by id."""
    return wake_at, origin_at or wake_at, timer_id


def origin_time(data: dict[str, Any]) -> datetime | None:
    """When the event a delayed or deferred timer re-checks happened (its data's ``event``)."""
    origin = data.get("event")
    if isinstance(origin, Event):
        return origin.occurred_at
    return parse_time((origin or {}).get("occurred_at")) if origin else None


def step(event: Event, state: CustomerState | None, rules: RuleSet, now: datetime, recorded: Recorded) -> Outcome:
    """Fold ``event`` into ``state`` (None: a customer not seen before), decide, and say what to record."""
    own = recorded.timers.get(event.id) if event.type == "timer" else None
    if own is not None and not due(own.wake_at, now):
        return _early(event, own, now, recorded)
    state = state if state is not None else new_state(event.shop, event.customer_id)
    if recorded.store_consent is not None and state.consent_at is None:
        # what the store had before this event; the event's own consent, if newer, still wins
        state = replace(state, accepts_marketing=recorded.store_consent, consent_at=recorded.store_consent_at)
    if recorded.store_sms_consent is not None and state.sms_consent_at is None:
        state = replace(state, sms_consent=recorded.store_sms_consent, sms_consent_at=recorded.store_sms_consent_at,
                        sms_phone=state.sms_phone or recorded.store_phone)
    state = apply(state, event, rules.settings)
    if state.accepts_marketing and recorded.unsubscribed:
        # Our one-click unsubscribe outranks an opt-in the store still reports (a checkout
        # box, a stale meta value): effects never email this customer again, so no rule may
        # issue them coupons or count touches as if it could.
        state = replace(state, accepts_marketing=False)
    decisions = decide(event, state, rules, now)
    if not decisions:
        return Outcome(state)
    book = _Book(recorded)
    touches, seen = [], True
    for d in decisions:
        if d.kind == Kind.SCHEDULED:
            seen = _schedule(d, event, book) and seen
            continue
        if d.reason == Reason.CONDITIONS:
            continue  # the rule simply did not apply: not a touch anyone wanted
        existing = book.entry(d.key)
        if existing is not None and (d.kind == Kind.SUPPRESSED or existing.reason not in _MAY_STILL_GO):
            if d.reason in _DEFERRALS and existing.reason in _DEFERRALS and existing.status == "suppressed":
                book.ledger.append(Amend(d.key, detail=d.detail))  # deferred again: the ledger says to when
            continue  # decided before; only a touch deferred or stood down may still go out
        if d.kind == Kind.TOUCH:
            state = record(state, d)
            book.write(Write(d, "pending", replaces=existing is not None))  # e.g. a deferred touch, capped first
            touches.append(d)
        else:
            book.write(Write(d, "suppressed"))
    return Outcome(state, tuple(book.ledger), tuple(book.timers), tuple(touches), tuple(decisions), seen)


class _Book:
    """The ledger and timers as ``recorded`` holds them plus what this step writes."""

    __slots__ = ("recorded", "ledger", "timers", "written", "timer_ids")

    def __init__(self, recorded: Recorded):
        self.recorded = recorded
        self.ledger: list[Write | Amend] = []
        self.timers: list[TimerWrite] = []
        self.written: dict[str, Entry] = {}
        self.timer_ids: set[str] = set()

    def entry(self, key: str) -> Entry | None:
        found = self.written.get(key)
        return found if found is not None else self.recorded.ledger.get(key)

    def write(self, w: Write) -> None:
        self.ledger.append(w)
        d = w.decision
        self.written[d.key] = Entry(d.kind.value if isinstance(d.kind, Kind) else d.kind,
                                    d.reason.value if isinstance(d.reason, Reason) else d.reason, w.status)

    def fail(self, d: Decision, why: str) -> None:
        """A touch whose timer will not fire again: the ledger says so, and why. A touch already
        decided (made, or suppressed for good) stays as it is; one the cap deferred is failed."""
        existing = self.entry(d.key)
        if existing is None:
            self.write(Write(d._replace(kind=Kind.SUPPRESSED, detail=why), "failed", error=why))
        elif existing.kind == _SUPPRESSED and existing.reason in _DEFERRALS:
            self.ledger.append(Amend(d.key, status="failed", error=why))
            self.written[d.key] = existing._replace(status="failed")


def _schedule(d: Decision, event: Event, book: _Book) -> bool:
    """Record a scheduled decision's timer; False when it is the event's own timer, armed again."""
    assert d.timer is not None and d.wake_at is not None  # a scheduled decision carries both
    tid = d.timer.id
    if tid in book.timer_ids:
        return True
    own = book.recorded.timers.get(tid)
    if own is None:
        book.timer_ids.add(tid)
        book.timers.append(TimerWrite(tid, d.customer_id, d.wake_at, event=d.timer))
        return True
    if tid != event.id:
        return True  # set before (a delay is set once per touch, however often its trigger comes)
    # this timer, deferred again to its own moment: not yet its time
    again = _arm_again(tid, event.customer_id, own, f"deferred again to its own time {d.wake_at.isoformat()}", d.wake_at)
    book.timer_ids.add(tid)
    book.timers.append(again)
    if again.status == "failed":
        book.fail(d, why_failed(again))
        return True
    return False  # its event must be decided again when it fires


def why_failed(t: TimerWrite) -> str:
    """Why a timer was failed (its error; every failed TimerWrite carries one)."""
    return t.error or f"timer {t.id} failed"


def _arm_again(tid: str, customer_id: str, own: TimerEntry, why: str, at: datetime) -> TimerWrite:
    """A fired timer pending again with one more attempt, or failed when it has used its attempts."""
    if own.attempts >= MAX_TIMER_ATTEMPTS:
        return TimerWrite(tid, customer_id, at, own.attempts, "failed",
                          f"{why}; not armed again after {own.attempts} attempts")
    return TimerWrite(tid, customer_id, at, own.attempts + 1, "pending", why)


def _early(event: Event, own: TimerEntry, now: datetime, recorded: Recorded) -> Outcome:
    """A timer fired before its time decides nothing: it is armed again, or failed."""
    early = own.wake_at - now
    why = f"fired {early.total_seconds():.3f} s before its time"
    # Whoever fired it had reached wake_at on their clock, so ours is at least `early` behind
    # theirs: waiting twice as long each attempt gets past any steady skew.
    again = _arm_again(event.id, event.customer_id, own, why, own.wake_at + early * 2 ** (own.attempts + 1))
    book = _Book(recorded)
    book.timers.append(again)
    if again.status == "failed":
        book.fail(timer_decision(event, now), why_failed(again))
    return Outcome(None, tuple(book.ledger), tuple(book.timers), seen=False)


def timer_decision(timer: Event, now: datetime) -> Decision:
    """The touch a timer was for, as a suppressed decision (to record that it failed)."""
    data = timer.data
    return Decision(kind=Kind.SUPPRESSED, key=decision_key(timer.shop, data["rule"], timer.customer_id, data["anchor"]),
                    shop=timer.shop, rule_id=data["rule"], customer_id=timer.customer_id, at=now, event_id=timer.id,
                    reason=data["kind"], ruleset_version=data.get("version", ""))


__all__ = ["step", "Outcome", "Recorded", "Entry", "TimerEntry", "Write", "Amend", "TimerWrite", "due", "timer_order",
           "origin_time", "timer_decision", "is_unsubscribe", "MAX_TIMER_ATTEMPTS", "UNSUBSCRIBE_PREFIX"]

"""Replay a store's history through a rule set with a virtual clock.

The simulator is the imperative shell around the pure engine, like the live worker, but its
clock is the history's own: delays, lapse timers and return windows fire in virtual time.
Each event goes through the engine's ``step``, the same decision and ledger policy the worker
runs; the simulator keeps what the worker's ledger and timers table would hold.
"""
from __future__ import annotations

import gc
import heapq
import itertools
import json
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from decimal import Decimal
from typing import Callable, Iterable, Iterator

from plugin.engine import Kind, Reason, RuleSet, occasions
from plugin.engine.actions import Coupon, Email, Signal, Sms
from plugin.moments import Moments
from plugin.engine.step import Amend, Entry, Outcome, Recorded, TimerEntry, due, is_unsubscribe, origin_time, step
from plugin.events import Event, event_from_dict
from plugin.simulate_store import Hashes, PackedStates

_INITIAL_TIMERS = {Reason.LAPSE.value, Reason.OCCASION.value, Reason.MOMENT.value}
_REASON = {r: r.value for r in Reason}
_VALUE = {**_REASON, **{k: k.value for k in Kind}}


def _count_coupon(r, a: Coupon) -> None:
    r.coupons += 1
    if a.discount_type == "percent":
        r.percent_coupons += 1
        r.percent_total += a.value
    else:
        r.face_value[a.currency] += a.value


def _count_email(r, a: Email) -> None:
    r.emails += 1


def _count_sms(r, a: Sms) -> None:
    r.texts += 1


#: action type -> how a touch's action of that type counts in its rule's report
_COUNTED = {Coupon.type: _count_coupon, Email.type: _count_email, Sms.type: _count_sms}


@dataclass
class RuleReport:
    rule_id: str
    triggered: int = 0
    touches: int = 0
    suppressed: Counter = field(default_factory=Counter)
    coupons: int = 0
    face_value: Counter = field(default_factory=Counter)  # currency -> sum of fixed-amount coupons
    percent_coupons: int = 0
    percent_total: Decimal = Decimal(0)
    emails: int = 0
    texts: int = 0
    segments: int = 0  # of the texts, rendered for each customer (simulated with templates)
    sms_cost: Decimal = Decimal(0)  # ... at the shop's price per segment
    customers: Hashes = field(default_factory=Hashes)  # hashes of (shop, customer id) reached
    render_failures: int = 0  # emails and texts that could not be rendered (simulated with templates)
    variants: dict = field(default_factory=dict)  # A/B variant name -> its own RuleReport

    def variant(self, name: str) -> "RuleReport":
        v = self.variants.get(name)
        if v is None:
            v = self.variants[name] = RuleReport(f"{self.rule_id}:{name}")
        return v

    def to_dict(self) -> dict:
        out = {
            "triggered": self.triggered,
            "touches": self.touches,
            "suppressed": dict(sorted(self.suppressed.items())),
            "coupons": self.coupons,
            "face_value": {k: str(v) for k, v in sorted(self.face_value.items())},
            "percent_coupons": self.percent_coupons,
            "average_percent": str(round(self.percent_total / self.percent_coupons, 1)) if self.percent_coupons else None,
            "emails": self.emails,
            "texts": self.texts,
            "segments": self.segments,
            "sms_cost": str(self.sms_cost),
            "customers_reached": len(self.customers),
            "render_failures": self.render_failures,
        }
        if self.variants:
            keep = ("touches", "coupons", "face_value", "percent_coupons", "average_percent", "emails", "texts",
                    "segments", "sms_cost", "customers_reached", "render_failures")
            out["variants"] = {name: {k: v.to_dict()[k] for k in keep} for name, v in sorted(self.variants.items())}
        return out


@dataclass
class Report:
    events: int = 0
    duplicate_events: int = 0
    duplicates: int = 0
    timers_fired: int = 0
    timers_pending: int = 0
    customers: int = 0
    start: datetime | None = None
    end: datetime | None = None
    rules: dict = field(default_factory=dict)
    ledger: dict = field(default_factory=dict)  # decision key -> touch Decision (unless not kept)
    render_errors: dict = field(default_factory=dict)  # (rule id, error) -> [count, first customer]
    sms_currency: str = "USD"  # the texts' cost is in it (the shop's price per segment)

    def rule(self, rule_id: str) -> RuleReport:
        r = self.rules.get(rule_id)
        if r is None:
            r = self.rules[rule_id] = RuleReport(rule_id)
        return r

    def overlaps(self) -> dict[str, int]:
        """Customers touched by both rules of each pair."""
        out = {}
        touched = [(rid, r.customers) for rid, r in sorted(self.rules.items()) if len(r.customers)]
        for (a, ca), (b, cb) in itertools.combinations(touched, 2):
            n = ca.common(cb)
            if n:
                out[f"{a} & {b}"] = n
        return out

    def to_dict(self) -> dict:
        return {
            "events": self.events,
            "duplicate_events_ignored": self.duplicate_events,
            "duplicate_touches_ignored": self.duplicates,
            "timers_fired": self.timers_fired,
            "timers_pending": self.timers_pending,
            "customers": self.customers,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "sms_currency": self.sms_currency,
            "rules": {rid: r.to_dict() for rid, r in sorted(self.rules.items())},
            "overlaps": self.overlaps(),
            "render_failures": [{"rule": rule_id, "error": error, "emails": n, "first_customer": customer}
                                for (rule_id, error), (n, customer) in sorted(self.render_errors.items())],
        }


class _Ledger:
    """What the simulated ledger holds for a decision key, and which timers were ever set (as the
    worker's ledger and timers table keep them). Keys are kept as hashes, each with the code of
    its entry: memory stays small (one flat table)."""

    __slots__ = ("entries", "own_id", "own")

    def __init__(self) -> None:
        self.entries = Hashes()  # hash of a decision key or timer id -> code of its _CODED entry
        self.own_id: str | None = None  # the timer firing now
        self.own: TimerEntry | None = None

    def get(self, key: str) -> Entry | None:
        found = _CODED[self.entries.get(hash(key))]
        return found if found is not _SET_BEFORE else None


class _Timers:
    """The timers table, as ``step`` reads it."""

    __slots__ = ("ledger",)

    def __init__(self, ledger: _Ledger):
        self.ledger = ledger

    def get(self, key: str) -> TimerEntry | None:
        if key == self.ledger.own_id:
            return self.ledger.own
        return _SET_BEFORE if self.ledger.entries.get(hash(key)) == _SET_BEFORE_CODE else None


_SET_BEFORE = TimerEntry(datetime.min, 0, "fired")
_TOUCHED = Entry("touch", None, "pending")
_CODED: list = [None, _SET_BEFORE, _TOUCHED]  # code -> entry; one code per (kind, reason, status)
_SET_BEFORE_CODE, _TOUCHED_CODE = 1, 2
_CODES: dict[Entry, int] = {}


class Simulator:
    """Feed time-ordered events; timers fire in virtual time between them. Each event goes
    through the engine's ``step``, the policy the live worker runs."""

    def __init__(self, rules: RuleSet, on_outcome: Callable[[Event, Outcome], None] | None = None,
                 render: Callable | None = None, tz: tzinfo = timezone.utc, states=None, keep_ledger: bool = True):
        """``on_outcome``: called with each event (timers included) and what ``step`` made of it;
        ``render``: (decision, email or sms action, state) -> why it cannot render, or for an
        email None and for a text its segments (plugin.mail.preview.touch_renderer);
        ``tz``: the shop's time zone, in which dated and yearly rules fire;
        ``states``: where customer states are kept (default a dict; ``PackedStates`` for big stores);
        ``keep_ledger``: keep every touch Decision in ``report.ledger`` (False: only counted)."""
        self.rules = rules
        self.moments = Moments(rules, tz)
        self.on_outcome = on_outcome
        self.render = render
        self.states = states if states is not None else {}
        self.timers: list = []  # heap of (wake_at, origin time, timer id, attempts, timer event)
        self.seen = Hashes()  # hashes of (shop, event id) delivered
        self.unsubscribed: set[int] = set()  # hashes of (shop, customer id) who used our one-click unsubscribe
        self.report = Report(sms_currency=rules.settings.sms.price_currency)
        self.clock: datetime | None = None
        self._ledger = _Ledger()
        self._touches = self.report.ledger if keep_ledger else None
        self._recorded = {flag: Recorded(self._ledger, _Timers(self._ledger), unsubscribed=flag) for flag in (False, True)}

    def feed(self, event: Event) -> None:
        self.advance(event.occurred_at)
        self.report.events += 1
        # Like the worker's events_seen table: a re-delivered event changes nothing.
        seen = hash((event.shop, event.id))
        if seen in self.seen:
            self.report.duplicate_events += 1
            return
        self.seen.put(seen)
        self._process(event, event.occurred_at)
        for derived in occasions.captured(event, self.rules.settings.occasion_fields):
            self.feed(derived)

    def advance(self, until: datetime) -> None:
        """Fire every timer due at or before ``until``, in the order the worker fires them."""
        timers = self.timers
        if self.clock is not None:
            for timer in self.moments.due(self.states, self.clock, until):
                heapq.heappush(timers, (timer.occurred_at, timer.occurred_at, timer.id, 0, timer))
        while timers and due(timers[0][0], until):
            wake_at, _, timer_id, attempts, timer = heapq.heappop(timers)
            self.report.timers_fired += 1
            self._ledger.own_id, self._ledger.own = timer_id, TimerEntry(wake_at, attempts, "fired")
            try:
                self._process(timer, wake_at)
            finally:
                self._ledger.own_id = self._ledger.own = None
        if self.clock is None or until > self.clock:
            self.clock = until
        if self.report.start is None:
            self.report.start = until
        self.report.end = self.clock

    def finish(self, until: datetime | None = None) -> Report:
        if until is not None:
            self.advance(until)
        self.report.timers_pending = len(self.timers)
        self.report.customers = len(self.states)
        return self.report

    def _process(self, event: Event, now: datetime) -> None:
        skey = (event.shop, event.customer_id)
        who = hash(skey)
        if is_unsubscribe(event):
            self.unsubscribed.add(who)
        outcome = step(event, self.states.get(skey), self.rules, now, self._recorded[who in self.unsubscribed])
        if outcome.state is not None:
            self.states[skey] = outcome.state
        self._keep(event, outcome)
        if self._touches is not None:
            self._touches.update((d.key, d) for d in outcome.touches)
        if self.on_outcome is not None:
            self.on_outcome(event, outcome)
        signals = self._report(event, outcome, skey, now)
        for signal in signals:
            self._process(signal, now)

    def _keep(self, event: Event, outcome: Outcome) -> None:
        """Record the outcome as the worker's ledger and timers table would (touches: ``_report``)."""
        entries = self._ledger.entries
        for w in outcome.ledger:
            if isinstance(w, Amend):
                if w.status is not None:
                    old = _CODED[entries.get(hash(w.key))]
                    entries.put(hash(w.key), _code(Entry(old.kind, old.reason, w.status)))
                continue
            d = w.decision
            if w.status == "pending":  # a touch
                entries.put(hash(d.key), _TOUCHED_CODE)
                continue
            entries.put(hash(d.key), _code(Entry(_VALUE.get(d.kind, d.kind), _VALUE.get(d.reason, d.reason), w.status)))
        for t in outcome.timers:
            entries.put(hash(t.id), _SET_BEFORE_CODE)
            if t.status == "pending":
                timer = t.event if t.event is not None else event  # only the firing timer is armed again
                heapq.heappush(self.timers, (t.wake_at, origin_time(timer.data) or t.wake_at, t.id, t.attempts, timer))

    def _report(self, event: Event, outcome: Outcome, skey, now: datetime) -> list[Event]:
        """Count the outcome in the report; the signals its touches send."""
        report = self.report
        from_delay = event.type == "timer" and event.data["kind"] not in _INITIAL_TIMERS
        made = 0
        for d in outcome.decisions:
            r = report.rule(d.rule_id)
            if d.kind == Kind.SCHEDULED:
                if d.reason == Reason.DELAY:
                    r.triggered += 1
                continue
            if not from_delay:
                r.triggered += 1
            if d.kind == Kind.SUPPRESSED:
                r.suppressed[_REASON.get(d.reason, d.reason)] += 1
            else:
                made += 1
        report.duplicates += made - len(outcome.touches)
        signals = []
        who = hash(skey)
        for d in outcome.touches:
            r = report.rule(d.rule_id)
            counted = (r, r.variant(d.variant)) if d.variant else (r,)
            for c in counted:
                c.touches += 1
                c.customers.put(who)
            for a in d.actions:
                count = _COUNTED.get(a.type)
                if count is not None:
                    for c in counted:
                        count(c, a)
                if isinstance(a, (Email, Sms)) and self.render is not None:
                    self._rendered(d, a, outcome.state, counted, skey)
                if isinstance(a, Signal) and a.customer_id:
                    signals.append(Event(id=a.key, type=a.event, shop=event.shop, customer_id=a.customer_id,
                                         occurred_at=now, data=a.data))
        return signals

    def _rendered(self, d, a: Email | Sms, state, counted, skey) -> None:
        """Render a touch's email or text as it would be sent: one that fails is counted (not
        sent); a text's segments and their cost at the shop's price are."""
        result = self.render(d, a, state)
        if isinstance(result, int):  # a text: its segments
            for c in counted:
                c.segments += result
                c.sms_cost += self.rules.settings.sms.cost(result)
        elif result is not None:
            for c in counted:
                c.render_failures += 1
            seen = self.report.render_errors.setdefault((d.rule_id, result), [0, skey[1]])
            seen[0] += 1


def _code(entry: Entry) -> int:
    code = _CODES.get(entry)
    if code is None:
        code = _CODES[entry] = len(_CODED)
        _CODED.append(entry)
    return code


def read_events(lines: Iterable[str]) -> Iterator[Event]:
    """Parse JSON Lines of canonical events (blank lines and # comments skipped)."""
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            yield event_from_dict(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {n}: not JSON: {exc.msg}") from None
        except ValueError as exc:
            raise ValueError(f"line {n}: {exc}") from None


def time_ordered(events: Iterable[Event]) -> list[Event]:
    """Events sorted by time (stable: simultaneous events keep their file order)."""
    return sorted(events, key=lambda e: e.occurred_at)


@contextmanager
def _without_cycle_collection():
    """Customer states hold no reference cycles, yet with 100k of them alive every cyclic GC
    pass rescans them all (a third of the run time); plain reference counting frees them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def simulate(events: Iterable[Event], rules: RuleSet, until: datetime | None = None,
             progress: Callable[[int], None] | None = None, render: Callable | None = None,
             tz: tzinfo = timezone.utc, states: PackedStates | None = None, keep_ledger: bool = True) -> Report:
    """Replay time-ordered ``events`` through ``rules``; timers fire up to ``until`` (default: the
    last event). ``render`` (see plugin.mail.preview.touch_renderer) renders every email counted;
    ``tz``: the shop's time zone, in which dated and yearly rules fire.
    ``events`` may be a stream (``plugin.history_stream.TimeOrdered``): they are not kept, and
    customer states are packed while the customer is quiet, so memory follows customers; with
    ``keep_ledger`` False the touches are counted, not kept (``keepwell simulate``)."""
    sim = Simulator(rules, render=render, tz=tz, states=states if states is not None else PackedStates(),
                    keep_ledger=keep_ledger)
    with _without_cycle_collection():
        for n, event in enumerate(events, 1):
            sim.feed(event)
            if progress is not None and n % 1000 == 0:
                progress(1000)
        return sim.finish(until)

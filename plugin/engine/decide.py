"""``decide(event, state, rules, now) -> list[Decision]``: the pure heart of Keepwell.

No I/O, no clock, no randomness: the caller passes ``now``, holdout groups are stable hashes.
For each rule the event triggers, the gates run in a fixed, documented order:
conditions -> self-referral -> delay (re-check later) -> limits -> consent -> priority -> holdout -> frequency cap.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from plugin.engine.specs import Touch
from plugin.engine.decisions import Decision, Kind, Reason, stable_percent
from plugin.engine.fields import Context
from plugin.engine.referral import same_person
from plugin.engine.ruleset import Rule, RuleSet, Variant
from plugin.engine.triggers import PROFILE_OCCASIONS
from plugin.engine.actions import Sms
from plugin.engine.sms import channel_open, quiet_until
from plugin.engine.values import format_duration
from plugin.engine.state import CustomerState
from plugin.events import Event

_VALUE = {r: r.value for r in Reason}  # plain strings for timer data, without Enum lookups

#: Occasion reminders go out at this time of day (UTC) on their day.
OCCASION_HOUR = time(9, 0, tzinfo=timezone.utc)


def event_anchor(event: Event) -> str:
    """What a touch is 'for': the same order or signup always gives the same anchor."""
    if event.type == "timer":
        anchor: str = event.data["anchor"]
        return anchor
    if event.order is not None:
        return f"{event.type}:{event.order.id}"
    if event.type == "customer.created":
        return "customer.created"
    if event.type == "referral.converted":
        return f"referral:{event.data.get('order_id', event.id)}"
    return f"{event.type}:{event.id}"


def decision_key(shop: str, rule_id: str, customer_id: str, anchor: str) -> str:
    return f"{shop}:{rule_id}:{customer_id}:{anchor}"


def decide(event: Event, state: CustomerState, rules: RuleSet, now: datetime) -> list[Decision]:
    """The decisions ``rules`` make for ``event``, given the customer's state after it."""
    ctx = Context(event, state, now, rules.settings)
    if event.type == "timer":
        return _on_timer(ctx, rules)
    out = _schedule_timers(ctx, rules)
    anchor = event_anchor(event)
    passed = []
    for rule in _triggered(event, state, rules):
        result = _gate(rule, ctx, anchor, rules, delayed=False)
        if isinstance(result, Decision):
            out.append(result)
        else:
            passed.append(rule)
    out.extend(_arbitrate(passed, ctx, anchor, rules))
    return out


def _triggered(event: Event, state: CustomerState, rules: RuleSet) -> tuple[Rule, ...]:
    """Rules the event triggers. A profile update that flipped the consent is also a consent
    change: platforms without a consent topic (WooCommerce) only send customer.updated."""
    rules_for_event = rules.by_event.get(event.type, ())
    if event.type == "customer.updated" and state.consent_changed_at == event.occurred_at:
        extra = rules.by_event.get("customer.consent_changed", ())
        return tuple(sorted(rules_for_event + extra, key=lambda r: (-r.priority, r.id)))
    return rules_for_event


def _decision(kind: Kind, rule: Rule, ctx: Context, anchor: str, rules: RuleSet, **kw: Any) -> Decision:
    return Decision(
        kind=kind,
        key=decision_key(ctx.event.shop, rule.id, ctx.state.customer_id, anchor),
        shop=ctx.event.shop,
        rule_id=rule.id,
        customer_id=ctx.state.customer_id,
        at=ctx.now,
        event_id=ctx.event.id,
        marketing=rule.marketing,
        ruleset_version=rules.version,
        **kw,
    )


def _timer(kind: Reason, rule: Rule, ctx: Context, anchor: str, rules: RuleSet, wake_at: datetime,
           event: Event | None = None, detail: str = "", suffix: str = "") -> Decision:
    key = decision_key(ctx.event.shop, rule.id, ctx.state.customer_id, anchor)
    data: dict[str, Any] = {"kind": _VALUE[kind], "rule": rule.id, "anchor": anchor, "version": rules.version}
    if event is not None:
        data["event"] = event
    # A touch may be deferred more than once: each deferral is its own timer.
    timer_id = f"{key}:{_VALUE[kind]}" + (f":{wake_at.isoformat()}" if kind == Reason.DEFERRED else "")
    if suffix:
        timer_id += f":{suffix}"
    timer = Event(id=timer_id, type="timer", shop=ctx.event.shop, customer_id=ctx.state.customer_id,
                  occurred_at=wake_at, data=data)
    return _decision(Kind.SCHEDULED, rule, ctx, anchor, rules, reason=kind, wake_at=wake_at, timer=timer, detail=detail)


def _gate(rule: Rule, ctx: Context, anchor: str, rules: RuleSet, delayed: bool, recheck: bool = False) -> Decision | Rule:
    """A suppressed/scheduled Decision, or the rule itself when it may touch the customer.
    ``delayed``: the delay is over; ``recheck``: the conditions held once and are checked again."""
    if rule.condition is not None and not rule.condition.test(ctx):
        if recheck:
            return _decision(Kind.SUPPRESSED, rule, ctx, anchor, rules, reason=Reason.CANCELLED,
                             detail="conditions no longer hold when re-checked")
        return _decision(Kind.SUPPRESSED, rule, ctx, anchor, rules, reason=Reason.CONDITIONS)
    if ctx.event.type == "referral.converted" and (same := same_person(ctx.state, ctx.event.data)):
        return _decision(Kind.SUPPRESSED, rule, ctx, anchor, rules, reason=Reason.SELF_REFERRAL,
                         detail=f"the referred friend has the referrer's {same}")
    if rule.delay and not delayed:
        return _timer(Reason.DELAY, rule, ctx, anchor, rules, ctx.now + rule.delay, event=ctx.event,
                      detail="re-checked after the delay")
    history = ctx.state.history.get(rule.id)
    key = decision_key(ctx.event.shop, rule.id, ctx.state.customer_id, anchor)
    if history is not None and key not in history.keys:
        if rule.once_per_customer:
            return _decision(Kind.SUPPRESSED, rule, ctx, anchor, rules, reason=Reason.LIMIT, detail="once per customer")
        if rule.cooldown and ctx.now < history.last_at + rule.cooldown:
            return _decision(Kind.SUPPRESSED, rule, ctx, anchor, rules, reason=Reason.LIMIT,
                             detail=f"cooldown until {(history.last_at + rule.cooldown).isoformat()}")
    if rule.marketing and (why := _no_consent(rule, ctx.state)):
        return _decision(Kind.SUPPRESSED, rule, ctx, anchor, rules, reason=Reason.CONSENT, detail=why)
    return rule


def _no_consent(rule: Rule, state: CustomerState) -> str:
    """Why a marketing rule may not contact the customer ("" when it may): a rule that sends
    messages needs consent for one of their channels (SMS consent for texts, email's for the
    rest); a rule without messages (a coupon alone) needs the marketing consent."""
    channels = {c for spec in rule.actions for c in getattr(spec, "channels", ())}
    if channels and any(channel_open(state, c) for c in channels):
        return ""
    if not channels and state.accepts_marketing:
        return ""
    if channels == {"sms"}:
        return "customer has not opted in to SMS marketing"
    if len(channels) > 1:
        return "customer has not opted in to marketing on any of " + ", ".join(sorted(channels))
    return "customer has not opted in to marketing"


def _arbitrate(passed: list[Rule], ctx: Context, anchor: str, rules: RuleSet) -> list[Decision]:
    """Touch non-marketing rules; let only the highest-priority marketing rule through."""
    out = []
    winner = None
    for rule in passed:  # rules are ordered by priority, highest first
        if not rule.marketing:
            out.append(_touch(rule, ctx, anchor, rules))
        elif winner is None:
            winner = rule
        else:
            out.append(_decision(Kind.SUPPRESSED, rule, ctx, anchor, rules, reason=Reason.PRIORITY,
                                 detail=f"outranked by {winner.id}"))
    if winner is None:
        return out
    if winner.holdout and stable_percent(ctx.event.shop, winner.id, ctx.state.customer_id) < winner.holdout:
        out.append(_decision(Kind.SUPPRESSED, winner, ctx, anchor, rules, reason=Reason.HOLDOUT,
                             detail=f"in the {winner.holdout}% control group"))
        return out
    free_at = _cap_free_at(ctx.state, ctx.now, rules, anchor, winner)
    cap = rules.settings.frequency_cap
    if free_at is None or cap is None:  # (free_at is None without a cap)
        out.extend(_quiet_hours(_touch(winner, ctx, anchor, rules), winner, ctx, anchor, rules))
    elif cap.when_capped == "defer":
        out.append(_decision(Kind.SUPPRESSED, winner, ctx, anchor, rules, reason=Reason.CAP,
                             detail=f"{_touches(cap.touches)} per {format_duration(cap.per)} reached; deferred to {free_at.isoformat()}"))
        original = ctx.event.data["event"] if ctx.event.type == "timer" and "event" in ctx.event.data else ctx.event
        out.append(_timer(Reason.DEFERRED, winner, ctx, anchor, rules, free_at, event=original))
    else:
        out.append(_decision(Kind.SUPPRESSED, winner, ctx, anchor, rules, reason=Reason.CAP,
                             detail=f"{_touches(cap.touches)} per {format_duration(cap.per)} reached; skipped"))
    return out


def _quiet_hours(touch: Decision, rule: Rule, ctx: Context, anchor: str, rules: RuleSet) -> list[Decision]:
    """The touch, or when it sends a text at night in the customer's time zone, its deferral to
    the morning: recorded like the cap's, decided again (cap, consent, conditions) when it fires."""
    texts = [a for a in touch.actions if isinstance(a, Sms)]
    wake = quiet_until(ctx.now, texts[0].to, rules.settings.sms) if texts else None
    if wake is None:
        return [touch]
    s = rules.settings.sms
    original = ctx.event.data["event"] if ctx.event.type == "timer" and "event" in ctx.event.data else ctx.event
    return [_decision(Kind.SUPPRESSED, rule, ctx, anchor, rules, reason=Reason.QUIET_HOURS,
                      detail=f"texts go out {s.quiet_end:%H:%M}-{s.quiet_start:%H:%M} in the customer's time zone; "
                             f"deferred to {wake.isoformat()}"),
            _timer(Reason.DEFERRED, rule, ctx, anchor, rules, wake, event=original)]


def _touches(n: int) -> str:
    return f"{n} touch" if n == 1 else f"{n} touches"


def _cap_free_at(state: CustomerState, now: datetime, rules: RuleSet, anchor: str, rule: Rule) -> datetime | None:
    """None when a marketing touch is allowed now, else when the cap frees a slot."""
    cap = rules.settings.frequency_cap
    if cap is None:
        return None
    history = state.history.get(rule.id)
    if history is not None and decision_key(state.shop, rule.id, state.customer_id, anchor) in history.keys:
        return None  # this very touch was already counted
    # Touches may already exist after ``now`` (events processed out of time order): a new touch
    # must fit every window of length ``per`` around it, so both sides count.
    def fits(t: datetime) -> bool:
        return sum(1 for x in state.touches if t - cap.per < x < t + cap.per) < cap.touches

    if fits(now):
        return None
    return next(t for t in sorted(x + cap.per for x in state.touches) + [max(state.touches) + cap.per]
                if t > now and fits(t))


def pick_variant(rule: Rule, shop: str, customer_id: str) -> Variant | None:
    """The customer's A/B variant of ``rule``: stable, weighted, independent of the holdout draw."""
    if not rule.variants:
        return None
    point = stable_percent(shop, rule.id, customer_id, "variant") / 100 * sum(v.weight for v in rule.variants)
    for v in rule.variants:
        point -= v.weight
        if point < 0:
            return v
    return rule.variants[-1]


def _touch(rule: Rule, ctx: Context, anchor: str, rules: RuleSet) -> Decision:
    key = decision_key(ctx.event.shop, rule.id, ctx.state.customer_id, anchor)
    variant = pick_variant(rule, ctx.event.shop, ctx.state.customer_id)
    touch = Touch(key, rule, ctx, rules.settings, anchor)
    actions = []
    for i, spec in enumerate(variant.actions if variant else rule.actions):
        a = spec.act(touch, i)
        if a is not None:  # e.g. no referral code for a guest: nothing to share
            actions.append(a)
    return _decision(Kind.TOUCH, rule, ctx, anchor, rules, actions=tuple(actions), variant=variant and variant.name)


# --- time-based triggers ----------------------------------------------------------------------

def next_occasion(day: date, now: datetime, before: timedelta, after: date | None = None) -> tuple[date, datetime]:
    """The next (date, wake time) of a yearly occasion whose reminder is still ahead of ``now``
    (and, with ``after``, whose date comes after that day)."""
    start = now.year if after is None else max(now.year, after.year)
    for year in range(start, start + 3 + before.days // 365 + 1):
        try:
            occ = day.replace(year=year)
        except ValueError:  # 29 February in a common year
            occ = date(year, 2, 28)
        wake = datetime.combine(occ, OCCASION_HOUR) - before
        if wake > now and (after is None or occ > after):
            return occ, wake
    raise AssertionError("unreachable: a later year always exists")


def _same_day_of_year(day: date, occ: date) -> bool:
    return (day.month, day.day) == (occ.month, occ.day) or ((day.month, day.day) == (2, 29) and (occ.month, occ.day) == (2, 28))


def _schedule_timers(ctx: Context, rules: RuleSet) -> list[Decision]:
    out = []
    event, state = ctx.event, ctx.state
    if event.type == "order.paid" and event.order is not None and state.last_order_id == event.order.id:
        for rule in rules.lapse_rules:
            assert state.last_order_at is not None and rule.trigger.after is not None
            anchor = f"lapse:{state.last_order_id}"
            out.append(_timer(Reason.LAPSE, rule, ctx, anchor, rules, state.last_order_at + rule.trigger.after))
    elif event.type == "order.cancelled" and event.order is not None and state.last_order_id is not None:
        # The cancelled order may have been the latest: the lapse now counts from the one before,
        # whose own timer may already have fired and stood down, so it gets a fresh one.
        for rule in rules.lapse_rules:
            assert state.last_order_at is not None and rule.trigger.after is not None
            anchor = f"lapse:{state.last_order_id}"
            wake = max(ctx.now, state.last_order_at + rule.trigger.after)
            out.append(_timer(Reason.LAPSE, rule, ctx, anchor, rules, wake, suffix=f"after-cancel:{event.order.id}"))
    if event.customer is not None:
        out.extend(_occasion_timers(ctx, rules, PROFILE_OCCASIONS))
    if event.type == "occasion.captured":
        out.extend(_occasion_timers(ctx, rules, ("captured",), f"captured:{event.data['occasion_id']}"))
    elif event.type == "order.paid" and event.order is not None and state.first_order_id == event.order.id:
        out.extend(_occasion_timers(ctx, rules, ("first_order_anniversary",)))
    return out


def _occasion_dates(rule: Rule, state: CustomerState) -> list[tuple[str, date, date | None]]:
    """(anchor prefix, date, only after this day) of every yearly date ``rule`` reminds of."""
    t = rule.trigger
    if t.occasion in PROFILE_OCCASIONS:
        day = getattr(state, t.occasion)
        return [] if day is None else [(t.occasion, day, None)]
    if t.occasion == "first_order_anniversary":
        first = state.first_order_at
        return [] if first is None else [(t.occasion, first.date(), first.date())]
    # A captured occasion was just bought for: the first reminder is for the next time round.
    return [(f"captured:{o.id}", o.day, max(o.day, o.captured_at.date())) for o in state.occasions.values()
            if o.remind and (not t.kinds or o.kind in t.kinds)]


def _occasion_timers(ctx: Context, rules: RuleSet, occasions: tuple[str, ...], only: str | None = None) -> list[Decision]:
    out = []
    for rule in rules.occasion_rules:
        if rule.trigger.occasion not in occasions:
            continue
        for prefix, day, after in _occasion_dates(rule, ctx.state):
            if only is None or prefix == only:
                occ, wake = next_occasion(day, ctx.now, rule.trigger.before, after)
                out.append(_timer(Reason.OCCASION, rule, ctx, f"{prefix}:{occ.isoformat()}", rules, wake))
    return out


def send_at(shop: str, rule_id: str, customer_id: str, at: datetime, window: timedelta) -> datetime:
    """A moment's send slot for the customer: a stable point in its window (whole seconds) after ``at``."""
    offset = int(window.total_seconds() * stable_percent(shop, rule_id, customer_id, "window") / 100)
    return at + timedelta(seconds=offset)


def moment_timer(shop: str, rule: Rule, customer_id: str, label: str, at: datetime, version: str) -> Event:
    """The timer that considers one customer for one occurrence (``label``, the local time) of a
    dated or yearly rule; the same customer and occurrence always give the same timer id."""
    assert rule.trigger.moment is not None, "a moment rule says when"
    anchor = f"moment:{label}"
    key = decision_key(shop, rule.id, customer_id, anchor)
    return Event(id=f"{key}:{_VALUE[Reason.MOMENT]}", type="timer", shop=shop, customer_id=customer_id,
                 occurred_at=send_at(shop, rule.id, customer_id, at, rule.trigger.moment.window),
                 data={"kind": _VALUE[Reason.MOMENT], "rule": rule.id, "anchor": anchor, "version": version})


def _on_timer(ctx: Context, rules: RuleSet) -> list[Decision]:
    data = ctx.event.data
    rule = rules.by_id.get(data["rule"])
    anchor = data["anchor"]
    if rule is None or not rule.enabled:
        return []  # the rule was removed or switched off since the timer was set
    kind = data["kind"]
    out = []
    # Time-based touches check their anchor still holds, also when they were deferred by the cap.
    if anchor.startswith("lapse:"):
        anchor_order = anchor.split(":", 1)[1]
        if f"lapse:{ctx.state.last_order_id}" != anchor:
            summary = ctx.state.orders.get(anchor_order)
            detail = ("the order the lapse counted from was cancelled" if summary is not None and summary.cancelled
                      else "the customer ordered again")
            return [_decision(Kind.SUPPRESSED, rule, ctx, anchor, rules, reason=Reason.CANCELLED, detail=detail)]
    elif rule.trigger.kind == "occasion":
        assert rule.trigger.occasion is not None, "an occasion trigger names its occasion"
        prefix, _, when = anchor.rpartition(":")
        day = next((d for p, d, _ in _occasion_dates(rule, ctx.state) if p == prefix), None)
        if day is None or not _same_day_of_year(day, date.fromisoformat(when)):
            what = "occasion (or its reminder)" if rule.trigger.occasion == "captured" else rule.trigger.occasion.replace("_", " ")
            return [_decision(Kind.SUPPRESSED, rule, ctx, anchor, rules, reason=Reason.CANCELLED,
                              detail=f"the {what} changed")]
        if kind == Reason.OCCASION:
            out.extend(_occasion_timers(ctx, rules, (rule.trigger.occasion,), prefix))  # and next year's
    if "event" in data:  # a delayed or deferred touch: re-check against the original event
        ctx = Context(data["event"], ctx.state, ctx.now, ctx.settings)
    recheck = kind == Reason.DELAY or kind == Reason.DEFERRED
    result = _gate(rule, ctx, anchor, rules, delayed=True, recheck=recheck)
    if isinstance(result, Decision):
        return out + [result]
    return out + _arbitrate([rule], ctx, anchor, rules)

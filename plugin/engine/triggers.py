"""The trigger vocabulary: the events and yearly profile dates a rule can trigger on, and a
suggestion for a trigger a rule file misspells or names in its own words."""
from __future__ import annotations

from plugin.engine.conditions import did_you_mean
from plugin.events import EVENT_TYPES

TRIGGER_EVENTS = tuple(t for t in EVENT_TYPES if t != "timer")
PROFILE_OCCASIONS = ("birthday", "anniversary")


#: Words people use for each trigger event, for suggestions by meaning (``customer.signup``).
_TRIGGER_WORDS = {
    "customer.created": "signup signed sign register registered registration join joined new create account",
    "customer.updated": "update updated change changed edit edited",
    "customer.consent_changed": "consent subscribe subscribed unsubscribe optin opt newsletter marketing",
    "order.created": "create created placed place new",
    "order.paid": "paid pay payment purchase purchased bought buy checkout complete completed sale",
    "order.refunded": "refund refunded return returned",
    "order.cancelled": "cancel canceled cancelled void voided",
    "customer.preference_changed": "preference preferred prefers channel",
    "survey.answered": "survey answer answered question feedback review",
    "page.opened": "page opened open visit visited view viewed",
}
_SUBJECTS = {"customer": "customer user account subscriber member signup register",
             "order": "order purchase checkout cart sale"}


def suggest_trigger(word: object) -> str:
    """' (did you mean ...?)' by meaning (``customer.signup``), else by spelling; else the list."""
    tokens = [t for t in str(word).lower().replace("-", "_").replace(".", "_").split("_") if t]
    occasion = next((t for t in tokens if t in PROFILE_OCCASIONS), None)
    if occasion:
        return f" (a yearly date is an occasion trigger: trigger: {{occasion: {occasion}, before: 7d}})"
    subject = next((s for s, words in _SUBJECTS.items() if any(t in words.split() for t in tokens)), None)
    verbs = tokens[1:] or tokens
    best = [event for event, words in _TRIGGER_WORDS.items()
            if any(t in words.split() for t in verbs) and (subject is None or event.startswith(subject + "."))]
    if best:
        return f" (did you mean {best[0]!r}?)"
    return did_you_mean(word, TRIGGER_EVENTS) or f"; trigger events are {', '.join(TRIGGER_EVENTS)}"


__all__ = ["PROFILE_OCCASIONS", "TRIGGER_EVENTS", "suggest_trigger"]

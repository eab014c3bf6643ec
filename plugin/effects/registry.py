"""The effects registry: one handler per action type, registered by the module that implements it.

A handler module (``plugin/effects/coupon.py``, ...) calls ``register`` once at import time::

    register(Tag.type, run=add_tag)

``run(job, action, eff)`` performs one effect of one touch: it raises to fail it (the runner asks
``retry_policy`` what then), records what the outside world answered on the effect row ``eff``
(a store id, a message id), and may mark ``eff`` ``skipped`` with a reason (e.g. the customer
unsubscribed). Optional hooks: ``check(job, action)`` runs before any effect of the touch and
returns why the whole touch can never go out (or None); ``resume(job, action, eff)`` runs for an
effect an earlier attempt already finished, to give later effects what it made (the coupon code
an email shows).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from plugin.engine.actions import ACTIONS


@dataclass
class Job:
    """One run of a touch's effects: what every handler may need."""

    rt: Any  # plugin.pipeline.Runtime: config, sessions, redis, clock, handoff
    session: Any  # the open database session the effect rows belong to
    shop: Any  # connectors.base.Shop, with its secrets
    decision: Any  # plugin.db.DecisionRow
    connector: Any  # the shop's platform connector
    made: dict = field(default_factory=dict)  # what earlier effects made, by action type (the coupon)


@dataclass(frozen=True)
class Handler:
    run: Callable[..., None]
    check: Callable[..., str | None] | None = None
    resume: Callable[..., None] | None = None


#: action type -> its handler
HANDLERS: dict[str, Handler] = {}


def register(action_type: str, run: Callable[..., None], check: Callable[..., str | None] | None = None,
             resume: Callable[..., None] | None = None) -> Handler:
    """Make ``run`` (and its hooks) the handler of ``action_type``, a type registered in ``plugin.engine.actions``."""
    if action_type not in ACTIONS:
        raise ValueError(f"no action type {action_type!r} in plugin.engine.actions")
    if action_type in HANDLERS:
        raise ValueError(f"action type {action_type!r} already has a handler")
    HANDLERS[action_type] = handler = Handler(run, check, resume)
    return handler

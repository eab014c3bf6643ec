"""The imperative shell around the engine: load state, decide, record, then act.

For a batch of canonical events (plugin.drain takes up to a batch of a shop's backlog), one
database transaction loads the customers' state, folds the events in one by one, asks the pure
engine for decisions and writes them to the ledger (with one effect row per action) before
anything touches the outside world (plugin.batch). The new touches then go to the shop's effect
line (plugin.effects.dispatch), whose runner jobs carry out each touch's effects in order and
mark them done; a retried job finds them done and skips them (DESIGN.md principle 3).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Callable

from redis import Redis
from rq import Queue
from sqlalchemy.orm import sessionmaker

import connectors.cache
from connectors.base import Shop
from plugin import batch, crash, effects, sms_consent
from plugin.config import Config
from plugin.db import ShopRow, utcnow
from plugin.errors import DeliveryError, StoreError
from plugin.events import Event
from plugin.handoff import Envelope, Handoff
from plugin.shops import to_shop
from plugin.timers import RQ_TIMER_HORIZON, fire_timer, sweep_timers

log = logging.getLogger("keepwell.worker")

SHOP_CACHE_S = 5.0


@dataclass
class Runtime:
    """Everything the worker needs, built once per process."""

    config: Config
    sessions: sessionmaker
    redis: Redis
    clock: Callable[[], datetime] = utcnow
    handoff: Handoff = field(init=False)
    queue: Queue = field(init=False)

    def __post_init__(self):
        connectors.cache.bind(self.redis, self.config.queue)  # caches every job process shares
        self.handoff = Handoff(self.redis, self.config.queue)
        self.queue = self.handoff.queue
        self._shops: dict[str, tuple[float, Shop | None]] = {}

    def shop(self, shop_id: str) -> Shop | None:
        """The shop with its secrets decrypted, or None when unknown or uninstalled. Cached for a
        few seconds: a drain works through many envelopes of one shop."""
        hit = self._shops.get(shop_id)
        now = time.monotonic()
        if hit is not None and now - hit[0] < SHOP_CACHE_S:
            return hit[1]
        with self.sessions() as session:
            row = session.get(ShopRow, shop_id)
            shop = to_shop(row, self.config) if row is not None and row.active else None
        self._shops[shop_id] = (now, shop)
        return shop

    def forget_shop(self, shop_id: str) -> None:
        """Drop the cached shop (its settings changed)."""
        self._shops.pop(shop_id, None)


# --- deciding: parse -> load -> step -> write, for a batch of envelopes ---------------------------

def process_envelopes(rt: Runtime, shop_id: str, envelopes: list[Envelope]) -> list[str]:
    """Decide the events of ``envelopes`` in one transaction (plugin.batch), then schedule their
    timers and run their touches. Returns the touch keys."""
    shop = rt.shop(shop_id)
    if shop is None:
        log.info("shop %s is not active: %d backlog entries dropped", shop_id, len(envelopes))
        return []
    return process_events(rt, shop_id, batch.parse_envelopes(rt, shop, envelopes), shop)


def process_envelope(rt: Runtime, shop_id: str, env: Envelope) -> list[str]:
    return process_envelopes(rt, shop_id, [env])


def process_events(rt: Runtime, shop_id: str, events: list[Event], shop: Shop | None = None) -> list[str]:
    """Let the engine's ``step`` decide ``events`` in order and record the outcomes in one
    transaction; then schedule timers and run the new touches. Returns the touch keys."""
    events = [e if e.shop == shop_id else replace(e, shop=shop_id) for e in events]  # the envelope's shop is the truth
    shop = shop or rt.shop(shop_id)
    looked_up = batch.consent_lookups(rt, shop, events) if shop is not None else {}  # store I/O: before the transaction
    touches, timers = batch.decide(rt, shop_id, events, looked_up)
    for event in events:
        sms_consent.after_event(rt, shop_id, event)  # an SMS opt-out or re-subscription: kept and written back
    batch.schedule_all(rt, shop_id, timers)
    act(rt, shop_id, touches)
    return touches


def process_event(rt: Runtime, shop_id: str, event: Event) -> list[str]:
    return process_events(rt, shop_id, [event])


def act(rt: Runtime, shop_id: str, touches: list[str]) -> None:
    """Hand the touches a batch decided to the shop's effect runners: deciding never waits for a store."""
    effects.dispatch(rt, shop_id, touches)
    crash.point("acting")


# --- acting -------------------------------------------------------------------------------------

def execute_decision(rt: Runtime, shop_id: str, key: str) -> str:
    """Run a touch's pending effects in order; returns the decision's status."""
    return effects.execute(rt, shop_id, key)


__all__ = ["Runtime", "RQ_TIMER_HORIZON", "process_envelopes", "process_envelope", "process_events", "process_event", "fire_timer", "sweep_timers",
           "execute_decision", "StoreError", "DeliveryError"]

"""Envelopes that wait for the store: a retryable StoreError while processing an envelope (a
throttled product lookup, a store down for a minute) delays the shop's backlog by the wait the
store suggested, instead of deciding the order without what the store would have said.

Delays are counted apart from failures (they never dead-letter an envelope); after
``MAX_DELAYS`` the envelope gets one last try in which enrichment may fall back (the order is
then marked, see ``connectors.products``).
"""
from __future__ import annotations

import logging
from datetime import timedelta

from plugin.errors import StoreError

log = logging.getLogger("keepwell.worker")

#: Waits before the last try: with a doubling backoff from 1 s (capped at 10 min) the store has
#: about 45 minutes to come back, longer than Shopify throttles or a deploy of either side lasts.
MAX_DELAYS = 12
MAX_WAIT_S = 600.0


def key(rt, shop_id: str) -> str:
    """The hash of envelope key -> waits so far, for the shop (all its lanes)."""
    return f"{rt.handoff.keys(shop_id).backlog}:delays"


def delays_so_far(rt, shop_id: str, env_key: str) -> int:
    """How often the envelope waited already."""
    return int(rt.redis.hget(key(rt, shop_id), env_key) or 0)


def wait_for(exc: StoreError, delays: int) -> float:
    """Seconds to wait: the store's own figure (Retry-After, the cost bucket's refill) when it
    gave one, else a doubling backoff."""
    if exc.retry_after is not None:
        return min(max(exc.retry_after, 0.5), MAX_WAIT_S)
    return min(2.0 ** (delays - 1), MAX_WAIT_S)


def delay(rt, shop_id: str, env_key: str, exc: StoreError) -> float:
    """Count one more wait for the envelope and return its length in seconds."""
    delays = rt.redis.hincrby(key(rt, shop_id), env_key, 1)
    wait = wait_for(exc, delays)
    log.warning("shop %s: %s waits %.1f s for the store (%s: %s), delay %d of %d", shop_id, env_key, wait,
                exc.code, exc.message, delays, MAX_DELAYS)
    return wait


def done(rt, shop_id: str, env_key: str) -> None:
    rt.redis.hdel(key(rt, shop_id), env_key)


def resume_later(rt, shop_id: str, wait: float, lane: int | None = None) -> None:
    """Run the drain of the shop's backlog (or of one of its lanes, plugin.lanes) again in
    ``wait`` seconds; until then no other drain of it starts (the draining flag outlives the
    wait, so a lost job is picked up by the tick afterwards). Other lanes go on: they meet the
    store's limit themselves, each pausing at its own entry."""
    keys = rt.handoff.keys(shop_id)
    own = keys if lane is None else keys.lane(lane)
    rt.redis.set(own.draining, "1", ex=int(wait) + 60)
    if lane is None:
        rt.queue.enqueue_in(timedelta(seconds=wait), "plugin.jobs.drain", shop_id, result_ttl=60,
                            description=f"drain {shop_id} (after a store wait)")
    else:
        rt.queue.enqueue_in(timedelta(seconds=wait), "plugin.jobs.drain_lane", shop_id, lane, result_ttl=60,
                            description=f"drain {shop_id} lane {lane} (after a store wait)")

"""Draining a shop's backlog, or one of its lanes, in batches.

A drain job holds the lock of its list (the shop's backlog, or one lane of it: plugin.lanes)
and works through it for up to ``DRAIN_BUDGET_S``, then enqueues itself again so other shops
get their turn. Each step takes up to ``BATCH`` entries: one Redis script moves them to the
list's ``processing`` list, they are decided in one transaction (plugin.batch), their touches
run, and one more Redis call drops them from ``processing``. Entries left in ``processing``
belong to a drain that died: the next drain takes them first, again; their events are seen by
then if the transaction had committed, so nothing is decided or sent twice.

A batch that fails is taken again one entry at a time, each in its own transaction, so a
malformed entry is dead-lettered alone, one that keeps failing only after
``MAX_ENVELOPE_ATTEMPTS`` tries, and a store that asks to wait (plugin.delays) pauses the list
at that very entry.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

from connectors.products import fallback_allowed
from plugin import crash, delays, lanes
from plugin.errors import PayloadError, StoreError
from plugin.handoff import DRAIN_TTL, Envelope
from plugin.importing.importer import is_importing
from plugin.pipeline import process_envelope, process_envelopes

log = logging.getLogger("keepwell.worker")

DRAIN_BUDGET_S = 20  # then the drain re-enqueues itself, so other shops get their turn
BATCH = 50  # entries per transaction
MAX_ENVELOPE_ATTEMPTS = 5
LOCK_EXTEND_S = 30.0
IMPORT_WAIT_S = 15

# Up to ARGV[1] entries from the head of KEYS[1] to the tail of KEYS[2], in one step.
_TAKE = """
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
  redis.call('RPUSH', KEYS[2], unpack(items))
  redis.call('LTRIM', KEYS[1], #items, -1)
end
return items
"""


class _List:
    """A list a drain works through: the shop's backlog, or one of its lanes."""

    def __init__(self, rt, shop_id: str, lane: int | None):
        keys = rt.handoff.keys(shop_id)
        own = keys if lane is None else keys.lane(lane)
        self.backlog, self.processing, self.draining = own.backlog, own.processing, own.draining
        self.lane = lane


def drain(rt, shop_id: str, budget_s: float = DRAIN_BUDGET_S) -> int:
    """Work through the shop's backlog (or split it into lanes); the number of entries handled."""
    return _drain(rt, shop_id, None, budget_s)


def drain_lane(rt, shop_id: str, lane: int, budget_s: float = DRAIN_BUDGET_S) -> int:
    """Work through one lane of the shop's backlog; the number of entries processed."""
    return _drain(rt, shop_id, lane, budget_s)


def _drain(rt, shop_id: str, lane: int | None, budget_s: float) -> int:
    own = _List(rt, shop_id, lane)
    if is_importing(rt, shop_id):
        # the shop's history is being folded in: live events wait for it (a loyal customer's
        # next order must not look like a first one), then go in order
        rt.redis.expire(own.draining, DRAIN_TTL)
        args = ("plugin.jobs.drain", shop_id) if lane is None else ("plugin.jobs.drain_lane", shop_id, lane)
        rt.queue.enqueue_in(timedelta(seconds=IMPORT_WAIT_S), *args, result_ttl=60)
        return 0
    lock = rt.redis.lock(f"{own.draining}:lock", timeout=DRAIN_TTL, blocking=False)
    if not lock.acquire():
        return 0  # another drain holds the list; it will see our items
    done = 0
    wait = None
    started = extended = time.monotonic()
    try:
        while time.monotonic() - started < budget_s:
            count = lanes.settle(rt, shop_id) if lane is None else 1
            if count > 1:
                n = lanes.split(rt, shop_id, count)
            else:
                n, wait = _batch(rt, shop_id, own)
            done += n
            if n == 0 or wait is not None:
                break  # empty, or the entry stays first in line until the store is ready
            if time.monotonic() - extended > LOCK_EXTEND_S:
                lock.extend(DRAIN_TTL, replace_ttl=True)
                extended = time.monotonic()
    finally:
        lock.release()
        if wait is not None:
            delays.resume_later(rt, shop_id, wait, lane)
        else:
            rt.redis.delete(own.draining)
            rt.handoff.ensure_drain(shop_id)
    return done


def _take(rt, own: _List) -> list[bytes]:
    """The entries a dead drain left in ``processing`` (first, again), else the next batch."""
    left = rt.redis.lrange(own.processing, 0, BATCH - 1)
    if left:
        return left
    return rt.redis.register_script(_TAKE)(keys=[own.backlog, own.processing], args=[BATCH])


def _batch(rt, shop_id: str, own: _List) -> tuple[int, float | None]:
    """Process the next batch of ``own``; (entries handled, seconds to wait for the store or None)."""
    raws = _take(rt, own)
    if not raws:
        return 0, None
    crash.point("taken")
    envs: list[Envelope] = []
    for raw in raws:
        try:
            envs.append(Envelope.decode(raw))
        except ValueError:
            break
    waited = [int(x or 0) for x in rt.redis.hmget(delays.key(rt, shop_id), [e.key for e in envs])] if envs else []
    if len(envs) == len(raws) > 1 and not any(waited):
        try:
            process_envelopes(rt, shop_id, envs)
        except Exception as exc:  # one of them, most likely: each goes alone now, in order
            log.warning("shop %s: a batch of %d failed (%s: %s); one at a time", shop_id, len(envs),
                        type(exc).__name__, exc)
        else:
            crash.point("acted")
            pipe = rt.redis.pipeline(transaction=False)
            pipe.ltrim(own.processing, len(raws), -1)
            pipe.expire(own.draining, DRAIN_TTL)
            pipe.execute()
            crash.point("trimmed")
            return len(raws), None
    for n, raw in enumerate(raws):
        wait = _process_safely(rt, shop_id, raw)
        if wait is not None:
            return n, wait
        pipe = rt.redis.pipeline(transaction=False)
        pipe.lpop(own.processing)
        pipe.expire(own.draining, DRAIN_TTL)
        pipe.execute()
    return len(raws), None


def _process_safely(rt, shop_id: str, raw: bytes) -> float | None:
    """Process one envelope; a malformed one is dead-lettered at once instead of blocking the
    shop, one that keeps failing after MAX_ENVELOPE_ATTEMPTS tries. Returns the seconds to wait
    when the store asked to be called again later."""
    keys = rt.handoff.keys(shop_id)
    try:
        env = Envelope.decode(raw)
    except ValueError as exc:
        log.error("shop %s: undecodable backlog entry dead-lettered", shop_id)
        rt.handoff.dead_letter(shop_id, raw, f"undecodable backlog entry: {exc}")
        return None
    waited = delays.delays_so_far(rt, shop_id, env.key)
    try:
        if waited >= delays.MAX_DELAYS:
            with fallback_allowed():  # the last try: what the store still cannot say is marked as such
                process_envelope(rt, shop_id, env)
        else:
            process_envelope(rt, shop_id, env)
    except StoreError as exc:
        if not exc.retryable or waited >= delays.MAX_DELAYS:
            return _failed(rt, shop_id, env, raw, exc)
        return delays.delay(rt, shop_id, env.key, exc)
    except PayloadError as exc:
        log.error("shop %s: %s %s refused: %s", shop_id, env.platform, env.topic, exc)
        rt.handoff.dead_letter(shop_id, raw, f"refused: {exc}")
        rt.redis.hdel(keys.attempts, env.key)
        delays.done(rt, shop_id, env.key)
    except Exception as exc:
        return _failed(rt, shop_id, env, raw, exc)
    if waited:
        delays.done(rt, shop_id, env.key)
    return None


def _failed(rt, shop_id: str, env: Envelope, raw: bytes, exc: Exception) -> None:
    """Called in an ``except`` block: count a failure; the last one dead-letters the envelope."""
    keys = rt.handoff.keys(shop_id)
    attempts = rt.redis.hincrby(keys.attempts, env.key, 1)
    if attempts >= MAX_ENVELOPE_ATTEMPTS:
        log.exception("shop %s: %s failed %d times; dead-lettered", shop_id, env.key, attempts)
        rt.handoff.dead_letter(shop_id, raw, f"failed {attempts} times: {type(exc).__name__}: {exc}")
        rt.redis.hdel(keys.attempts, env.key)
        delays.done(rt, shop_id, env.key)
        return None
    raise  # RQ retries the drain with backoff; the entry stays first in line


__all__ = ["BATCH", "DRAIN_BUDGET_S", "MAX_ENVELOPE_ATTEMPTS", "drain", "drain_lane"]

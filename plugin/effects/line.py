"""Effects off the drain: the drain decides and records, the shop's effect runners act.

``dispatch(rt, shop_id, touches)`` appends the keys of touches just recorded to the shop's effect
line in Redis (a list) and arms the shop's runner jobs: one Redis round trip, so deciding never
waits for a store. A runner (``run``, the RQ job ``plugin.jobs.run_effects``) takes touches off
the line with a few threads, each holding one of the shop's slots (``slots``) for the touch, and
runs each touch's effects in order (``runner.execute``). A shop has ``ceil(slots / THREADS)``
runners, each its own job, so its touches spread over worker processes; the slots bound what
reaches the store at once, retries included.

Exactly once: a touch moves from the line to its runner's ``running`` list while it runs. A
runner whose job failed (our database down) is retried by RQ with backoff, as a drain is; one
that died leaves its touches there, and the next runner with that number puts them back first in
line (its lock and armed flag expire, and the tick arms it again). Running a touch twice is harmless:
the exec lock and the effect rows make the second run skip what is done.

Order: a touch's own effects run in order (the coupon before the email that shows it). Touches
of one customer may run side by side: none reads what another's effects made (an email reads the
customer's state and unsubscribe at send time, a signal goes through the backlog, which orders
it); the one shared store record, WooCommerce's tags meta, is read-modified-written under a
per-customer lock in its connector.
"""
from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor

import connectors
from plugin.effects.retry import OUTAGES
from plugin.effects.runner import execute
from plugin.effects.slots import Slots, slots_of
from plugin.handoff import RETRY

log = logging.getLogger("keepwell.effects")

#: Threads of one runner job (touches it runs at once, each holding a slot).
THREADS = 8
#: A runner takes new touches for this long, then hands its worker back (other shops, drains).
RUN_BUDGET_S = 5.0
#: A runner's lock and armed flag: a runner that died is replaced after this.
RUNNER_TTL_S = 300
#: How long a lane waits for a slot that retries hold before it tries again.
SLOT_POLL_S = 0.05

# KEYS: line, armed flags (n), running lists (n); ARGV: n, ttl, threads per runner, touch keys...
# Returns the runner numbers to enqueue (their armed flag was down).
_DISPATCH = """
local n, ttl, per = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
for i = 4, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
local waiting = redis.call('LLEN', KEYS[1])
local out = {}
for i = 0, n - 1 do
  local busy = redis.call('LLEN', KEYS[2 + n + i])
  if (waiting > i * per or busy > 0) and redis.call('SET', KEYS[2 + i], '1', 'NX', 'EX', ttl) then
    table.insert(out, i)
  end
end
return out
"""


class Keys:
    def __init__(self, prefix: str, shop_id: str):
        base = f"{prefix}:{{{shop_id}}}:effects"  # hash tag: one cluster slot per shop
        self.line = base
        self.slots = f"{base}:slots"
        self._base = base

    def armed(self, n: int) -> str:
        return f"{self._base}:runner:{n}:armed"

    def lock(self, n: int) -> str:
        return f"{self._base}:runner:{n}:lock"

    def running(self, n: int) -> str:
        return f"{self._base}:runner:{n}:running"


def keys(rt, shop_id: str) -> Keys:
    return Keys(rt.config.queue, shop_id)


def shop_slots(rt, shop_id: str) -> Slots:
    shop = rt.shop(shop_id)
    size = slots_of(connectors.get(shop.platform)) if shop is not None else 1
    return Slots(rt.redis, keys(rt, shop_id).slots, size)


def runners(slots: Slots) -> int:
    return math.ceil(slots.size / THREADS)


def dispatch(rt, shop_id: str, touches) -> int:
    """Queue the touches' effects for the shop's runners; returns how many runner jobs it enqueued."""
    return _arm(rt, shop_id, list(touches)) if touches else 0


def ensure_runners(rt, shop_id: str) -> int:
    """Arm the runners a shop's waiting (or stranded) touches need; what the tick calls for every shop."""
    return _arm(rt, shop_id, [])


def _arm(rt, shop_id: str, touches: list) -> int:
    k, n = keys(rt, shop_id), runners(shop_slots(rt, shop_id))
    start = rt.redis.eval(_DISPATCH, 1 + 2 * n, k.line, *map(k.armed, range(n)), *map(k.running, range(n)),
                          n, RUNNER_TTL_S, THREADS, *touches)
    for i in start:
        rt.queue.enqueue("plugin.jobs.run_effects", shop_id, int(i), retry=RETRY, result_ttl=60,
                         failure_ttl=7 * 24 * 3600, description=f"effects {shop_id} #{int(i)}")
    return len(start)


def run(rt, shop_id: str, runner: int = 0, budget_s: float = RUN_BUDGET_S) -> int:
    """Runner ``runner`` of the shop: run touches off its line for ``budget_s``; returns how many ran."""
    k = keys(rt, shop_id)
    lock = rt.redis.lock(k.lock(runner), timeout=RUNNER_TTL_S, blocking=False)
    if not lock.acquire():
        return 0  # that runner is running; it will see the line
    ok, done = False, 0
    try:
        while rt.redis.lmove(k.running(runner), k.line, "RIGHT", "LEFT") is not None:
            pass  # a runner that died left these: first in line again
        slots = shop_slots(rt, shop_id)
        threads = min(THREADS, slots.size)
        deadline = time.monotonic() + budget_s
        with ThreadPoolExecutor(threads, thread_name_prefix=f"effects-{runner}") as pool:
            done = sum(pool.map(lambda _: _lane(rt, shop_id, k, runner, slots, deadline), range(threads)))
        ok = True
    finally:
        if lock.owned():
            lock.release()
        if ok:
            rt.redis.delete(k.armed(runner))
            ensure_runners(rt, shop_id)
        else:  # our database or Redis failed: RQ retries this job with backoff, the flag stays up meanwhile
            rt.redis.expire(k.armed(runner), RUNNER_TTL_S)
    return done


def _lane(rt, shop_id: str, k: Keys, runner: int, slots: Slots, deadline: float) -> int:
    """One thread of a runner: take a slot, then a touch, run it; until the line is empty or time is up."""
    done = 0
    while time.monotonic() < deadline:
        token = slots.take()
        if token is None:  # retries hold the shop's slots
            time.sleep(SLOT_POLL_S)
            continue
        try:
            raw = rt.redis.lmove(k.line, k.running(runner), "LEFT", "RIGHT")
            if raw is None:
                return done
            try:
                execute(rt, shop_id, raw.decode())
            except OUTAGES:
                raise  # our database or Redis: the touch stays in `running`, the next runner puts it back
            except Exception:  # a ledger row no code can run: logged, left pending for the tick's sweep
                log.exception("shop %s: touch %s could not be run", shop_id, raw.decode())
            rt.redis.lrem(k.running(runner), 1, raw)
            done += 1
        finally:
            slots.give(token)
    return done


def execute_now(rt, shop_id: str, key: str, wait_s: float = 10.0) -> str:
    """Run the touch in this job within the shop's slots (a retry that came due, a direct call);
    when none frees up in ``wait_s``, the touch joins the shop's line ("queued")."""
    slots = shop_slots(rt, shop_id)
    token = slots.wait(wait_s)
    if token is None:
        dispatch(rt, shop_id, [key])
        return "queued"
    try:
        return execute(rt, shop_id, key)
    finally:
        slots.give(token)

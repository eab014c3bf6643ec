"""Pacing a shop's GraphQL calls by Shopify's cost bucket, before Shopify throttles them.

Every answer carries ``extensions.cost.throttleStatus`` (``maximumAvailable``,
``currentlyAvailable``, ``restoreRate``) and the query's ``requestedQueryCost``. Both are kept in
Redis per shop, so every worker process and machine draws from the same picture of the bucket:
before a call, a Lua script refills the bucket for the time passed and takes the query's cost
(the last cost Shopify named for that operation). When the bucket cannot pay, the call waits
for the refill if that is short (``MAX_PACE_S``), else it is not sent at all and a retryable
StoreError names the wait, as a THROTTLED answer would have, without spending the store's points.

Without a Redis (a unit test, a replay) calls are not paced; Shopify's own THROTTLED answer is
then the only brake.
"""
from __future__ import annotations

import re
import time

from connectors import cache
from connectors.base import Shop
from plugin.errors import StoreError

#: Touches of one shop running at once (plugin.effects.slots): Shopify limits by cost, which the
#: bucket below paces, not by connections; this bounds the calls in flight and the database
#: connections the effect runners hold.
EFFECT_SLOTS = 16
#: Longest wait for the bucket spent sleeping in the job; longer ones go back to the worker.
MAX_PACE_S = 2.0
#: Cost assumed for an operation Shopify has not priced for this shop yet.
DEFAULT_COST = 50.0
BUCKET_TTL_S = 3600

_OPERATION = re.compile(r"\b(?:query|mutation)\s+(\w+)")

# KEYS[1] bucket hash; ARGV[1] operation name, ARGV[2] default cost. Returns "0" when the cost was
# taken, else the seconds until the bucket holds it. An unknown bucket lets the call through: its
# answer tells us the bucket.
_TAKE = """
local s = redis.call('HMGET', KEYS[1], 'available', 'maximum', 'rate', 'at', 'cost:' .. ARGV[1])
if not s[1] then return '0' end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local maximum, rate = tonumber(s[2]), tonumber(s[3])
local available = math.min(maximum, tonumber(s[1]) + math.max(0, now - tonumber(s[4])) * rate)
local cost = math.min(tonumber(s[5] or ARGV[2]), maximum)
if available >= cost then
  redis.call('HSET', KEYS[1], 'available', tostring(available - cost), 'at', tostring(now))
  return '0'
end
if rate <= 0 then return tostring(60) end
return tostring((cost - available) / rate)
"""

# KEYS[1] bucket hash; ARGV: operation, requested cost (or ''), maximum, available, rate.
_SEEN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('HSET', KEYS[1], 'maximum', ARGV[3], 'available', ARGV[4], 'rate', ARGV[5], 'at', tostring(now))
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'cost:' .. ARGV[1], ARGV[2]) end
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
"""


def operation(query: str) -> str:
    """The operation name of a GraphQL document (``KeepwellOrdersSince``), or ``anonymous``."""
    m = _OPERATION.search(query)
    return m.group(1) if m else "anonymous"


def _bucket(shop: Shop) -> str:
    return f"{cache.prefix()}:{{{shop.id}}}:shopify-cost-bucket"


def before(shop: Shop, op: str, sleep=time.sleep) -> None:
    """Take the operation's cost from the shop's bucket, waiting briefly for a refill; a retryable
    StoreError (code ``PACED``) when the wait is too long to spend in this job."""
    redis = cache.redis()
    if redis is None:
        return
    for _ in range(3):
        wait = float(redis.eval(_TAKE, 1, _bucket(shop), op, DEFAULT_COST))
        if wait <= 0:
            return
        if wait > MAX_PACE_S:
            break
        sleep(wait)
    raise StoreError(f"the shop's Shopify cost bucket needs {wait:.1f} s to refill before {op}", retryable=True,
                     retry_after=round(wait, 3), code="PACED")


def after(shop: Shop, op: str, body) -> None:
    """Remember what the answer said about the shop's bucket and the operation's cost."""
    redis = cache.redis()
    if redis is None or not isinstance(body, dict):
        return
    try:
        cost = body["extensions"]["cost"]
        status = cost["throttleStatus"]
        numbers = [float(status["maximumAvailable"]), float(status["currentlyAvailable"]), float(status["restoreRate"])]
    except (KeyError, TypeError, ValueError):
        return
    requested = cost.get("requestedQueryCost")
    redis.eval(_SEEN, 1, _bucket(shop), op, "" if requested is None else str(float(requested)),
               *map(str, numbers), BUCKET_TTL_S)

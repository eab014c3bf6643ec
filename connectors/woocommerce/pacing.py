"""How hard Keepwell leans on a WooCommerce store: a few calls at a time, and one writer per customer's tags.

A WooCommerce store is one WordPress site, often on shared hosting, with no published rate limit:
its PHP workers are the limit. ``EFFECT_SLOTS`` touches of one shop run at once (the effect
runners' semaphore, plugin.effects.slots); a 429 or 503 with ``Retry-After`` is honoured by the
one retry policy. Tags live in one customer meta entry that is read, merged and written back
(``tags.add_tag``): ``customer_lock`` keeps two touches of one customer from overwriting each
other's tag, in every worker process (a Redis lock; without a Redis, a unit test, no lock).
"""
from __future__ import annotations

from contextlib import contextmanager

from connectors import cache
from connectors.base import Shop
from plugin.errors import StoreError

#: Touches of one WooCommerce shop running at once.
EFFECT_SLOTS = 4
#: Longest a customer's tag update may take (GET + PUT, 35 s each at most) before the lock lapses.
TAG_LOCK_S = 75


@contextmanager
def customer_lock(shop: Shop, customer_id: str):
    """Held while the customer's tags meta is read, merged and written back."""
    redis = cache.redis()
    if redis is None:
        yield
        return
    lock = redis.lock(f"{cache.prefix()}:{{{shop.id}}}:woo-tags:{customer_id}", timeout=TAG_LOCK_S,
                      blocking_timeout=TAG_LOCK_S)
    if not lock.acquire():
        raise StoreError(f"WooCommerce customer {customer_id}: another tag update is still running", retryable=True,
                         retry_after=5.0, code="keepwell_tags_busy")
    try:
        yield
    finally:
        if lock.owned():
            lock.release()

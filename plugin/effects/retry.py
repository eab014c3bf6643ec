"""The one retry policy for effects: ``retry_policy(exc, attempts) -> Retry | GiveUp``.

A store or mail server that says "later" (429, 5xx, timeouts, throttling, SMTP down) is retried
with backoff, honouring the wait it named, up to MAX_EFFECT_ATTEMPTS; any other failure gives the
touch up with the store's message. A template error waits for a fixed template: given up. Anything
else (a bug, a malformed store answer, data no check foresaw) gives up too, marked unexpected so it
is logged with its traceback; one bad customer must not stop a drain. Only our own services being
down (OUTAGES: database, Redis) are no effect's failure: they propagate, and the job is retried.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError

from plugin import mail
from plugin.errors import DeliveryError, StoreError
from plugin.handoff import job_id

#: Our own services failing: the job is retried, the touch is not given up.
OUTAGES = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError)
MAX_EFFECT_ATTEMPTS = 8
#: Retries that wait exactly what the store named (Retry-After, its cost bucket's refill); a store
#: that keeps answering "later" then gets the growing backoff, so the attempts span hours.
STORE_WAIT_ATTEMPTS = 3


@dataclass(frozen=True)
class Retry:
    delay: float  # seconds
    reason: str


@dataclass(frozen=True)
class GiveUp:
    reason: str
    unexpected: bool = False  # not a failure any check foresaw: logged with its traceback


def backoff(attempts: int, retry_after: float | None) -> float:
    """Seconds before try ``attempts + 1``: the store's own figure for the first few, then growing."""
    if retry_after is not None and attempts <= STORE_WAIT_ATTEMPTS:
        return min(3600.0, max(retry_after, 1.0))
    return max(retry_after or 0.0, min(3600.0, 5.0 * 3 ** (attempts - 1)))


def retry_policy(exc: Exception, attempts: int) -> Retry | GiveUp:
    """What to do after an effect raised ``exc`` on its ``attempts``-th try."""
    if isinstance(exc, (StoreError, DeliveryError)):
        if exc.retryable and attempts < MAX_EFFECT_ATTEMPTS:
            return Retry(backoff(attempts, getattr(exc, "retry_after", None)), exc.message)
        return GiveUp(exc.message)
    if isinstance(exc, mail.TemplateError):  # names its template and line
        return GiveUp(str(exc))
    return GiveUp(f"{type(exc).__name__}: {exc}", unexpected=True)


def retry_later(rt, shop_id: str, key: str, attempts: int, delay: float) -> None:
    """Run the touch's pending effects again in ``delay`` seconds (one job per attempt)."""
    rt.queue.enqueue_in(timedelta(seconds=delay), "plugin.jobs.execute", shop_id, key,
                        job_id=f"exec-{job_id(shop_id, key, str(attempts))}", result_ttl=60)

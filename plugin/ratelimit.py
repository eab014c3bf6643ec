"""A fixed-window request counter per client address, in Redis (shared by every web process)."""
from __future__ import annotations

import time


def hit(redis, prefix: str, name: str, client: str | None, limit: int, window_s: int) -> int:
    """Count one request of ``client`` to ``name``; 0 while within ``limit`` per ``window_s``
    seconds, else the seconds until the window ends (for Retry-After)."""
    window = int(time.time()) // window_s
    key = f"{prefix}:ratelimit:{name}:{client or '-'}:{window}"
    pipe = redis.pipeline(transaction=True)
    pipe.incr(key)
    pipe.expire(key, window_s)
    count, _ = pipe.execute()
    if count <= limit:
        return 0
    return max(1, (window + 1) * window_s - int(time.time()))

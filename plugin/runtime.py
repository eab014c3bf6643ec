"""Building the long-lived parts (database sessions, Redis, the worker Runtime) from Config."""
from __future__ import annotations

from functools import lru_cache

from redis import Redis

from plugin.config import Config
from plugin.db import sessions


@lru_cache(maxsize=8)
def redis_client(url: str, timeout: float | None = None) -> Redis:
    """The process's client for ``url``; ``timeout``: seconds to wait for a connection or an
    answer before redis-py raises (the web app's, so a Redis stall does not hold its workers);
    None: redis-py's defaults."""
    if timeout is None:
        return Redis.from_url(url)
    return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


@lru_cache(maxsize=8)
def _runtime(config: Config):
    from plugin.pipeline import Runtime

    # no pre-ping per checkout: a dropped connection fails the job, which RQ retries on a fresh one
    return Runtime(config=config, sessions=sessions(config.database_url, pre_ping=False),
                   redis=redis_client(config.redis_url))


_installed = None


def install(rt) -> None:
    """Make ``rt`` the Runtime jobs use in this process (tests, embedded demo); None resets."""
    global _installed
    _installed = rt
    if rt is None:
        from connectors import cache

        cache.bind(None)  # back to per-process caches until the next Runtime


def runtime(config: Config | None = None):
    """The process-wide Runtime: the installed one, else one for ``config`` (default: the environment)."""
    if _installed is not None and config is None:
        return _installed
    return _runtime(config or Config.from_env())

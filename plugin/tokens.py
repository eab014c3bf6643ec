"""Shopify offline access tokens kept valid for every process that calls a shop.

An expiring token lasts an hour. It is refreshed a few minutes before it expires, and again
when Shopify answers 401, by one process per shop at a time: a Redis lock serialises the
refresh across web and worker processes on every machine, and whoever gets the lock second
finds the new token already stored and uses it. Access and refresh token are written together,
in the shop's credentials document (encrypted), in one transaction; until that write the old refresh
token stays stored, and Shopify keeps accepting it until the new access token is used, so a
refresh whose answer was lost (a timeout, a crash, a failed write) is simply made again.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from functools import lru_cache

from redis.exceptions import LockError

from connectors.base import Shop
from connectors.shopify import grants
from plugin import secrets
from plugin.config import Config
from plugin.errors import StoreError

log = logging.getLogger("keepwell.tokens")

#: Refresh when the token has less than this left: a job started now still finishes with it.
REFRESH_MARGIN_S = 300
#: A refresh is one HTTP call (grants.TIMEOUT is 5 s to connect, 30 s to read).
LOCK_TTL_S = 60
LOCK_WAIT_S = 45

TOKEN_FIELDS = ("access_token", "access_token_expires_at", "refresh_token", "refresh_token_expires_at")


def stored_fields(grant: grants.Grant) -> dict:
    """The shop credentials a grant replaces: a non-expiring token clears any old refresh token."""
    return {"access_token": grant.access_token, "access_token_expires_at": grant.expires_at,
            "refresh_token": grant.refresh_token, "refresh_token_expires_at": grant.refresh_token_expires_at}


def expiring(stored: dict) -> bool:
    """True when the stored token is an expiring one (it has a refresh token)."""
    return bool(stored.get("refresh_token"))


def app_installed(settings: dict | None) -> bool:
    """True for a shop installed through Keepwell's app (OAuth or managed install), which records
    the scopes it was granted. Shops added with a custom app's token (`keepwell shop add`) are
    not: Shopify exempts custom apps from expiring tokens."""
    return "scopes" in (settings or {})


def on_legacy_token(row, config: Config) -> bool:
    """An active, app-installed Shopify shop still holding a non-expiring offline token."""
    return (row.platform == "shopify" and row.active and app_installed(row.settings)
            and not expiring(secrets.decrypt(config.secret_keys, row.secrets).get("credentials", {})))


@lru_cache(maxsize=8)
def keeper(config: Config) -> "TokenKeeper":
    """The process's keeper for ``config`` (its Redis and database are opened on first use)."""
    return TokenKeeper(config)


class TokenKeeper:
    """Hands out a valid access token for a Shopify shop, refreshing it when needed."""

    def __init__(self, config: Config, redis=None, sessions=None, clock=time.time):
        self.config, self._redis, self._sessions, self.clock = config, redis, sessions, clock

    @property
    def redis(self):
        if self._redis is None:
            from plugin.runtime import redis_client

            self._redis = redis_client(self.config.redis_url)
        return self._redis

    @property
    def sessions(self):
        if self._sessions is None:
            from plugin.db import sessions

            self._sessions = sessions(self.config.database_url)
        return self._sessions

    # --- what the API client asks --------------------------------------------------------------

    def access_token(self, shop: Shop) -> str:
        """``shop``'s access token, refreshed first if it expires within REFRESH_MARGIN_S."""
        held = shop.credentials.get("access_token", "")
        expires_at = shop.credentials.get("access_token_expires_at")
        if expires_at is None or expires_at - self.clock() > REFRESH_MARGIN_S:
            return held
        return self._renew(shop, held, forced=False) or held

    def after_unauthorized(self, shop: Shop, rejected: str) -> str | None:
        """A token to retry with after Shopify refused ``rejected`` (401), or None when there is
        none: the stored one if another process already replaced it, else a refreshed one."""
        return self._renew(shop, rejected, forced=True)

    # --- the refresh, one per shop at a time ---------------------------------------------------

    @contextmanager
    def _locked(self, shop_id: str):
        """Hold the shop's refresh lock (every process, every machine sharing the Redis)."""
        lock = self.redis.lock(f"{self.config.queue}:token-refresh:{shop_id}", timeout=LOCK_TTL_S,
                               blocking_timeout=LOCK_WAIT_S)
        if not lock.acquire():
            raise StoreError(f"shop {shop_id}: another process has been refreshing its Shopify token for "
                             f"{LOCK_WAIT_S} s", retryable=True, code="TOKEN_REFRESH_BUSY")
        try:
            yield
        finally:
            try:
                lock.release()
            except LockError:
                pass  # it outlived LOCK_TTL_S; the token was stored before anyone else could refresh

    def _renew(self, shop: Shop, stale: str, forced: bool) -> str | None:
        with self._locked(shop.id):
            stored = self._stored(shop.id)
            current = stored.get("access_token") or ""
            if current and current != stale and not self._due(stored):
                return current  # another process refreshed (or the shop reinstalled) meanwhile
            if not expiring(stored):
                return current if current != stale else None  # nothing to refresh it with
            if not forced and not self._due(stored):
                return current
            return self._refresh(shop, stored)

    def _due(self, stored: dict) -> bool:
        expires_at = stored.get("access_token_expires_at")
        return expires_at is not None and expires_at - self.clock() <= REFRESH_MARGIN_S

    def _refresh(self, shop: Shop, stored: dict) -> str:
        refresh_expires = stored.get("refresh_token_expires_at")
        if refresh_expires is not None and refresh_expires <= self.clock():
            raise StoreError(f"shop {shop.id}: its Shopify refresh token expired; the merchant has to open "
                             "Keepwell from the Shopify admin once to reconnect", retryable=False,
                             code="REFRESH_TOKEN_EXPIRED")
        config = self.config
        try:
            grant = grants.refresh(shop.domain, config.shopify_api_key, config.shopify_api_secrets[0],
                                   stored["refresh_token"], self.clock())
        except StoreError as exc:
            log.error("shop %s: token refresh failed (%s): %s", shop.id, exc.code, exc.message)
            raise
        self.save(shop.id, grant)
        log.info("shop %s: access token refreshed, valid until %s", shop.id,
                 time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(grant.expires_at or 0)))
        return grant.access_token

    # --- storage -------------------------------------------------------------------------------

    def _stored(self, shop_id: str) -> dict:
        from plugin.db import ShopRow

        with self.sessions() as session:
            row = session.get(ShopRow, shop_id)
            if row is None:
                raise StoreError(f"shop {shop_id} is no longer connected", retryable=False, code="SHOP_GONE")
            return secrets.decrypt(self.config.secret_keys, row.secrets).get("credentials", {})

    def save(self, shop_id: str, grant: grants.Grant) -> None:
        """Store ``grant`` as the shop's token pair, both tokens in one write."""
        from plugin.db import ShopRow

        with self.sessions.begin() as session:
            row = session.get(ShopRow, shop_id)
            stored = secrets.decrypt(self.config.secret_keys, row.secrets)
            stored["credentials"] = {**stored.get("credentials", {}), **stored_fields(grant)}
            row.secrets = secrets.encrypt(self.config.secret_keys, stored)
            if grant.scopes:
                row.settings = {**(row.settings or {}), "scopes": list(grant.scopes)}

    def migrate(self, shop: Shop) -> grants.Grant:
        """Trade the shop's non-expiring token for an expiring one (no merchant needed); a lost
        answer is recovered by asking again with the same old token."""
        with self._locked(shop.id):
            stored = self._stored(shop.id)
            if expiring(stored):
                return grants.Grant(stored["access_token"], (), stored.get("access_token_expires_at"),
                                    stored["refresh_token"], stored.get("refresh_token_expires_at"))
            grant = grants.migrate_offline_token(shop.domain, self.config.shopify_api_key,
                                                 self.config.shopify_api_secrets[0], stored.get("access_token", ""),
                                                 self.clock())
            self.save(shop.id, grant)
            return grant


def migrate_all(config: Config) -> list[tuple[str, str, str | None]]:
    """Move every active Shopify shop still on a non-expiring token to an expiring one:
    (shop id, domain, None when done or the error that stopped it)."""
    from sqlalchemy import select

    from plugin.db import ShopRow
    from plugin.shops import to_shop

    kept = keeper(config)
    with kept.sessions() as session:
        rows = session.scalars(select(ShopRow).where(ShopRow.platform == "shopify", ShopRow.active)
                               .order_by(ShopRow.created_at, ShopRow.id)).all()
        shops = [to_shop(row, config) for row in rows if on_legacy_token(row, config)]
    results = []
    for shop in shops:
        try:
            kept.migrate(shop)
            results.append((shop.id, shop.domain, None))
        except StoreError as exc:
            results.append((shop.id, shop.domain, exc.message))
    return results

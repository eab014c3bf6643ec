"""A short-lived in-process cache of shops for the edge: no database query per webhook."""
from __future__ import annotations

import time
from datetime import datetime, timezone

from sqlalchemy import select

from connectors.base import Shop
from plugin.db import ShopRow
from plugin.shops import to_shop

TTL_S = 30.0
MAX_ENTRIES = 10_000


class ShopCache:
    def __init__(self, sessions, config, ttl: float = TTL_S):
        self.sessions, self.config, self.ttl = sessions, config, ttl
        self._entries: dict = {}

    def _lookup(self, cache_key, query) -> Shop | None:
        # ``query`` builds the statement: only on a miss, since building one costs more than a hit
        hit = self._entries.get(cache_key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        with self.sessions() as session:
            row = session.scalar(query())
            shop = to_shop(row, self.config) if row is not None and row.active else None
        if len(self._entries) >= MAX_ENTRIES:  # unsigned requests naming random shops must not grow it
            self._entries.clear()
        self._entries[cache_key] = (now, shop)
        return shop

    def get(self, platform: str, domain: str) -> Shop | None:
        """The active shop of ``platform`` at ``domain``, or None."""
        return self._lookup((platform, domain),
                            lambda: select(ShopRow).where(ShopRow.platform == platform, ShopRow.domain == domain))

    def by_id(self, platform: str, shop_id: str) -> Shop | None:
        return self._lookup((platform, "id", shop_id),
                            lambda: select(ShopRow).where(ShopRow.platform == platform, ShopRow.id == shop_id))

    def find(self, platform: str, ref) -> Shop | None:
        """The active shop a delivery's ``connectors.interfaces.ShopRef`` names, or None."""
        if ref.by == "id":
            return self.by_id(platform, ref.value)
        return self.get(platform, ref.value)

    def forget(self) -> None:
        """Drop every cached shop (one was installed or changed): the next lookup reads the database."""
        self._entries.clear()

    def uninstall(self, shop_id: str, settings: dict | None = None) -> None:
        """Stop processing the shop and drop its credentials (the platform already revoked them);
        ``settings`` are kept with it (e.g. the platform's own id of the shop, which a later
        privacy request must carry)."""
        from plugin import secrets
        from plugin.page_links import revoke as revoke_pages

        with self.sessions.begin() as session:
            row = session.get(ShopRow, shop_id)
            if row is not None:
                stored = secrets.decrypt(self.config.secret_keys, row.secrets)
                stored["credentials"] = {}
                row.secrets = secrets.encrypt(self.config.secret_keys, stored)
                row.active = False
                revoke_pages(session, shop_id, datetime.now(timezone.utc))  # no personal page outlives the install
                if settings:
                    row.settings = {**(row.settings or {}), **settings}
        self._entries.clear()

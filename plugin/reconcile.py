"""Reconciliation: WooCommerce never retries a failed webhook and Shopify gives up after four
hours, so each shop's recent changes are fetched through the store API and fed through the same
backlog as webhooks. Deliveries already seen are deduped; the ledger guards the rest. Webhooks a
store disabled after failed deliveries (WooCommerce does after 5) are set active again first."""
from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import timedelta

import connectors
from plugin.db import ShopRow
from plugin.errors import StoreError
from plugin.handoff import Envelope
from plugin.shops import to_shop

log = logging.getLogger("keepwell.reconcile")
OVERLAP = timedelta(minutes=10)  # re-read a little of the last window: clocks and commits lag


def reconcile_shop(rt, shop_id: str) -> int:
    """Queue every order/customer changed since the last sync; returns how many were new."""
    started = rt.clock()
    with rt.sessions() as session:
        row = session.get(ShopRow, shop_id)
        if row is None or not row.active:
            return 0
        shop = to_shop(row, rt.config)
        since = (row.last_sync_at or started - timedelta(days=1)) - OVERLAP
    connector = connectors.get(shop.platform)
    revive = getattr(connector, "revive_webhooks", None)
    if revive is not None:
        try:
            revived = revive(shop, rt.config.app_url)
        except StoreError as exc:  # the store's own answer decides nothing here: poll all the same
            log.warning("shop %s: could not check its webhooks: %s", shop_id, exc.message)
        else:
            if revived:
                log.warning("shop %s: the store had disabled %d Keepwell webhook(s) after failed deliveries; "
                            "they are active again", shop_id, len(revived))
    queued = 0
    for topic, payload in connector.changes_since(shop, since):
        body = json.dumps(payload, sort_keys=True)
        # the same resource in the same state is the same delivery, whatever the platform's fields
        key = f"reconcile:{topic}:{hashlib.sha256(body.encode()).hexdigest()[:32]}"
        env = Envelope(shop.platform, topic, key, time.time(), body)
        queued += rt.handoff.push(shop_id, env)
    with rt.sessions.begin() as session:
        session.get(ShopRow, shop_id).last_sync_at = started
    log.info("shop %s: reconciliation queued %d changes since %s", shop_id, queued, since.isoformat())
    return queued

"""Coupon effects: the discount code created in the store, under the code the engine derived."""
from __future__ import annotations

import logging
from dataclasses import replace

from plugin.effects.registry import Job, register
from plugin.engine.actions import Coupon

log = logging.getLogger("keepwell.effects")


def create(job: Job, action: Coupon, eff) -> None:
    result = job.connector.create_coupon(job.shop, action)
    eff.coupon_code, eff.store_id = result.code, result.store_id
    job.made[Coupon.type] = replace(action, code=result.code)
    if result.conflict:  # done under another code: the ledger keeps why
        log.warning("shop %s: coupon for %s: %s", job.shop.id, job.decision.key, result.conflict)
        eff.status, eff.error = "done", result.conflict


def resume(job: Job, action: Coupon, eff) -> None:
    """An earlier attempt made the coupon: later effects show it under the code the store took."""
    job.made[Coupon.type] = replace(action, code=eff.coupon_code)


register(Coupon.type, run=create, resume=resume)

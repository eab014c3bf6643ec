"""Tag effects: the customer tagged in the store (Keepwell's own state got the tag when the touch was decided)."""
from __future__ import annotations

from plugin.effects.registry import Job, register
from plugin.engine.actions import Tag


def add(job: Job, action: Tag, eff) -> None:
    job.connector.add_tag(job.shop, job.decision.customer_id, action)


register(Tag.type, run=add)

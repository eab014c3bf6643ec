"""Tier effects: none outside. A tier lives in Keepwell's customer state, set when the touch was
decided; a rule that wants the store to know adds a tag action."""
from __future__ import annotations

from plugin.effects.registry import Job, register
from plugin.engine.actions import Tier


def kept(job: Job, action: Tier, eff) -> None:
    """Nothing to do: the customer's state has the tier already."""


register(Tier.type, run=kept)

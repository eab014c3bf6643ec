"""A touch's effects: a runner, a registry {action type: handler} and one retry policy.

``run(rt, shop_id, key)`` runs a touch's pending effects (``runner``). Each action type of
``plugin.engine.actions`` has one handler module here, which registers itself (``registry``);
``retry_policy`` decides what a failed effect's exception means (``retry``). A new channel is one
handler module imported below, its action in the engine and schema, and its tests.
"""
from plugin.effects import coupon, email, signal, sms, tag, tier  # noqa: F401  (each registers its handler)
from plugin.effects.registry import HANDLERS, Handler, Job, register
from plugin.effects.retry import MAX_EFFECT_ATTEMPTS, GiveUp, Retry, retry_policy
from plugin.effects.runner import run

__all__ = ["run", "HANDLERS", "Handler", "Job", "register", "retry_policy", "Retry", "GiveUp", "MAX_EFFECT_ATTEMPTS"]

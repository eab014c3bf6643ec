"""A touch's effects: a runner, a registry {action type: handler} and one retry policy.

``run(rt, shop_id, key)`` runs a touch's pending effects (``runner``); ``dispatch(rt, shop_id,
touches)`` hands new touches to the shop's effect runners, jobs of their own (``line``). Each action type of
``plugin.engine.actions`` has one handler module here, which registers itself (``registry``);
``retry_policy`` decides what a failed effect's exception means (``retry``). A new channel is one
handler module imported below, its action in the engine and schema, and its tests.
"""
from plugin.effects import coupon, email, signal, sms, tag, tier  # noqa: F401  (each registers its handler)
from plugin.effects.registry import HANDLERS, Handler, Job, register
from plugin.effects.retry import MAX_EFFECT_ATTEMPTS, GiveUp, Retry, retry_policy
from plugin.effects.runner import execute, run
from plugin.effects.line import dispatch, ensure_runners, execute_now, run as run_line

__all__ = ["run", "execute", "dispatch", "ensure_runners", "execute_now", "run_line", "HANDLERS", "Handler", "Job", "register", "retry_policy", "Retry", "GiveUp", "MAX_EFFECT_ATTEMPTS"]

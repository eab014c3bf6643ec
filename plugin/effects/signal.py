"""Signal effects: the event passed on to another customer (the referrer) through the shop's backlog."""
from __future__ import annotations

from plugin.effects.registry import Job, register
from plugin.engine.actions import Signal
from plugin.events import Event, event_to_dict


def send(job: Job, action: Signal, eff) -> None:
    if not action.customer_id:
        return  # nobody to pass it to (the friend was referred by no one we know)
    shop_id = job.shop.id
    signal = Event(id=action.key, type=action.event, shop=shop_id, customer_id=action.customer_id,
                   occurred_at=job.rt.clock(), data=action.data)
    job.rt.handoff.push_event(shop_id, event_to_dict(signal))


register(Signal.type, run=send)

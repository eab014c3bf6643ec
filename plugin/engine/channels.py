"""Channels a customer answers on: which channel each of their coupons went out on, and how often
they answered each channel's messages (a personal page opened, a coupon redeemed)."""
from __future__ import annotations

from typing import Any


def coupon_channels(actions: Any) -> dict[str, str]:
    """A touch's personal coupon codes (lower case, as orders carry them) -> its message's channel."""
    types = {a.type for a in actions}
    channel = "sms" if "sms" in types else "email" if "email" in types else None
    if channel is None:
        return {}
    return {a.code.lower(): channel for a in actions if a.type == "coupon" and getattr(a, "customer_id", None)}


def engagement(state: Any) -> dict[str, int]:
    """Per channel, how often the customer (a CustomerState) answered its messages: personal pages
    opened from them and their coupons redeemed in a paid order."""
    out = dict(state.channel_opens)
    for code in state.redeemed_codes:
        channel = state.coupon_channels.get(code)
        if channel is not None:
            out[channel] = out.get(channel, 0) + 1
    return out

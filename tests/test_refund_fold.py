"""A fully refunded order is no purchase, whatever order its events are folded in: not the first
order, not in the orders count or spend; a partly refunded one still is."""
from __future__ import annotations

from dataclasses import replace
from itertools import permutations

import pytest

from engine_helpers import day, order_paid, order_refunded, state_after
from plugin.engine.state import state_from_dict, state_to_dict


def _paid(order_id, at, total):
    return order_paid("c1", order_id, at, total=f"{total} USD")


@pytest.mark.parametrize("refunded, counts", [("40.00", False), ("15.00", True)])
def test_refund_before_or_after_paid_folds_the_same(refunded, counts):
    events = [_paid("o1", day(0), "40.00"),
              order_refunded("c1", "o1", day(3), total=f"{refunded} USD"),
              _paid("o2", day(10), "25.00")]
    states = [state_after(p) for p in permutations(events)]
    for s in states:
        assert s.orders_count == (2 if counts else 1)
        assert s.first_order_id == ("o1" if counts else "o2")
        assert s.total_spent.amount == (25 + (40 - float(refunded) if counts else 0))
        assert state_from_dict(state_to_dict(s)) == s


def test_the_stores_refunded_status_is_final():
    paid = _paid("o1", day(0), "40.00")
    reported = replace(paid, id="op-o1-later", order=replace(paid.order, fully_refunded=True))
    for order in permutations([reported, paid]):
        s = state_after(order)
        assert (s.orders_count, s.first_order_id, s.orders["o1"].refunded) == (0, None, True)

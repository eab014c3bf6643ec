"""How a shop's history import stands, in one line for the merchant (dashboard overview)."""
from __future__ import annotations


def describe(row) -> str | None:
    """One line on the store's history import (an ImportRow): how far it got, or how it ended."""
    if row is None:
        return None
    # an order changed while the import ran is read again: count the store's orders, not the reads
    orders = min(row.orders, row.total) if row.total else row.orders
    read = f"{row.customers:,} customers and {orders:,}" + (f" of {row.total:,}" if row.total else "") + " orders"
    if row.status == "running":
        return f"Importing the store's history: {read} so far."
    if row.status == "failed":
        return f"The history import stopped after {read}: {row.error} It continues where it stopped when run again."
    return (f"Store history imported: {read}, finished {row.finished_at:%Y-%m-%d %H:%M} UTC. "
            "Nothing was sent for the past.")

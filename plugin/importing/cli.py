"""``keepwell shop import``: a shop's history, imported by hand with a progress bar."""
from __future__ import annotations

import sys
from datetime import datetime, timedelta

import click

#: Shopify returns orders older than this only to apps granted read_all_orders.
SHOPIFY_RECENT = timedelta(days=60)


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    from plugin.events import parse_time

    try:
        return parse_time(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO date such as 2024-01-31", param_hint="--since") from None


@click.command("import")
@click.option("--shop", "shop_id", required=True, help="Shop id (see `keepwell shop list`).")
@click.option("--since", help="Only orders created from this ISO date (default: all the store gives).")
def import_command(shop_id, since):
    """Import the shop's customers (with their consent) and paid orders into Keepwell, acting on
    none of them; continues an import that stopped. Nothing is sent for the past."""
    from plugin.config import Config
    from plugin.db import ShopRow, upgrade
    from plugin.errors import UnknownShop
    from plugin.importing import run
    from plugin.runtime import runtime

    config = Config.from_env()
    upgrade(config.database_url)
    rt = runtime(config)
    start = _since(since)
    with rt.sessions() as session:
        row = session.get(ShopRow, shop_id)
        if row is None:
            raise click.ClickException(f"no shop {shop_id!r}: see `keepwell shop list`")
        scopes = (row.settings or {}).get("scopes")
        if row.platform == "shopify" and scopes is not None and "read_all_orders" not in scopes and \
                (start is None or start < rt.clock() - SHOPIFY_RECENT):
            click.echo("note: Shopify gives this app only the last 60 days of orders; for older history set "
                       "KEEPWELL_SHOPIFY_DEEP_HISTORY=1 and approve the read_all_orders access when the app asks "
                       "(reinstall it)", err=True)
    show = sys.stderr.isatty()
    with click.progressbar(length=1, label="importing", file=sys.stderr if show else None, hidden=not show,
                           show_pos=True) as bar:
        def progress(p):
            bar.length = max(p.total or 0, p.orders, 1)
            bar.pos = p.orders
            bar.label = f"{p.customers} customers, orders"
            bar.render_progress()

        try:
            result = run(rt, shop_id, start, wait=True, progress=progress)
        except UnknownShop as exc:
            raise click.ClickException(str(exc))
    if result.status == "busy":
        raise click.ClickException(f"shop {shop_id}: an import is already running")
    if result.status == "failed":
        raise click.ClickException(f"shop {shop_id}: import failed: {result.detail} (run the command again to "
                                   "continue where it stopped)")
    skipped = f", {result.skipped} malformed records skipped" if result.skipped else ""
    orders = min(result.orders, result.total) if result.total else result.orders  # re-reads counted once
    click.echo(f"shop {shop_id}: imported {result.customers} customers and {orders} orders{skipped}; "
               f"{result.detail}; nothing was sent for the past")


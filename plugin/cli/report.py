"""`keepwell report`: what a shop's touches earned."""
from __future__ import annotations

import json

import click

from plugin.cli.common import load_config


@click.command("report")
@click.option("--shop", "shop_id", required=True, help="Shop id (see `keepwell shop list`).")
@click.option("--since", help="Touches from this ISO date or time (UTC unless it says); default: all.")
@click.option("--until", help="Touches before this ISO date or time; default: now.")
@click.option("--window", default="14d", show_default=True, help="Conversion window after a touch: 14d, 2w, 36h.")
@click.option("--send-cost", default="0.001", show_default=True, help="Cost of one email, in the shop's currency.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def report_command(shop_id, since, until, window, send_cost, fmt):
    """Measure every touch: per rule reach, coupons issued and redeemed, attributed revenue, discount
    cost, emails, unsubscribes, influenced orders, holdout lift with its interval and ROI, A/B
    variants, a weekly funnel; and the store's repeat purchase rate."""
    from plugin import reports
    from plugin.analytics import Settings
    from plugin.db import sessions, upgrade, utcnow
    from plugin.errors import UnknownShop

    try:
        start, end = reports.parse_when(since, "--since"), reports.parse_when(until, "--until")
        settings = Settings(window=reports.parse_window(window), send_cost=reports.parse_cost(send_cost))
    except ValueError as exc:
        raise click.UsageError(str(exc))
    now = utcnow()
    if end is not None and end > now:
        click.echo(f"note: --until {until} is in the future; the report covers touches up to now "
                   f"({now.isoformat(timespec='seconds')})", err=True)
    config = load_config()
    upgrade(config.database_url)
    with sessions(config.database_url)() as session:
        try:
            result = reports.shop_report(session, shop_id, now=now, since=start, until=end, settings=settings)
        except UnknownShop as exc:
            raise click.ClickException(str(exc))
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(reports.format_table(result, shop_id))


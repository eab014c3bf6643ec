"""`keepwell sample-history`, `simulate` and `explain`: a store's history replayed through rules."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from connectors.registry import Platform
from plugin.cli.common import load_config, load_ruleset, read_history, rule_sessions
from plugin.rulefile import RULES_DIR


@click.command("sample-history")
@click.option("--customers", default=1000, show_default=True, help="Number of customers.")
@click.option("--seed", default=1, show_default=True, help="Random seed: the same seed gives the same store.")
@click.option("--days", default=365, show_default=True, help="Length of the history in days.")
@click.option("--shop", default="demo.myshopify.com", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default: stdout).")
def sample_history(customers, seed, days, shop, output):
    """Generate a realistic synthetic store history as JSON Lines of canonical events."""
    from plugin.sample_history import generate

    out = output.open("w", encoding="utf-8") if output else sys.stdout
    try:
        for event in generate(customers, seed=seed, days=days, shop=shop):
            out.write(json.dumps(event, ensure_ascii=False) + "\n")
    finally:
        if output:
            out.close()


@click.command()
@click.argument("history", required=False, type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--rules", "rules_path", default=RULES_DIR, show_default=True, type=click.Path(exists=True, path_type=Path), help="Rule folder or file.")
@click.option("--sample", type=int, help="Simulate a generated sample store of this many customers instead of a history file.")
@click.option("--seed", default=1, show_default=True, help="Seed for --sample.")
@click.option("--from", "platform", type=click.Choice([p.value for p in Platform]),
              help="HISTORY is a raw order export of this platform, not canonical events.")
@click.option("--shop", "shop_id", help="Replay a connected shop's own history (imported and since), as Keepwell keeps it.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--timezone", "zone", help="The shop's time zone for dated and yearly rules, e.g. Asia/Jerusalem "
                                         "(default: the shop's with --shop, else UTC).")
@click.option("--who", "who", metavar="RULE", help="Also list the customers RULE would touch, and when.")
def simulate(history, rules_path, sample, seed, platform, shop_id, fmt, zone, who):
    """Replay a store history (JSON Lines of canonical events, a raw order export with --from, or a
    connected shop's own with --shop) through the rules in virtual time."""
    from plugin.mail.preview import touch_renderer
    from plugin.rulefile import read_templates
    from plugin.simulate import simulate as run

    if sum(x is not None for x in (history, sample, shop_id)) != 1:
        raise click.UsageError("give a HISTORY file, --sample N or --shop ID")
    ruleset = load_ruleset(rules_path)
    templates_dir = (rules_path if rules_path.is_dir() else rules_path.parent) / "templates"
    if shop_id is not None:
        from plugin.history import stored_history

        events = stored_history(load_config().database_url, shop_id)
        if not events:
            raise click.ClickException(f"shop {shop_id} has no history yet: `keepwell shop import --shop {shop_id}`")
    elif sample is not None:
        from plugin.events import event_from_dict
        from plugin.sample_history import generate

        from plugin.engine.ruleset import for_shop
        from plugin.sample_history import SAMPLE_REFERRAL_KEY

        events = (event_from_dict(d) for d in generate(sample, seed=seed))  # streamed, not kept
        ruleset = for_shop(ruleset, SAMPLE_REFERRAL_KEY)
    elif platform is not None:
        from plugin.errors import KeepwellError
        from plugin.exports import export_events, read_orders
        from plugin.simulate import time_ordered

        try:
            text = click.open_file(str(history), encoding="utf-8").read()
            events = time_ordered(export_events(platform, read_orders(text)))
        except (ValueError, KeepwellError) as exc:
            raise click.ClickException(f"{history}: not a {platform} order export: {exc}")
    else:
        events = read_history(history)
    total = len(events) if hasattr(events, "__len__") else 0  # a generated sample's is not known ahead
    show = fmt == "table" and sys.stderr.isatty() and total > 0
    with click.progressbar(length=total, label="simulating", file=sys.stderr if show else None,
                           hidden=not show) as bar:
        report = run(events, ruleset, progress=bar.update, render=touch_renderer(read_templates(templates_dir)),
                     tz=_zone(zone, shop_id), keep_ledger=who is not None)  # else counted, not kept: memory follows customers
    touched = _who(report, ruleset, who)
    if fmt == "json":
        click.echo(json.dumps({**report.to_dict(), **({"who": touched} if who else {})}, indent=2, ensure_ascii=False))
    else:
        click.echo(format_report(report))
        if who:
            click.echo(f"\n{who} would touch {len(touched)} customers:")
            click.echo("\n".join(f"  {t['customer']} at {t['at']}" for t in touched))


def _zone(name: str | None, shop_id: str | None):
    """The time zone dated and yearly rules fire in: ``--timezone``, else the shop's, else UTC."""
    from datetime import timezone
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise click.BadParameter(f"unknown time zone {name!r}: write an IANA name such as Europe/Paris",
                                     param_hint="--timezone")
    if shop_id is None:
        return timezone.utc
    from plugin.db import ShopRow
    from plugin.fanout import shop_zone

    with rule_sessions()() as session:
        row = session.get(ShopRow, shop_id)
        return shop_zone(row.settings if row is not None else None)


def _who(report, ruleset, rule_id: str | None) -> list[dict]:
    if rule_id is None:
        return []
    if rule_id not in ruleset.by_id:
        raise click.BadParameter(f"no rule {rule_id!r} in this rule set", param_hint="--who")
    touches = sorted((d.at, d.customer_id) for d in report.ledger.values() if d.rule_id == rule_id)
    return [{"customer": c, "at": at.isoformat()} for at, c in touches]


def format_report(report) -> str:
    """The simulation report as a plain-text table."""
    d = report.to_dict()
    lines = [
        f"{d['events']} events, {d['customers']} customers, {d['start']} .. {d['end']}; "
        f"{d['timers_fired']} timers fired, {d['timers_pending']} still pending",
        "",
        f"{'rule':<22}{'triggered':>10}{'touches':>9}{'reached':>9}{'coupons':>9}{'emails':>8}  face value / suppressed",
    ]
    for rid, r in d["rules"].items():
        value = _value(r)
        supp = ", ".join(f"{k} {v}" for k, v in r["suppressed"].items())
        lines.append(f"{rid:<22}{r['triggered']:>10}{r['touches']:>9}{r['customers_reached']:>9}{r['coupons']:>9}"
                     f"{r['emails']:>8}  {value or '-'} / {supp or '-'}")
        if r["texts"]:
            lines.append(f"{'  by SMS':<22}{'':>10}{r['texts']:>9} texts, {r['segments']} segments, "
                         f"{r['sms_cost']} {d['sms_currency']}")
        for name, v in r.get("variants", {}).items():
            lines.append(f"{'  variant ' + name:<22}{'':>10}{v['touches']:>9}{v['customers_reached']:>9}{v['coupons']:>9}"
                         f"{v['emails']:>8}  {_value(v) or '-'}")
    if d["overlaps"]:
        lines += ["", "customers touched by two rules:"]
        top = sorted(d["overlaps"].items(), key=lambda kv: (-kv[1], kv[0]))
        lines += [f"  {pair}: {n}" for pair, n in top[:10]]
        if len(top) > 10:
            lines.append(f"  ... and {len(top) - 10} more pairs (--format json lists all)")
    if d["render_failures"]:
        lines += ["", "emails that would fail to render (not sent):"]
        lines += [f"  {f['rule']}: {f['emails']} emails, e.g. to customer {f['first_customer']}: {f['error']}"
                  for f in d["render_failures"]]
    return "\n".join(lines)


def _value(r: dict) -> str:
    value = ", ".join(f"{v} {c if c not in (None, 'None') else '(shop currency)'}" for c, v in r["face_value"].items())
    if r["percent_coupons"]:
        value = (value + "; " if value else "") + f"{r['percent_coupons']} x ~{r['average_percent']}%"
    return value


@click.command()
@click.argument("history", required=False, type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--customer", "customer_id", required=True, help="Customer id.")
@click.option("--event", "event_id", help="Event id (default: the customer's last event).")
@click.option("--rules", "rules_path", default=RULES_DIR, show_default=True, type=click.Path(exists=True, path_type=Path))
@click.option("--shop", "shop_id", help="Instead of HISTORY: the shop's kept history, its active rules, and what "
                                        "the ledger recorded for the customer (sent, suppressed, failed and why).")
@click.option("--timezone", "zone", help="The shop's time zone for dated and yearly rules (default: the shop's "
                                         "with --shop, else UTC).")
def explain(history, customer_id, event_id, rules_path, shop_id, zone):
    """Why did (or didn't) a customer get a touch? Each rule's verdict, condition by condition."""
    from plugin.explain import explain as run

    if (history is None) == (shop_id is None):
        raise click.UsageError("give a HISTORY file or --shop SHOP_ID")
    if shop_id is None:
        events, ruleset, ledger = read_history(history), load_ruleset(rules_path), []
    else:
        from datetime import datetime, timezone

        from plugin.explain import ledger_lines
        from plugin.history import shop_events
        from plugin.shops import rules_for

        with rule_sessions()() as session:
            try:
                ruleset, _ = rules_for(session, shop_id)
            except LookupError as exc:
                raise click.ClickException(str(exc))
            # the customer's own kept history: the ledger below tells what friends' orders earned them
            events = shop_events(session, shop_id, datetime.min.replace(tzinfo=timezone.utc), [customer_id])
            ledger = ledger_lines(session, shop_id, customer_id)
    try:
        lines = run(events, ruleset, customer_id, event_id, tz=_zone(zone, shop_id))
    except LookupError as exc:
        if not ledger:
            raise click.ClickException(str(exc))
        lines = [str(exc)]
    click.echo("\n".join(lines + ledger))


"""The ``keepwell`` command line."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from connectors.registry import Platform
from plugin.cli_deadletters import dead_letters
from plugin.rulefile import RULES_DIR, currency_warnings, lint, load_rules, rule_files
from plugin.errors import RuleError
from plugin.importing.cli import import_command


@click.group()
def main():
    """Keepwell: retention rules for Shopify and WooCommerce stores."""
    from plugin.redact import install_log_redaction

    install_log_redaction()  # the worker's and every command's logs


main.add_command(dead_letters)


@main.group()
def rules():
    """Validate rule files; push, pull, diff and list a shop's rule set versions."""


@rules.command("lint")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--templates", type=click.Path(file_okay=False, path_type=Path), help="Email templates folder (default: templates/ beside the rules).")
def rules_lint(paths, templates):
    """Check rule files (or folders of them, as one rule set). Quiet when valid."""
    files = rule_files(paths)
    result = lint(files, templates)
    for p in result.problems + result.warnings:
        click.echo(str(p))
    sys.exit(1 if result.problems else 0)


def _rule_sessions():
    from plugin.db import sessions, upgrade

    config = _config()
    upgrade(config.database_url)
    return sessions(config.database_url)


def _rules_error(exc: Exception, exit_code: int = 1) -> click.ClickException:
    error = click.ClickException(str(exc))
    error.exit_code = exit_code
    return error


_SHOP_OPTION = click.option("--shop", "shop_id", required=True, help="Shop id (see `keepwell shop list`).")
_RULES_ERRORS = (LookupError, OSError, ValueError)  # unknown shop or version, folder problems


@rules.command("push")
@_SHOP_OPTION
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def rules_push(shop_id, directory):
    """Lint DIRECTORY (rule files + DIRECTORY/templates) like `rules lint`; when clean, make it
    the shop's new active rule set version. A rejected set leaves the active version in place."""
    from plugin import rulesets
    from plugin.errors import UnknownShop

    try:
        with _rule_sessions().begin() as session:
            result = rulesets.push(session, shop_id, directory)
    except (UnknownShop, *_RULES_ERRORS) as exc:
        raise _rules_error(exc)
    if result.problems:
        for p in result.problems:
            click.echo(str(p))
        kept = f"version {result.previous.version} stays active" if result.previous else "the shop has no active rule set"
        click.echo(f"rejected: {len(result.problems)} problem(s) in {directory}; {kept}", err=True)
        sys.exit(1)
    for w in result.warnings:
        click.echo(str(w))
    row = result.row
    if result.created:
        click.echo(f"shop {shop_id}: version {row.version} is active (digest {row.digest}, engine {row.engine_version})")
    else:
        click.echo(f"shop {shop_id}: no change: {directory} is identical to the active version {row.version}")


@rules.command("pull")
@_SHOP_OPTION
@click.option("--version", "version", type=int, help="Version number (default: the active one).")
@click.option("--force", is_flag=True, help="Write into a non-empty folder, replacing its rule and template files.")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def rules_pull(shop_id, version, force, directory):
    """Write the shop's active (or --version N) rule set into DIRECTORY."""
    from plugin import rulesets
    from plugin.errors import UnknownShop

    try:
        with _rule_sessions()() as session:
            row, written = rulesets.pull(session, shop_id, directory, version=version, force=force)
    except (UnknownShop, *_RULES_ERRORS) as exc:
        raise _rules_error(exc)
    click.echo(f"shop {shop_id}: wrote version {row.version}{' (active)' if row.active else ''}, "
               f"{len(written)} files, to {directory}")


@rules.command("diff")
@_SHOP_OPTION
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def rules_diff(shop_id, directory):
    """Unified diff from the shop's active rule set to DIRECTORY. Exit 0 when identical, 1 when
    different, 2 on trouble."""
    from plugin import rulesets
    from plugin.errors import UnknownShop

    try:
        with _rule_sessions()() as session:
            text = rulesets.diff(session, shop_id, directory)
    except (UnknownShop, *_RULES_ERRORS) as exc:
        raise _rules_error(exc, exit_code=2)
    click.echo(text, nl=False)
    sys.exit(1 if text else 0)


@rules.command("history")
@_SHOP_OPTION
def rules_history(shop_id):
    """The shop's rule set versions; * marks the active one."""
    from plugin import rulesets
    from plugin.errors import UnknownShop

    try:
        with _rule_sessions()() as session:
            versions = rulesets.history(session, shop_id)
    except (UnknownShop, *_RULES_ERRORS) as exc:
        raise _rules_error(exc)
    click.echo("\n".join(rulesets.format_history(versions)))


def _load(rules_path: Path):
    try:
        return load_rules(rules_path)
    except RuleError as exc:
        for p in exc.problems:
            click.echo(str(p), err=True)
        raise click.ClickException(f"the rules in {rules_path} are not valid ({len(exc.problems)} problems)")


def _read_history(path: Path):
    from plugin.simulate import read_events, time_ordered

    with click.open_file(str(path), encoding="utf-8") as f:
        try:
            return time_ordered(read_events(f))
        except ValueError as exc:
            raise click.ClickException(f"{path}: {exc}")


@main.command("sample-history")
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


@main.command()
@click.argument("history", required=False, type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--rules", "rules_path", default=RULES_DIR, show_default=True, type=click.Path(exists=True, path_type=Path), help="Rule folder or file.")
@click.option("--sample", type=int, help="Simulate a generated sample store of this many customers instead of a history file.")
@click.option("--seed", default=1, show_default=True, help="Seed for --sample.")
@click.option("--from", "platform", type=click.Choice([p.value for p in Platform]),
              help="HISTORY is a raw order export of this platform, not canonical events.")
@click.option("--shop", "shop_id", help="Replay a connected shop's own history (imported and since), as Keepwell keeps it.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def simulate(history, rules_path, sample, seed, platform, shop_id, fmt):
    """Replay a store history (JSON Lines of canonical events, a raw order export with --from, or a
    connected shop's own with --shop) through the rules in virtual time."""
    from plugin.simulate import simulate as run

    if sum(x is not None for x in (history, sample, shop_id)) != 1:
        raise click.UsageError("give a HISTORY file, --sample N or --shop ID")
    ruleset = _load(rules_path)
    if shop_id is not None:
        from plugin.history import stored_history

        events = stored_history(_config().database_url, shop_id)
        if not events:
            raise click.ClickException(f"shop {shop_id} has no history yet: `keepwell shop import --shop {shop_id}`")
    elif sample is not None:
        from plugin.events import event_from_dict
        from plugin.sample_history import generate

        from plugin.engine.ruleset import for_shop
        from plugin.sample_history import SAMPLE_REFERRAL_KEY

        events = [event_from_dict(d) for d in generate(sample, seed=seed)]
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
        events = _read_history(history)
    show = fmt == "table" and sys.stderr.isatty()
    with click.progressbar(length=len(events), label="simulating", file=sys.stderr if show else None,
                           hidden=not show) as bar:
        report = run(events, ruleset, progress=bar.update)
    if fmt == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(format_report(report))


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
        value = ", ".join(f"{v} {c}" for c, v in r["face_value"].items())
        if r["percent_coupons"]:
            value = (value + "; " if value else "") + f"{r['percent_coupons']} x ~{r['average_percent']}%"
        supp = ", ".join(f"{k} {v}" for k, v in r["suppressed"].items())
        lines.append(f"{rid:<22}{r['triggered']:>10}{r['touches']:>9}{r['customers_reached']:>9}{r['coupons']:>9}"
                     f"{r['emails']:>8}  {value or '-'} / {supp or '-'}")
    if d["overlaps"]:
        lines += ["", "customers touched by two rules:"]
        top = sorted(d["overlaps"].items(), key=lambda kv: (-kv[1], kv[0]))
        lines += [f"  {pair}: {n}" for pair, n in top[:10]]
        if len(top) > 10:
            lines.append(f"  ... and {len(top) - 10} more pairs (--format json lists all)")
    return "\n".join(lines)


@main.command()
@click.argument("history", required=False, type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--customer", "customer_id", required=True, help="Customer id.")
@click.option("--event", "event_id", help="Event id (default: the customer's last event).")
@click.option("--rules", "rules_path", default=RULES_DIR, show_default=True, type=click.Path(exists=True, path_type=Path))
@click.option("--shop", "shop_id", help="Instead of HISTORY: the shop's kept history, its active rules, and what "
                                        "the ledger recorded for the customer (sent, suppressed, failed and why).")
def explain(history, customer_id, event_id, rules_path, shop_id):
    """Why did (or didn't) a customer get a touch? Each rule's verdict, condition by condition."""
    from plugin.explain import explain as run

    if (history is None) == (shop_id is None):
        raise click.UsageError("give a HISTORY file or --shop SHOP_ID")
    if shop_id is None:
        events, ruleset, ledger = _read_history(history), _load(rules_path), []
    else:
        from datetime import datetime, timezone

        from plugin.explain import ledger_lines
        from plugin.history import shop_events
        from plugin.shops import rules_for

        with _rule_sessions()() as session:
            try:
                ruleset, _ = rules_for(session, shop_id)
            except LookupError as exc:
                raise click.ClickException(str(exc))
            events = shop_events(session, shop_id, datetime.min.replace(tzinfo=timezone.utc))
            ledger = ledger_lines(session, shop_id, customer_id)
    try:
        lines = run(events, ruleset, customer_id, event_id)
    except LookupError as exc:
        if not ledger:
            raise click.ClickException(str(exc))
        lines = [str(exc)]
    click.echo("\n".join(lines + ledger))


@main.command("report")
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
    config = _config()
    upgrade(config.database_url)
    with sessions(config.database_url)() as session:
        try:
            result = reports.shop_report(session, shop_id, now=utcnow(), since=start, until=end, settings=settings)
        except UnknownShop as exc:
            raise click.ClickException(str(exc))
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(reports.format_table(result, shop_id))


@main.command()
@click.option("--workdir", default="var/demo", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Working folder, emptied first: database, outbox, logs.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the report as JSON.")
@click.option("--database-url", metavar="URL",
              help="An empty database to run on (e.g. postgres://USER:PASS@HOST/DB) instead of SQLite in the workdir.")
@click.option("--serve", is_flag=True, help="Keep the demo running afterwards, with a sign-in link to each store's "
                                            "dashboard, until Ctrl-C.")
def demo(workdir, json_path, database_url, serve):
    """The live demo on embedded defaults: Redis, the web app, a worker and an SMTP sink; two demo
    stores whose storefront sends signed webhooks; then what happened."""
    from plugin.demo import main as run_demo

    run_demo(workdir, json_path=json_path, database_url=database_url, serve=serve)


# --- running Keepwell for real -------------------------------------------------------------------

def _config():
    from plugin.config import Config

    return Config.from_env()


@main.group()
def db():
    """Database schema."""


@db.command("upgrade")
def db_upgrade():
    """Apply every migration to DATABASE_URL (safe to run again)."""
    from plugin.db import upgrade

    config = _config()
    upgrade(config.database_url)
    click.echo(f"database schema is current ({_safe_url(config.database_url)})")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.command()
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for each service.")
def doctor(timeout):
    """Check this deployment's configuration: one OK/WARN/FAIL line per check with a fix;
    exit 1 on any FAIL. Sends no mail and changes nothing."""
    from plugin import doctor as checks

    results = checks.run(_config(), timeout=timeout)
    for check in results:
        click.echo(str(check))
    sys.exit(1 if checks.failed(results) else 0)


@main.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty (tests, one-off runs).")
def worker(burst):
    """Run an RQ worker with the scheduler: webhooks, timers, retries, housekeeping."""
    from plugin.db import upgrade
    from plugin.jobs import schedule_tick
    from plugin.runtime import runtime
    from plugin.worker import Worker

    rt = runtime(_config())
    upgrade(rt.config.database_url)
    schedule_tick(rt)
    # Jobs run in this process, not in a child forked per job (plugin/worker.py, bench/fork.py).
    # SIGTERM finishes the current job first (warm shutdown); a second signal stops at once.
    Worker([rt.queue], connection=rt.redis).work(with_scheduler=True, burst=burst)


@main.group()
def shop():
    """Connect stores by hand (self-hosted)."""


@shop.command("add")
@click.option("--platform", type=click.Choice([p.value for p in Platform]), required=True)
@click.option("--domain", help="Shopify: NAME.myshopify.com")
@click.option("--url", "store_url", help="WooCommerce: the store URL, e.g. https://shop.example.com")
@click.option("--token", default="", help="Shopify custom app Admin API access token.")
@click.option("--key", "consumer_key", default="", help="WooCommerce REST consumer key (ck_...).")
@click.option("--secret", "consumer_secret", default="", help="WooCommerce REST consumer secret (cs_...).")
@click.option("--webhook-secret", default=None, help="Shopify custom app secret that signs its webhooks (default: SHOPIFY_API_SECRET); WooCommerce: generated when omitted.")
@click.option("--api-url", default=None, help="Store API base URL override (sandbox or local test store).")
@click.option("--consent-meta-key", default=None, help="WooCommerce: a customer/order meta key of your own that carries marketing opt-in, read before the known ones (see `keepwell shop consent`).")
@click.option("--register-webhooks", is_flag=True, help="Subscribe the webhooks through the store's API (needs a public KEEPWELL_APP_URL; http is enough for WooCommerce).")
def shop_add(platform, domain, store_url, token, consumer_key, consumer_secret, webhook_secret, api_url,
             consent_meta_key, register_webhooks):
    """Register a store; prints its id, webhook URL and secret. Adding a connected store again
    updates its keys and keeps its webhook secret (see `keepwell shop rotate-secret`)."""
    import connectors
    from plugin.db import sessions, upgrade
    from plugin.doctor import app_url_problem
    from plugin.shops import AlreadyConnected, add_shop, find_shop, to_shop

    config = _config()
    where = domain if platform == "shopify" else store_url
    if not where:
        raise click.UsageError("--domain is required for Shopify" if platform == "shopify" else "--url is required for WooCommerce")
    if platform == "shopify" and not token:
        raise click.UsageError("--token (the custom app's Admin API access token) is required for Shopify")
    if platform == "woocommerce" and not (consumer_key and consumer_secret):
        raise click.UsageError("--key and --secret (WooCommerce REST API keys) are required for WooCommerce")
    problem = app_url_problem(config.app_url, platform) if register_webhooks else None
    if problem:
        raise click.ClickException(f"{problem}: --register-webhooks needs a public "
                                   f"{'https' if platform == 'shopify' else 'http(s)'} URL the store can reach")
    upgrade(config.database_url)
    settings = {"consent_meta_key": consent_meta_key} if consent_meta_key else {}
    with sessions(config.database_url).begin() as session:
        known = find_shop(session, platform, where) is not None
        try:
            row, secret = add_shop(session, config, platform, where, api_url=api_url, access_token=token,
                                   consumer_key=consumer_key, consumer_secret=consumer_secret,
                                   webhook_secret=webhook_secret, settings=settings)
        except AlreadyConnected as exc:
            raise click.ClickException(str(exc))
        shop_obj = to_shop(row, config)
    url = connectors.get(platform).webhook_url(config.app_url, row.id)
    click.echo(f"shop id:        {row.id}")
    click.echo(f"webhook URL:    {url}")
    if platform == "woocommerce":
        click.echo(f"webhook secret: {secret}{' (unchanged: the store is already connected)' if known else ''}")
    elif not shop_obj.webhook_secrets:
        click.echo("warning: no webhook secret: set SHOPIFY_API_SECRET or pass --webhook-secret", err=True)
    if register_webhooks:
        topics = connectors.get(platform).register_webhooks(shop_obj, config.app_url)
        click.echo(f"webhooks registered: {', '.join(topics)}")
    _queue_import(config, row.id)


def _queue_import(config, shop_id: str) -> None:
    """The store's past is imported by a worker; without Redis, say how to run it here."""
    from redis.exceptions import RedisError

    from plugin.importing import enqueue
    from plugin.runtime import runtime

    try:
        enqueue(runtime(config).queue, shop_id)
    except RedisError as exc:
        click.echo(f"warning: history import not queued ({exc}); run `keepwell shop import --shop {shop_id}`", err=True)
        return
    click.echo(f"history import queued: `keepwell worker` folds in the store's customers and orders "
               f"(or run `keepwell shop import --shop {shop_id}`)")


@shop.command("rotate-secret")
@click.argument("shop_id")
@click.option("--secret", "new_secret", default=None, help="The new secret (a Shopify custom app's new client secret); WooCommerce: generated when omitted.")
@click.option("--register-webhooks", is_flag=True, help="WooCommerce: give the store's webhooks the new secret through its API.")
@click.option("--forget-previous", is_flag=True, help="Stop accepting the previous secrets (once every webhook uses the new one).")
def shop_rotate_secret(shop_id, new_secret, register_webhooks, forget_previous):
    """Give a store a new webhook secret. The previous one is still accepted until
    --forget-previous, so no delivery fails while the store's webhooks change over."""
    import connectors
    from plugin.db import sessions, upgrade
    from plugin.doctor import app_url_problem
    from plugin.errors import StoreError
    from plugin.shops import rotate_webhook_secret, to_shop

    if forget_previous and (new_secret or register_webhooks):
        raise click.UsageError("--forget-previous ends a rotation: run it on its own, after the store has the new secret")
    config = _config()
    upgrade(config.database_url)
    db = sessions(config.database_url)
    with db.begin() as session:
        try:
            row, kept = rotate_webhook_secret(session, config, shop_id, new_secret, forget_previous=forget_previous)
        except (LookupError, ValueError) as exc:
            raise click.ClickException(str(exc))
        platform, shop_obj = row.platform, to_shop(row, config)
    if forget_previous:
        click.echo(f"{shop_id}: only the current webhook secret is accepted now")
        return
    if platform == "shopify" and not new_secret:
        click.echo("warning: Shopify signs with the app's client secret: pass it with --secret", err=True)
    click.echo(f"webhook secret: {kept[0]}")
    click.echo(f"still accepted: {len(kept) - 1} previous secret(s), until `keepwell shop rotate-secret {shop_id} --forget-previous`")
    if register_webhooks:
        problem = app_url_problem(config.app_url, platform)
        if platform != "woocommerce" or problem:
            raise click.ClickException(problem or "--register-webhooks re-keys WooCommerce webhooks; Shopify's come with the app")
        try:
            connectors.get(platform).register_webhooks(shop_obj, config.app_url)
        except StoreError as exc:
            raise click.ClickException(f"the store did not take the new secret ({exc.message}); the previous one "
                                       "is still accepted: run this again with --register-webhooks, or paste the "
                                       "new secret into each Keepwell webhook in WooCommerce → Settings → Advanced → Webhooks")
        click.echo("the store's Keepwell webhooks now sign with the new secret")
    elif platform == "woocommerce":
        click.echo("paste it into each Keepwell webhook in WooCommerce → Settings → Advanced → Webhooks "
                   "(or run this with --register-webhooks)")


@shop.command("consent")
@click.argument("shop_id")
@click.option("--meta-key", default=None, help="A customer/order meta key of your own that carries marketing opt-in.")
@click.option("--no-meta-key", is_flag=True, help="Read only the known consent sources.")
def shop_consent(shop_id, meta_key, no_meta_key):
    """Where a WooCommerce store's marketing consent is read: prints the meta keys in the order
    they are read; --meta-key puts one of your own first."""
    from plugin.db import ShopRow, sessions, upgrade
    from plugin.shops import set_consent_meta_key, to_shop
    from connectors.woocommerce.parse import consent_keys

    if meta_key is not None and no_meta_key:
        raise click.UsageError("give --meta-key or --no-meta-key, not both")
    if meta_key is not None and not meta_key.strip():
        raise click.UsageError("--meta-key needs a meta key name")
    config = _config()
    upgrade(config.database_url)
    with sessions(config.database_url).begin() as session:
        try:
            if meta_key is not None or no_meta_key:
                row = set_consent_meta_key(session, shop_id, None if no_meta_key else meta_key.strip())
            else:
                row = session.get(ShopRow, shop_id)
                if row is None:
                    raise LookupError(f"no shop {shop_id!r} (see `keepwell shop list`)")
                if row.platform != "woocommerce":
                    raise ValueError(f"shop {shop_id} is a {row.platform} store: Shopify keeps consent on the customer")
        except (LookupError, ValueError) as exc:
            raise click.ClickException(str(exc))
        keys = consent_keys(to_shop(row, config))
    click.echo(f"{shop_id} reads marketing consent from customer and order meta, first found decides:")
    for key in keys:
        click.echo(f"  {key}")
    click.echo("yes, 1, true, on: consent; no, 0, false, off: none. Without any of these a customer is not marketed to.")


@shop.command("list")
def shop_list():
    """Connected stores."""
    from sqlalchemy import select

    from plugin.db import ShopRow, sessions, upgrade

    config = _config()
    upgrade(config.database_url)
    with sessions(config.database_url)() as session:
        for row in session.scalars(select(ShopRow).order_by(ShopRow.created_at)):
            click.echo(f"{row.id}  {row.platform:<12} {row.domain:<40} {'active' if row.active else 'inactive'}")


@shop.command("migrate-tokens")
def shop_migrate_tokens():
    """Move app-installed Shopify shops from non-expiring offline tokens (refused from 2027-01-01) to
    expiring ones; custom-app shops keep theirs."""
    from plugin.db import upgrade
    from plugin.tokens import migrate_all

    config = _config()
    upgrade(config.database_url)
    results = migrate_all(config)
    for shop_id, domain, error in results:
        click.echo(f"{shop_id}  {domain:<40} {'expiring token stored' if error is None else 'FAILED: ' + error}")
    if not results:
        click.echo("no app-installed Shopify shop is on a non-expiring token")
    if any(error for *_, error in results):
        raise click.ClickException("some shops keep their non-expiring token: run the command again, or have the "
                                   "merchant open Keepwell in the Shopify admin")


@main.command("shopify-config")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write it here (e.g. shopify.app.production.toml) instead of printing it.")
def shopify_config(output):
    """The Shopify app configuration (shopify.app.toml) for this deployment, for `shopify app deploy`."""
    from connectors.shopify.app_config import render

    try:
        text = render(_config())
    except ValueError as exc:
        raise click.ClickException(str(exc))
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}: deploy it with `shopify app deploy --config {_config_name(output)}`")
    else:
        click.echo(text, nl=False)


def _config_name(path: str) -> str:
    name = Path(path).name
    return name.removeprefix("shopify.app.").removesuffix(".toml") if name.startswith("shopify.app.") else name


@shop.command("admin-link")
@click.argument("shop_id")
@click.option("--ttl", default=3600, show_default=True, help="Seconds the link stays valid.")
def shop_admin_link(shop_id, ttl):
    """Print a signed link that opens the shop's dashboard (WooCommerce merchants)."""
    from plugin.admin_auth import admin_link
    from plugin.db import ShopRow, sessions, upgrade

    config = _config()
    upgrade(config.database_url)
    with sessions(config.database_url)() as session:
        if session.get(ShopRow, shop_id) is None:
            raise click.ClickException(f"no shop {shop_id!r} (see `keepwell shop list`)")
    click.echo(admin_link(config, shop_id, ttl))


@shop.command("remove")
@click.argument("shop_id")
def shop_remove(shop_id):
    """Forget a store and everything Keepwell holds on it."""
    from plugin.db import ShopRow, sessions, upgrade

    config = _config()
    upgrade(config.database_url)
    with sessions(config.database_url).begin() as session:
        row = session.get(ShopRow, shop_id)
        if row is None:
            raise click.ClickException(f"no shop {shop_id!r} (see `keepwell shop list`)")
        session.delete(row)
    click.echo(f"removed {shop_id}")


@shop.command("disconnect")
@click.argument("shop_id")
def shop_disconnect(shop_id):
    """Remove Keepwell's webhooks from a WooCommerce store and drop its API keys (the shop's rules
    and history stay; connect again to resume)."""
    from plugin.db import sessions, upgrade
    from connectors.woocommerce.connect import disconnect

    config = _config()
    upgrade(config.database_url)
    try:
        result = disconnect(sessions(config.database_url), config, shop_id)
    except LookupError:
        raise click.ClickException(f"no shop {shop_id!r} (see `keepwell shop list`)")
    except ValueError as exc:
        raise click.ClickException(f"{exc}: uninstall the app in the Shopify admin, or `keepwell shop remove {shop_id}`")
    click.echo(f"{shop_id} disconnected: inactive, API keys and webhook secrets deleted")
    click.echo(f"webhooks removed from {result.store_url}: {len(result.removed_webhooks)}")
    click.echo("the key itself stays in the store until revoked: WooCommerce → Settings → Advanced → REST API")
    if result.errors:
        for error in result.errors:
            click.echo(f"store error: {error}", err=True)
        raise click.ClickException("Keepwell's webhooks may still be in the store: remove those pointing at "
                                   f"{config.app_url}/webhooks/woocommerce/{shop_id} under WooCommerce → Settings → "
                                   "Advanced → Webhooks")


@main.group("secrets")
def secrets_group():
    """Stored store credentials (encrypted with KEEPWELL_SECRET_KEY)."""


@secrets_group.command("rotate")
def secrets_rotate():
    """Re-encrypt every shop's stored secrets with the first KEEPWELL_SECRET_KEY.

    To replace a key: set KEEPWELL_SECRET_KEY="new,old" everywhere, run this, then drop the old
    key. Running it again changes nothing. Unsubscribe links in emails already sent are signed
    with the old key and stop working once it is dropped.
    """
    from sqlalchemy import select

    from plugin import secrets as stored
    from plugin.db import ShopRow, sessions, upgrade

    config = _config()
    upgrade(config.database_url)
    rotated, current, unreadable = 0, 0, []
    with sessions(config.database_url).begin() as session:
        for row in session.scalars(select(ShopRow).order_by(ShopRow.id)):
            try:
                stored.decrypt(config.secret_keys[:1], row.secrets)
                current += 1
                continue
            except stored.SecretError:
                pass
            try:
                stored.decrypt(config.secret_keys, row.secrets)
            except stored.SecretError:
                unreadable.append(row.id)
                continue
            row.secrets = stored.rotate(config.secret_keys, row.secrets)
            rotated += 1
    click.echo(f"re-encrypted {rotated} shops' secrets with the first KEEPWELL_SECRET_KEY; {current} already used it")
    if unreadable:
        raise click.ClickException(f"{len(unreadable)} shops' secrets cannot be decrypted with any configured key "
                                   f"({', '.join(unreadable)}): add the key they were encrypted with to "
                                   "KEEPWELL_SECRET_KEY (after the new one) and run this again")


shop.add_command(import_command)

if __name__ == "__main__":
    main()

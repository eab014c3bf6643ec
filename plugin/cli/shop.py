"""`keepwell shop`: connect stores by hand (self-hosted), list, rotate secrets, remove."""
from __future__ import annotations

import click

from connectors.registry import Platform
from plugin.cli.common import load_config
from plugin.importing.cli import import_command


@click.group()
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

    config = load_config()
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
    config = load_config()
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
@click.option("--sms-meta-key", default=None, help="A customer/order meta key of your own that carries SMS opt-in.")
@click.option("--no-sms-meta-key", is_flag=True, help="Read SMS consent only from the Keepwell plugin's opt-in.")
def shop_consent(shop_id, meta_key, no_meta_key, sms_meta_key, no_sms_meta_key):
    """Where a WooCommerce store's marketing consent is read: prints the meta keys in the order
    they are read; --meta-key puts one of your own first (--sms-meta-key: for SMS consent)."""
    from plugin.db import ShopRow, sessions, upgrade
    from plugin.shops import set_consent_meta_key, to_shop
    from connectors.woocommerce import sms
    from connectors.woocommerce.parse import consent_keys

    for given, none, name in ((meta_key, no_meta_key, "meta-key"), (sms_meta_key, no_sms_meta_key, "sms-meta-key")):
        if given is not None and none:
            raise click.UsageError(f"give --{name} or --no-{name}, not both")
        if given is not None and not given.strip():
            raise click.UsageError(f"--{name} needs a meta key name")
    config = load_config()
    upgrade(config.database_url)
    with sessions(config.database_url).begin() as session:
        try:
            row = None
            if meta_key is not None or no_meta_key:
                row = set_consent_meta_key(session, shop_id, None if no_meta_key else meta_key.strip())
            if sms_meta_key is not None or no_sms_meta_key:
                row = set_consent_meta_key(session, shop_id, None if no_sms_meta_key else sms_meta_key.strip(),
                                           "sms_consent_meta_key")
            if row is None:
                row = session.get(ShopRow, shop_id)
                if row is None:
                    raise LookupError(f"no shop {shop_id!r} (see `keepwell shop list`)")
                if row.platform != "woocommerce":
                    raise ValueError(f"shop {shop_id} is a {row.platform} store: Shopify keeps consent on the customer")
        except (LookupError, ValueError) as exc:
            raise click.ClickException(str(exc))
        keys, sms_keys = consent_keys(to_shop(row, config)), sms.keys(to_shop(row, config))
    click.echo(f"{shop_id} reads marketing consent from customer and order meta, first found decides:")
    for key in keys:
        click.echo(f"  {key}")
    click.echo("yes, 1, true, on: consent; no, 0, false, off: none. Without any of these a customer is not marketed to.")
    click.echo("SMS consent, from customer and order meta, first found decides (no consent without one):")
    for key in sms_keys:
        click.echo(f"  {key}")


@shop.command("api-key")
@click.argument("shop_id")
@click.option("--rotate", is_flag=True, help="Make a new key: the old one stops working at once.")
def shop_api_key(shop_id, rotate):
    """The shop's API key for POST /api/v1/events (its own events, e.g. custom.heatwave). Only
    its last characters are kept; --rotate makes a new one and prints it, this once."""
    from plugin import api_keys
    from plugin.db import sessions, upgrade
    from plugin.errors import UnknownShop

    config = load_config()
    upgrade(config.database_url)
    with sessions(config.database_url).begin() as session:
        if rotate:
            try:
                key = api_keys.rotate(session, config, shop_id)
            except UnknownShop:
                raise click.ClickException(f"no shop {shop_id!r} (see `keepwell shop list`)")
        else:
            found = api_keys.describe(session, config, shop_id)
    if rotate:
        click.echo(key)
        click.echo("keep it secret: it is shown this once (the previous key no longer works)", err=True)
    elif found:
        click.echo(f"{shop_id} has an API key ending in ...{found['hint']}, made {found['created_at']}; "
                   "--rotate makes a new one")
    else:
        click.echo(f"{shop_id} has no API key yet: --rotate makes one")


@shop.command("sms")
@click.argument("shop_id")
@click.option("--account-sid", default=None, help="Twilio Account SID (AC…, Twilio Console → Account Info).")
@click.option("--auth-token", default=None, help="Twilio auth token (or set KEEPWELL_SMS_AUTH_TOKEN, kept out of the shell history).")
@click.option("--from", "sender", default=None, help="The sender: a Twilio phone number (+15017122661) or a Messaging Service SID (MG…).")
@click.option("--remove", is_flag=True, help="Forget the shop's SMS provider: it sends no SMS.")
def shop_sms(shop_id, account_sid, auth_token, sender, remove):
    """The store's SMS provider (Twilio): with no option, shows it (auth token hidden); with
    --account-sid, --auth-token and --from, stores them encrypted (later, any one of them alone
    changes just it); --remove forgets them."""
    import os

    from plugin.db import ShopRow, sessions, upgrade
    from plugin.shops import set_sms, to_shop
    from plugin.sms.settings import redacted

    auth_token = auth_token or os.environ.get("KEEPWELL_SMS_AUTH_TOKEN") or None
    given = {"account_sid": account_sid, "auth_token": auth_token, "from": sender}
    changing = any(given.values())
    if remove and changing:
        raise click.UsageError("--remove forgets the SMS settings: give it alone")
    config = load_config()
    upgrade(config.database_url)
    with sessions(config.database_url).begin() as session:
        try:
            row = session.get(ShopRow, shop_id)
            if row is None:
                raise LookupError(f"no shop {shop_id!r} (see `keepwell shop list`)")
            if changing or remove:  # an option not given keeps its stored value
                kept = {} if remove else dict(to_shop(row, config).sms)
                row = set_sms(session, config, shop_id, None if remove else {**kept, **{k: v for k, v in given.items() if v}})
        except (LookupError, ValueError) as exc:
            raise click.ClickException(str(exc))
        document = dict(to_shop(row, config).sms)
    if not document:
        click.echo(f"{shop_id} sends no SMS{' any more' if remove else ''}: set a provider with "
                   f"`keepwell shop sms {shop_id} --account-sid AC… --auth-token … --from +1…`")
        return
    for key, value in redacted(document).items():
        click.echo(f"{key + ':':<13} {value}")


@shop.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def shop_list(fmt):
    """Connected stores: id, platform, domain, active or not, connected since."""
    import json

    from sqlalchemy import select

    from plugin.db import ShopRow, sessions, upgrade

    config = load_config()
    upgrade(config.database_url)
    with sessions(config.database_url)() as session:
        rows = [{"id": row.id, "platform": row.platform, "domain": row.domain, "active": row.active,
                 "created_at": row.created_at.isoformat()}
                for row in session.scalars(select(ShopRow).order_by(ShopRow.created_at))]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(f"{r['id']}  {r['platform']:<12} {r['domain']:<40} {'active' if r['active'] else 'inactive'}")
    if not rows:
        click.echo("no shops yet: connect one with `keepwell shop add`", err=True)


@shop.command("migrate-tokens")
def shop_migrate_tokens():
    """Move app-installed Shopify shops from non-expiring offline tokens (refused from 2027-01-01) to
    expiring ones; custom-app shops keep theirs."""
    from plugin.db import upgrade
    from plugin.tokens import migrate_all

    config = load_config()
    upgrade(config.database_url)
    results = migrate_all(config)
    for shop_id, domain, error in results:
        click.echo(f"{shop_id}  {domain:<40} {'expiring token stored' if error is None else 'FAILED: ' + error}")
    if not results:
        click.echo("no app-installed Shopify shop is on a non-expiring token")
    if any(error for *_, error in results):
        raise click.ClickException("some shops keep their non-expiring token: run the command again, or have the "
                                   "merchant open Keepwell in the Shopify admin")


@shop.command("admin-link")
@click.argument("shop_id")
@click.option("--ttl", default=3600, show_default=True, help="Seconds the link stays valid.")
def shop_admin_link(shop_id, ttl):
    """Print a signed link that opens the shop's dashboard (WooCommerce merchants)."""
    from plugin.admin_auth import admin_link
    from plugin.db import ShopRow, sessions, upgrade

    config = load_config()
    upgrade(config.database_url)
    with sessions(config.database_url)() as session:
        if session.get(ShopRow, shop_id) is None:
            raise click.ClickException(f"no shop {shop_id!r} (see `keepwell shop list`)")
    click.echo(admin_link(config, shop_id, ttl))


@shop.command("remove")
@click.argument("shop_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def shop_remove(shop_id, yes):
    """Forget a store and everything Keepwell holds on it (asks first; --yes does not)."""
    from plugin.db import ShopRow, sessions, upgrade

    config = load_config()
    upgrade(config.database_url)
    with sessions(config.database_url).begin() as session:
        row = session.get(ShopRow, shop_id)
        if row is None:
            raise click.ClickException(f"no shop {shop_id!r} (see `keepwell shop list`)")
        if not yes:
            click.confirm(f"Remove {shop_id} ({row.domain}) and everything Keepwell holds on it: customers, "
                          "history, rule sets, decisions? This cannot be undone", abort=True)
        session.delete(row)
    click.echo(f"removed {shop_id}")


@shop.command("disconnect")
@click.argument("shop_id")
def shop_disconnect(shop_id):
    """Remove Keepwell's webhooks from a WooCommerce store and drop its API keys (the shop's rules
    and history stay; connect again to resume)."""
    from plugin.db import sessions, upgrade
    from connectors.woocommerce.connect import disconnect

    config = load_config()
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



shop.add_command(import_command)

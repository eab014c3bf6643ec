"""Running Keepwell: `demo`, `db upgrade`, `doctor`, `worker`, `shopify-config`, `secrets rotate`."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from plugin.cli.common import load_config, safe_url


@click.command()
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



@click.group()
def db():
    """Database schema."""


@db.command("upgrade")
def db_upgrade():
    """Apply every migration to DATABASE_URL (safe to run again)."""
    from plugin.db import upgrade

    config = load_config()
    upgrade(config.database_url)
    click.echo(f"database schema is current ({safe_url(config.database_url)})")


@click.command()
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for each service.")
def doctor(timeout):
    """Check this deployment's configuration: one OK/WARN/FAIL line per check with a fix;
    exit 1 on any FAIL. Sends no mail and changes nothing."""
    from plugin import doctor as checks

    results = checks.run(load_config(), timeout=timeout)
    for check in results:
        click.echo(str(check))
    sys.exit(1 if checks.failed(results) else 0)


@click.command()
@click.option("--burst", is_flag=True, help="Stop when the queue is empty (tests, one-off runs).")
def worker(burst):
    """Run an RQ worker with the scheduler: webhooks, timers, retries, housekeeping."""
    from plugin.db import upgrade
    from plugin.jobs import schedule_tick
    from plugin.runtime import runtime
    from plugin.worker import Worker

    rt = runtime(load_config())
    upgrade(rt.config.database_url)
    schedule_tick(rt)
    # Jobs run in this process, not in a child forked per job (plugin/worker.py, bench/fork.py).
    # SIGTERM finishes the current job first (warm shutdown); a second signal stops at once.
    Worker([rt.queue], connection=rt.redis).work(with_scheduler=True, burst=burst)

@click.command("shopify-config")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write it here (e.g. shopify.app.production.toml) instead of printing it.")
def shopify_config(output):
    """The Shopify app configuration (shopify.app.toml) for this deployment, for `shopify app deploy`."""
    from connectors.shopify.app_config import render

    try:
        text = render(load_config())
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


@click.group("secrets")
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

    config = load_config()
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

"""The live demo (``keepwell demo``): the real web app, worker, Redis and SMTP, two demo stores
played by a storefront against a local store API sandbox, and a report of what happened.

- ``run``: the orchestrator (shops, the story, time passing, the report); ``services`` starts and
  stops what a run needs, ``processes`` its child processes and `keepwell` commands.
- ``storefront``: the customers' story, as signed webhooks over HTTP; ``cast`` its stores, people
  and orders, ``payloads`` the webhook bodies each platform sends.
- ``sandbox``: the Shopify GraphQL and WooCommerce REST endpoints the connectors call.
- ``smtp_sink``: an SMTP server writing what it receives to a JSON Lines outbox.
- ``clock`` and ``worker``: demo time, and ``keepwell worker`` running on it.
- ``report``: the ledger, the sandbox and the outbox as a plain-text report.
- ``database``: SQLite in the work folder, or an empty database given with --database-url.
"""
from __future__ import annotations

import sys
from pathlib import Path


def main(workdir: Path, json_path: Path | None = None, database_url: str | None = None, serve: bool = False) -> None:
    """``keepwell demo``: run it, print the report; a clear message and exit status on failure."""
    import click

    from plugin.demo import run

    try:
        run.main(Path(workdir), click.echo, json_path, database_url, serve=serve)
    except run.DemoError as exc:
        raise click.ClickException(f"the demo could not run: {exc}") from None
    except KeyboardInterrupt:
        click.echo("interrupted: every process the demo started is stopped", err=True)
        sys.exit(130)

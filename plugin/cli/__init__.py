"""The ``keepwell`` command line: one module per command group."""
from __future__ import annotations

import click

from plugin.cli.replay import explain, sample_history, simulate
from plugin.cli.report import report_command
from plugin.cli.rules import rules
from plugin.cli.serve import db, demo, doctor, secrets_group, shopify_config, worker
from plugin.cli.shop import shop
from plugin.cli_deadletters import dead_letters


@click.group()
@click.version_option(package_name="keepwell", prog_name="keepwell", message="%(prog)s %(version)s")
def main():
    """Keepwell: retention rules for Shopify and WooCommerce stores."""
    from plugin.redact import install_log_redaction

    install_log_redaction()  # the worker's and every command's logs


for command in (rules, sample_history, simulate, explain, report_command, demo, db, doctor, worker, shop,
                shopify_config, secrets_group, dead_letters):
    main.add_command(command)

__all__ = ["main"]

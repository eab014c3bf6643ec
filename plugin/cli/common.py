"""What the command groups share: configuration, the database, rule sets and histories."""
from __future__ import annotations

from pathlib import Path

import click

from plugin.errors import RuleError
from plugin.rulefile import load_rules

SHOP_OPTION = click.option("--shop", "shop_id", required=True, help="Shop id (see `keepwell shop list`).")
RULES_ERRORS = (LookupError, OSError, ValueError)  # unknown shop or version, folder problems


def load_config():
    from plugin.config import Config

    return Config.from_env()


def rule_sessions():
    """A session factory on the configured database, its schema brought up to date."""
    from plugin.db import sessions, upgrade

    config = load_config()
    upgrade(config.database_url)
    return sessions(config.database_url)


def rules_error(exc: Exception, exit_code: int = 1) -> click.ClickException:
    error = click.ClickException(str(exc))
    error.exit_code = exit_code
    return error


def load_ruleset(rules_path: Path):
    """The rule set in ``rules_path``, or every problem on stderr and a failure."""
    try:
        return load_rules(rules_path)
    except RuleError as exc:
        for p in exc.problems:
            click.echo(str(p), err=True)
        raise click.ClickException(f"the rules in {rules_path} are not valid ({len(exc.problems)} problems)")


def read_history(path: Path):
    """Canonical events from a JSON Lines file (or - for stdin), in time order: every line checked
    first, then read one event at a time (the file stays open while they are read)."""
    from plugin.history_stream import TimeOrdered

    f = click.open_file(str(path), encoding="utf-8")
    try:
        return TimeOrdered(f)
    except ValueError as exc:
        f.close()
        raise click.ClickException(f"{path}: {exc}")


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)

"""`keepwell rules`: lint rule files; push, pull, diff and list a shop's rule set versions."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from plugin.cli.common import RULES_ERRORS, SHOP_OPTION, rule_sessions, rules_error
from plugin.rulefile import lint, rule_files


@click.group()
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


@rules.command("push")
@SHOP_OPTION
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def rules_push(shop_id, directory):
    """Lint DIRECTORY (rule files + DIRECTORY/templates) like `rules lint`; when clean, make it
    the shop's new active rule set version. A rejected set leaves the active version in place."""
    from plugin import rulesets
    from plugin.errors import UnknownShop

    try:
        with rule_sessions().begin() as session:
            result = rulesets.push(session, shop_id, directory)
    except (UnknownShop, *RULES_ERRORS) as exc:
        raise rules_error(exc)
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
@SHOP_OPTION
@click.option("--version", "version", type=int, help="Version number (default: the active one).")
@click.option("--force", is_flag=True, help="Write into a non-empty folder, replacing its rule and template files.")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def rules_pull(shop_id, version, force, directory):
    """Write the shop's active (or --version N) rule set into DIRECTORY."""
    from plugin import rulesets
    from plugin.errors import UnknownShop

    try:
        with rule_sessions()() as session:
            row, written = rulesets.pull(session, shop_id, directory, version=version, force=force)
    except (UnknownShop, *RULES_ERRORS) as exc:
        raise rules_error(exc)
    click.echo(f"shop {shop_id}: wrote version {row.version}{' (active)' if row.active else ''}, "
               f"{len(written)} files, to {directory}")


@rules.command("diff")
@SHOP_OPTION
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def rules_diff(shop_id, directory):
    """Unified diff from the shop's active rule set to DIRECTORY. Exit 0 when identical, 1 when
    different, 2 on trouble."""
    from plugin import rulesets
    from plugin.errors import UnknownShop

    try:
        with rule_sessions()() as session:
            text = rulesets.diff(session, shop_id, directory)
    except (UnknownShop, *RULES_ERRORS) as exc:
        raise rules_error(exc, exit_code=2)
    click.echo(text, nl=False)
    sys.exit(1 if text else 0)


@rules.command("history")
@SHOP_OPTION
def rules_history(shop_id):
    """The shop's rule set versions; * marks the active one."""
    from plugin import rulesets
    from plugin.errors import UnknownShop

    try:
        with rule_sessions()() as session:
            versions = rulesets.history(session, shop_id)
    except (UnknownShop, *RULES_ERRORS) as exc:
        raise rules_error(exc)
    click.echo("\n".join(rulesets.format_history(versions)))

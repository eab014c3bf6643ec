"""``keepwell dead-letters``: see why the worker set backlog entries aside, put them back, or drop them."""
from __future__ import annotations

import json

import click


def _handoff():
    from plugin.config import Config
    from plugin.handoff import Handoff
    from plugin.runtime import redis_client

    config = Config.from_env()
    return Handoff(redis_client(config.redis_url), config.queue)


def _chosen(handoff, shop_id: str, entries: tuple[str, ...], everything: bool):
    from plugin import deadletters

    if bool(entries) == everything:
        raise click.UsageError("name the entries (a position or id from `keepwell dead-letters list`) or pass --all")
    if everything:
        return deadletters.listing(handoff, shop_id)
    try:
        return deadletters.find(handoff, shop_id, list(entries))
    except LookupError as exc:
        raise click.ClickException(str(exc).strip("'\""))


_SHOP = click.option("--shop", "shop_id", required=True, help="Shop id (see `keepwell shop list`).")
_ENTRIES = click.argument("entries", nargs=-1)
_ALL = click.option("--all", "everything", is_flag=True, help="Every dead letter of the shop.")


@click.group("dead-letters")
def dead_letters():
    """Backlog entries the worker gave up on: a payload of the wrong shape, or one that kept failing."""


@dead_letters.command("list")
@click.option("--shop", "shop_id", help="Shop id; without it, the count per shop.")
def list_command(shop_id):
    """Each dead letter: position, id, when, platform and topic, and why."""
    from plugin import deadletters

    handoff = _handoff()
    if shop_id is None:
        found = deadletters.counts(handoff)
        for shop, n in found.items():
            click.echo(f"{shop}  {n}")
        if not found:
            click.echo("no dead letters")
        return
    letters = deadletters.listing(handoff, shop_id)
    for d in letters:
        click.echo(d.summary())
    if not letters:
        click.echo(f"shop {shop_id}: no dead letters")


@dead_letters.command("show")
@_SHOP
@click.argument("entry")
def show_command(shop_id, entry):
    """One dead letter in full: why, and the payload as received."""
    handoff = _handoff()
    (d,) = _chosen(handoff, shop_id, (entry,), False)
    click.echo(d.summary())
    if d.envelope is None:
        click.echo(d.raw.decode("utf-8", "replace"))
        return
    env = d.envelope
    click.echo(f"delivery key: {env.key}")
    try:
        body = json.dumps(json.loads(env.body), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        body = env.body
    click.echo(body)


@dead_letters.command("retry")
@_SHOP
@_ENTRIES
@_ALL
def retry_command(shop_id, entries, everything):
    """Put dead letters back on the shop's backlog (after fixing the cause) and drain it."""
    from plugin import deadletters

    handoff = _handoff()
    moved = deadletters.retry(handoff, shop_id, _chosen(handoff, shop_id, entries, everything))
    click.echo(f"shop {shop_id}: {moved} dead letter(s) back on the backlog")


@dead_letters.command("drop")
@_SHOP
@_ENTRIES
@_ALL
def drop_command(shop_id, entries, everything):
    """Delete dead letters for good."""
    from plugin import deadletters

    handoff = _handoff()
    dropped = deadletters.drop(handoff, shop_id, _chosen(handoff, shop_id, entries, everything))
    click.echo(f"shop {shop_id}: {dropped} dead letter(s) dropped")

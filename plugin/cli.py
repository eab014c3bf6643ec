"""The ``keepwell`` command line."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from plugin.rulefile import RULES_DIR, lint, load_rules, rule_files
from plugin.errors import RuleError


@click.group()
def main():
    """Keepwell: retention rules for Shopify and WooCommerce stores."""


@main.group()
def rules():
    """Validate and inspect rule files."""


@rules.command("lint")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--templates", type=click.Path(file_okay=False, path_type=Path), help="Email templates folder (default: templates/ beside the rules).")
def rules_lint(paths, templates):
    """Check rule files (or folders of them, as one rule set). Quiet when valid."""
    _, problems = lint(rule_files(paths), templates)
    for p in problems:
        click.echo(str(p))
    sys.exit(1 if problems else 0)


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
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def simulate(history, rules_path, sample, seed, fmt):
    """Replay a store history (JSON Lines of canonical events) through the rules in virtual time."""
    from plugin.simulate import simulate as run

    if (history is None) == (sample is None):
        raise click.UsageError("give a HISTORY file or --sample N")
    ruleset = _load(rules_path)
    if sample is not None:
        from plugin.events import event_from_dict
        from plugin.sample_history import generate

        events = [event_from_dict(d) for d in generate(sample, seed=seed)]
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
@click.argument("history", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--customer", "customer_id", required=True, help="Customer id.")
@click.option("--event", "event_id", help="Event id (default: the customer's last event).")
@click.option("--rules", "rules_path", default=RULES_DIR, show_default=True, type=click.Path(exists=True, path_type=Path))
def explain(history, customer_id, event_id, rules_path):
    """Why did (or didn't) a customer get a touch? Each rule's verdict, condition by condition."""
    from plugin.explain import explain as run

    try:
        lines = run(_read_history(history), _load(rules_path), customer_id, event_id)
    except LookupError as exc:
        raise click.ClickException(str(exc))
    click.echo("\n".join(lines))


if __name__ == "__main__":
    main()

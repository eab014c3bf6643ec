"""A shop's rule set versions from the command line: push, pull, diff and history.

A push is linted exactly like ``keepwell rules lint DIR``; only a clean set becomes the shop's
new active version (``plugin.shops.install_rules``), so a rejected push never replaces the last
good version (DESIGN.md principle 4). Versions are kept: history lists them, pull writes one out.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml
from sqlalchemy import select

from plugin.db import RuleSetRow, ShopRow
from plugin.errors import KeepwellError, UnknownShop
from plugin.rulefile import Problem, currency_warnings, lint, rule_files
from plugin.shops import active_rule_row, install_rules, read_rule_dir

TEMPLATE_SUFFIXES = (".html", ".txt")
RULE_SUFFIXES = (".yaml", ".yml")


class NoRuleSet(KeepwellError, LookupError):
    """The shop has no such rule set version."""


@dataclass(frozen=True)
class PushResult:
    """What a push did: ``problems`` when rejected, else the active row and whether it is new."""

    problems: list[Problem]
    row: RuleSetRow | None = None
    previous: RuleSetRow | None = None
    created: bool = False
    warnings: list[Problem] = field(default_factory=list)  # e.g. amounts in another currency than the shop's


@dataclass(frozen=True)
class VersionInfo:
    version: int
    created_at: datetime
    active: bool
    digest: str
    engine_version: str
    rules: int


def get_shop(session, shop_id: str) -> ShopRow:
    row = session.get(ShopRow, shop_id)
    if row is None:
        raise UnknownShop(f"no shop {shop_id!r} (see `keepwell shop list`)")
    return row


def push(session, shop_id: str, path: Path) -> PushResult:
    """Lint ``path`` (rule files + path/templates) and, when clean, make it the shop's active
    version. Identical content to the active version makes no new version."""
    shop = get_shop(session, shop_id)
    path = Path(path)
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a folder of rule files")
    files = rule_files([path])
    if not files:
        raise FileNotFoundError(f"{path} holds no rule files (*.yaml, *.yml)")
    result = lint(files)
    previous = active_rule_row(session, shop_id)
    if result.problems:
        return PushResult(problems=result.problems, previous=previous)
    row = install_rules(session, shop_id, read_rule_dir(path))
    sources = [(str(f), f.read_bytes()) for f in files]
    in_files_currency = set(currency_warnings(sources))  # replaced by the ones in the shop's currency
    warnings = sorted([w for w in result.warnings if w not in in_files_currency]
                      + currency_warnings(sources, (shop.settings or {}).get("currency")))
    return PushResult(problems=[], row=row, previous=previous, created=previous is None or row.id != previous.id,
                      warnings=warnings)


def get_version(session, shop_id: str, version: int | None = None) -> RuleSetRow:
    """The shop's active rule set version, or version number ``version``."""
    get_shop(session, shop_id)
    if version is None:
        row = active_rule_row(session, shop_id)
        if row is None:
            raise NoRuleSet(f"shop {shop_id} has no active rule set")
        return row
    row = session.scalar(select(RuleSetRow).where(RuleSetRow.shop_id == shop_id, RuleSetRow.version == version))
    if row is None:
        raise NoRuleSet(f"shop {shop_id} has no rule set version {version} (see `keepwell rules history --shop {shop_id}`)")
    return row


def _keepwell_files(path: Path) -> list[Path]:
    """The files a push of ``path`` would read: rule files, and templates in path/templates."""
    out = [p for p in path.iterdir() if p.is_file() and p.suffix in RULE_SUFFIXES]
    templates = path / "templates"
    if templates.is_dir():
        out += [p for p in templates.iterdir() if p.is_file() and p.suffix in TEMPLATE_SUFFIXES]
    return sorted(out)


def _target(dest: Path, name: str) -> Path:
    """Where a stored file name goes; stored names are NAME or templates/NAME, nothing else."""
    parts = name.split("/")
    if (len(parts) > 2 or (len(parts) == 2 and parts[0] != "templates")
            or any(p in ("", ".", "..") or "\\" in p for p in parts)):
        raise ValueError(f"refusing to write stored file name {name!r}")
    return dest.joinpath(*parts)


def write_files(files: dict[str, str], dest: Path, force: bool = False) -> list[Path]:
    """Write a stored rule set into ``dest``; a non-empty ``dest`` needs ``force``, which also
    removes rule and template files the version does not have (so a later push sends the same set).
    Returns the paths written."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise NotADirectoryError(f"{dest} is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise FileExistsError(f"{dest} is not empty: pull into an empty folder, or pass --force to overwrite")
    targets = {_target(dest, name): text for name, text in files.items()}
    if dest.is_dir():
        for stale in _keepwell_files(dest):
            if stale not in targets:
                stale.unlink()
    for target, text in sorted(targets.items()):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return sorted(targets)


def pull(session, shop_id: str, dest: Path, version: int | None = None, force: bool = False) -> tuple[RuleSetRow, list[Path]]:
    """Write the shop's active (or given) version into ``dest``."""
    row = get_version(session, shop_id, version)
    return row, write_files(row.files, dest, force)


def diff(session, shop_id: str, path: Path) -> str:
    """A unified diff from the shop's active version to the rule set in ``path``; '' when equal."""
    row = get_version(session, shop_id)
    path = Path(path)
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a folder of rule files")
    ours, theirs = row.files, read_rule_dir(path)
    out = []
    for name in sorted(set(ours) | set(theirs)):
        a, b = ours.get(name), theirs.get(name)
        if a == b:
            continue
        for line in difflib.unified_diff(
                (a or "").splitlines(keepends=True), (b or "").splitlines(keepends=True),
                fromfile=f"v{row.version}/{name}" if a is not None else "/dev/null",
                tofile=str(path / name) if b is not None else "/dev/null"):
            out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def count_rules(files: dict[str, str]) -> int:
    """How many rules a stored set declares (read, not compiled: old versions count too)."""
    n = 0
    for name, text in files.items():
        if name.startswith("templates/"):
            continue
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        rules = data.get("rules") if isinstance(data, dict) else None
        n += len(rules) if isinstance(rules, list) else 0
    return n


def history(session, shop_id: str) -> list[VersionInfo]:
    """Every rule set version of the shop, oldest first."""
    get_shop(session, shop_id)
    rows = session.scalars(select(RuleSetRow).where(RuleSetRow.shop_id == shop_id).order_by(RuleSetRow.version))
    return [VersionInfo(r.version, r.created_at, r.active, r.digest, r.engine_version, count_rules(r.files)) for r in rows]


def format_history(versions: list[VersionInfo]) -> list[str]:
    """``keepwell rules history`` lines: a header, then one line per version; * marks the active one."""
    lines = [f"  {'version':>7}  {'created (UTC)':<19}  {'digest':<16}  {'engine':<12}  rules"]
    for v in versions:
        lines.append(f"{'*' if v.active else ' '} {v.version:>7}  {v.created_at.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}  {v.digest:<16}  "
                     f"{v.engine_version or '-':<12}  {v.rules:>5}")
    return lines


__all__ = ["NoRuleSet", "PushResult", "VersionInfo", "get_shop", "push", "get_version", "write_files", "pull", "diff",
           "count_rules", "history", "format_history"]

"""Connected shops and their versioned rule sets (database side)."""
from __future__ import annotations

import hashlib
import secrets as token
from datetime import datetime
from pathlib import Path
from typing import Mapping

import jsonschema
from sqlalchemy import select

import connectors
from connectors.base import Shop
from plugin import secrets
from plugin.config import Config
from plugin.db import RuleSetRow, ShopRow, utcnow
from plugin.engine import RuleSet
from plugin.engine.ruleset import with_currency
from plugin.events import Event
from plugin.errors import KeepwellError, RuleError
from plugin.rulefile import RULES_DIR, lint_sources, read_templates, rule_files
from plugin.sms.settings import sms_document


def default_api_url(platform: str, domain: str) -> str:
    return connectors.get(platform).default_api_url(domain).rstrip("/")


def normal_domain(platform: str, domain: str) -> str:
    """A store's address as stored (Shopify domains in lower case, no trailing slash)."""
    return connectors.get(platform).normal_domain(domain.strip().rstrip("/"))


def credentials_document(platform: str, given: Mapping) -> dict:
    """The platform's credentials document from ``given`` (empty values left out); ValueError
    names what its ``credentials_schema`` does not allow."""
    document = {k: v for k, v in given.items() if v not in ("", None)}
    try:
        jsonschema.validate(document, connectors.get(platform).credentials_schema)
    except jsonschema.ValidationError as exc:
        raise ValueError(f"{platform} credentials: {exc.message}") from None
    return document


class AlreadyConnected(KeepwellError, ValueError):
    """Adding a known store again would change what only its own command changes."""


def add_shop(session, config: Config, platform: str, domain: str, *, api_url: str | None = None,
             credentials: Mapping | None = None, webhook_secret: str | None = None, settings: dict | None = None,
             **fields) -> tuple[ShopRow, str]:
    """Register a store (or update it when it is already known); returns (row, webhook secret).
    ``credentials`` (and any ``fields`` given by name, e.g. ``access_token=``) are the platform's
    credentials document, checked against its schema; they replace the store's previous ones.

    A known store keeps its webhook secrets: its webhooks are signed with them, and a new one would
    make every delivery fail until the store had it (WooCommerce disables a webhook after 5
    failures). A different ``webhook_secret``, or a different ``consent_meta_key`` in ``settings``,
    raises AlreadyConnected naming the command that changes it (``rotate_webhook_secret``,
    ``set_consent_meta_key``). A store of a platform whose shops sign with a secret of their own
    (WooCommerce) gets a fresh random one when it has none (new, or disconnected)."""
    if platform not in connectors.platforms():
        raise ValueError(f"unknown platform {platform!r}: use one of {', '.join(connectors.platforms())}")
    document = credentials_document(platform, {**(credentials or {}), **fields})
    domain = normal_domain(platform, domain)
    row = session.scalar(select(ShopRow).where(ShopRow.platform == platform, ShopRow.domain == domain))
    kept = secrets.decrypt(config.secret_keys, row.secrets).get("webhook_secrets", []) if row is not None and row.secrets else []
    if kept and webhook_secret and webhook_secret not in kept:
        raise AlreadyConnected(f"shop {row.id} ({domain}) is already connected with another webhook secret; "
                               f"to replace it run `keepwell shop rotate-secret {row.id}`")
    own_key = (settings or {}).get("consent_meta_key")
    if row is not None and own_key and (row.settings or {}).get("consent_meta_key") not in (None, own_key):
        raise AlreadyConnected(f"shop {row.id} ({domain}) reads consent from "
                               f"{row.settings['consent_meta_key']!r}; to read {own_key!r} instead run "
                               f"`keepwell shop consent {row.id} --meta-key {own_key}`")
    if kept and (not webhook_secret or webhook_secret in kept):
        webhook_secrets = kept
    elif webhook_secret or connectors.get(platform).own_webhook_secret:
        webhook_secrets = [webhook_secret or token.token_urlsafe(32)]
    else:
        webhook_secrets = []  # signed with the app's secret (a Shopify shop)
    stored = {"credentials": document, "webhook_secrets": webhook_secrets, "referral_key": token.token_urlsafe(32)}
    if row is None:
        row = ShopRow(id=f"{platform[:2]}_{token.token_hex(6)}", platform=platform, domain=domain, settings={})
        session.add(row)
    else:
        before = secrets.decrypt(config.secret_keys, row.secrets) if row.secrets else {}
        stored["referral_key"] = before.get("referral_key") or stored["referral_key"]  # codes already shared stay valid
        if before.get("sms"):
            stored["sms"] = before["sms"]  # the SMS provider is not the store's: connecting again keeps it
    row.api_url = (api_url or default_api_url(platform, domain)).rstrip("/")
    row.secrets = secrets.encrypt(config.secret_keys, stored)
    row.settings = {**(row.settings or {}), **(settings or {})}
    row.active = True
    session.flush()
    if session.scalar(select(RuleSetRow.id).where(RuleSetRow.shop_id == row.id)) is None:
        install_rules(session, row.id, read_rule_dir(RULES_DIR))
    return row, (webhook_secrets[0] if webhook_secrets else "")


def rotate_webhook_secret(session, config: Config, shop_id: str, new_secret: str | None = None, *,
                          forget_previous: bool = False) -> tuple[ShopRow, list[str]]:
    """Make ``new_secret`` (a fresh random one when None) the shop's webhook secret, keeping the
    previous one so deliveries signed with it are still accepted until the store has the new
    one; with ``forget_previous`` only the current secret is kept (nothing new is made).
    Returns (row, secrets, newest first). LookupError for an unknown shop."""
    row = session.get(ShopRow, shop_id)
    if row is None:
        raise LookupError(f"no shop {shop_id!r} (see `keepwell shop list`)")
    stored = secrets.decrypt(config.secret_keys, row.secrets)
    current = list(stored.get("webhook_secrets") or [])
    if forget_previous:
        if not current:
            raise ValueError(f"shop {shop_id} has no webhook secret of its own")
        current = current[:1]
    else:
        current = list(dict.fromkeys([new_secret or token.token_urlsafe(32), *current[:1]]))
    stored["webhook_secrets"] = current
    row.secrets = secrets.encrypt(config.secret_keys, stored)
    session.flush()
    return row, current


def set_consent_meta_key(session, shop_id: str, key: str | None, setting: str = "consent_meta_key") -> ShopRow:
    """Read WooCommerce marketing consent from ``key`` first (None: only the known keys);
    ``setting="sms_consent_meta_key"``: the SMS consent's key."""
    row = session.get(ShopRow, shop_id)
    if row is None:
        raise LookupError(f"no shop {shop_id!r} (see `keepwell shop list`)")
    if row.platform != "woocommerce":
        raise ValueError(f"shop {shop_id} is a {row.platform} store: Shopify keeps consent on the customer")
    settings = dict(row.settings or {})
    if key:
        settings[setting] = key
    else:
        settings.pop(setting, None)
    row.settings = settings
    session.flush()
    return row


def set_sms(session, config: Config, shop_id: str, document: Mapping | None) -> ShopRow:
    """Store the shop's SMS provider settings (``{"provider": "twilio", "account_sid", "auth_token",
    "from"}``, checked by plugin.sms.settings; ValueError says what is wrong), encrypted with its
    other secrets; None or an empty document removes them (the shop then sends no SMS).
    LookupError for an unknown shop."""
    row = session.scalar(select(ShopRow).where(ShopRow.id == shop_id).with_for_update())
    if row is None:
        raise LookupError(f"no shop {shop_id!r} (see `keepwell shop list`)")
    stored = secrets.decrypt(config.secret_keys, row.secrets) if row.secrets else {}
    if document:
        stored["sms"] = sms_document(document)
    else:
        stored.pop("sms", None)
    row.secrets = secrets.encrypt(config.secret_keys, stored)
    session.flush()
    return row


def to_shop(row: ShopRow, config: Config) -> Shop:
    """The connector's view of a shop, secrets decrypted, with what its platform's app adds
    (e.g. Shopify's app secret for shops without their own, and its token keeper)."""
    s = secrets.decrypt(config.secret_keys, row.secrets)
    shop = Shop(id=row.id, platform=row.platform, domain=row.domain, api_url=row.api_url,
                credentials=dict(s.get("credentials") or {}), webhook_secrets=tuple(s.get("webhook_secrets") or ()),
                referral_key=s.get("referral_key", ""), settings=dict(row.settings or {}), sms=dict(s.get("sms") or {}))
    return connectors.get(row.platform).with_app(shop, config)


def referral_key(session, config: Config, shop_id: str) -> str:
    """The shop's secret referral key; created (under a row lock) for a shop that has none yet."""
    row = session.scalar(select(ShopRow).where(ShopRow.id == shop_id).with_for_update())
    if row is None:
        return ""
    stored = secrets.decrypt(config.secret_keys, row.secrets)
    if not stored.get("referral_key"):
        stored["referral_key"] = token.token_urlsafe(32)
        row.secrets = secrets.encrypt(config.secret_keys, stored)
        session.flush()
    return stored["referral_key"]


def find_shop(session, platform: str, domain: str) -> ShopRow | None:
    return session.scalar(select(ShopRow).where(ShopRow.platform == platform,
                                                ShopRow.domain == normal_domain(platform, domain)))


# --- rule sets --------------------------------------------------------------------------------

def read_rule_dir(path: Path) -> dict[str, str]:
    """A rule folder as stored: rule files by name, templates as templates/NAME."""
    path = Path(path)
    files = {p.name: p.read_text(encoding="utf-8") for p in rule_files([path])}
    files.update({f"templates/{name}": text for name, text in read_templates(path / "templates").items()})
    return files


def _split(files: dict[str, str]):
    sources = [(name, text.encode("utf-8")) for name, text in sorted(files.items()) if not name.startswith("templates/")]
    templates = {name.removeprefix("templates/"): text for name, text in files.items() if name.startswith("templates/")}
    return sources, templates


def compile_files(files: dict[str, str], now: datetime | None = None) -> RuleSet:
    """Lint and compile a stored rule set (``now``: one being installed, see lint_sources);
    RuleError lists the problems."""
    sources, templates = _split(files)
    ruleset, problems = lint_sources(sources, templates, now=now)
    if problems:
        raise RuleError(problems)
    return ruleset


def install_rules(session, shop_id: str, files: dict[str, str]) -> RuleSetRow:
    """Lint then activate ``files`` as the shop's newest rule set version, atomically.
    A rejected set raises RuleError and leaves the previous version active."""
    digest = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()[:16]
    current = active_rule_row(session, shop_id)
    if current is not None and current.digest == digest:
        return current
    last = session.scalar(select(RuleSetRow.version).where(RuleSetRow.shop_id == shop_id)
                          .order_by(RuleSetRow.version.desc()).limit(1)) or 0
    for row in session.scalars(select(RuleSetRow).where(RuleSetRow.shop_id == shop_id, RuleSetRow.active)):
        row.active = False
    row = RuleSetRow(shop_id=shop_id, version=last + 1, digest=digest, engine_version=compile_files(files, utcnow()).version,
                     files=files, active=True)
    session.add(row)
    session.flush()
    return row


def active_rule_row(session, shop_id: str) -> RuleSetRow | None:
    return session.scalar(select(RuleSetRow).where(RuleSetRow.shop_id == shop_id, RuleSetRow.active))


_compiled: dict[str, tuple[RuleSet, dict[str, str]]] = {}  # digest -> (rule set, templates)


def _compiled_row(session, row_id: int, digest: str) -> tuple[RuleSet, dict[str, str]]:
    """Compile a stored version once per process; the stored files are only read on a miss."""
    hit = _compiled.get(digest)
    if hit is None:
        files = session.get(RuleSetRow, row_id).files
        hit = _compiled[digest] = (compile_files(files), _split(files)[1])
    return hit


def active_rules(session, shop_id: str) -> tuple[RuleSet, dict[str, str]]:
    """The shop's active rule set (compiled once per version) and its templates."""
    found = session.execute(select(RuleSetRow.id, RuleSetRow.digest)
                            .where(RuleSetRow.shop_id == shop_id, RuleSetRow.active)).first()
    if found is None:
        raise RuleError([f"shop {shop_id} has no rule set"])
    return _compiled_row(session, *found)


def shop_currency(session, shop_id: str) -> str | None:
    """The store's currency as Keepwell knows it (set at connect or learned from its orders)."""
    row = session.get(ShopRow, shop_id)
    return (row.settings or {}).get("currency") if row is not None else None


def learn_currency(session, shop_id: str, event: Event) -> None:
    """Remember the store's currency from its first order: order amounts arrive in it (Shopify's
    ``shop_money``, WooCommerce's store currency), so rule amounts without a currency can mean it."""
    if event.order is None or event.type not in ("order.created", "order.paid"):
        return
    row = session.get(ShopRow, shop_id)
    if row is not None and not (row.settings or {}).get("currency") and event.order.total.currency:
        row.settings = {**(row.settings or {}), "currency": event.order.total.currency}


def rules_for(session, shop_id: str, version: str | None = None) -> tuple[RuleSet, dict[str, str]]:
    """The rule set (and templates) work started under ``version`` (a RuleSet.version) runs with:
    that version while the shop still has it, else the active one. Delayed touches keep the
    rules, coupons and templates they were scheduled with even after a newer push. The rule set
    carries the shop's currency, so amounts written without one mean it."""
    ruleset, templates = _rules_for(session, shop_id, version)
    return with_currency(ruleset, shop_currency(session, shop_id)), templates


def _rules_for(session, shop_id: str, version: str | None) -> tuple[RuleSet, dict[str, str]]:
    if version:
        # Template-only changes keep the engine version: prefer the active row, then the newest.
        row = session.execute(select(RuleSetRow.id, RuleSetRow.digest)
                              .where(RuleSetRow.shop_id == shop_id, RuleSetRow.engine_version == version)
                              .order_by(RuleSetRow.active.desc(), RuleSetRow.version.desc()).limit(1)).first()
        if row is not None:
            try:
                return _compiled_row(session, *row)
            except RuleError:
                pass  # an old version this engine no longer accepts: the active one decides
    return active_rules(session, shop_id)

"""``keepwell doctor``: check a deployment's configuration and say exactly what is wrong.

Each check returns one line: OK, WARN (works, but look), FAIL (will break) or SKIP (could not
run because an earlier check failed), with what was found and how to fix it. Nothing is sent:
SMTP gets EHLO and QUIT, Redis a key that is deleted again, the database only reads.
"""
from __future__ import annotations

import ipaddress
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from plugin.config import DEV_SECRET_KEY, Config

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"
MIN_SECRET_KEY_LENGTH = 32
MAX_LISTED = 5  # failing shops named in one line


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    hint: str = ""

    def __str__(self) -> str:
        line = f"{self.status:<4} {self.name}: {self.detail}"
        return line + (f". Fix: {self.hint}" if self.hint and self.status != OK else "")


def failed(checks) -> bool:
    return any(c.status == FAIL for c in checks)


def _safe_url(url: str) -> str:
    """``url`` with any password replaced by ***."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return url


def _reason(exc: BaseException) -> str:
    exc = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    message = str(exc).strip().splitlines()
    return message[0].rstrip(".") if message else type(exc).__name__


# --- configuration only -------------------------------------------------------------------------

def check_secret_key(config: Config) -> Check:
    name = "secret key"
    generate = "set KEEPWELL_SECRET_KEY to a long random value, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
    if config.secret_key == DEV_SECRET_KEY:
        return Check(name, FAIL, "KEEPWELL_SECRET_KEY is not set (the public development key is in use)", generate)
    if DEV_SECRET_KEY in config.secret_keys:
        return Check(name, WARN, "the public development key is still accepted as an old KEEPWELL_SECRET_KEY",
                     "remove it from KEEPWELL_SECRET_KEY once every shop's credentials were saved again with the new key")
    if len(config.secret_key) < MIN_SECRET_KEY_LENGTH:
        return Check(name, WARN, f"KEEPWELL_SECRET_KEY is short ({len(config.secret_key)} of at least {MIN_SECRET_KEY_LENGTH} characters)", generate)
    return Check(name, OK, "KEEPWELL_SECRET_KEY is set")


def check_shopify(config: Config) -> Check:
    name = "shopify app"
    missing = [v for v, value in (("SHOPIFY_API_KEY", config.shopify_api_key),
                                  ("SHOPIFY_API_SECRET", config.shopify_api_secrets)) if not value]
    if missing:
        return Check(name, WARN, f"{' and '.join(missing)} not set",
                     "only needed to install from the Shopify App Store: copy the app's client id and secret "
                     "from the Partner Dashboard (custom-app shops added with `keepwell shop add` work without)")
    return Check(name, OK, "SHOPIFY_API_KEY and SHOPIFY_API_SECRET are set")


def _local_host(host: str) -> str | None:
    """Why stores cannot reach ``host``, or None."""
    if host == "localhost" or host.endswith(".localhost"):
        return "is this machine (localhost)"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.is_loopback or ip.is_unspecified:
        return "is this machine (a loopback address)"
    if ip.is_private or ip.is_link_local:
        return "is a private address"
    return None


def app_url_problem(url: str, platform: str | None = None) -> str | None:
    """Why stores of ``platform`` (any platform when None) cannot deliver to ``url``, or None.
    Shopify calls only https URLs; WooCommerce delivers to http too."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return f"KEEPWELL_APP_URL={url!r} is not a URL"
    if parts.scheme not in ("http", "https"):
        return f"KEEPWELL_APP_URL={url} is not an http(s) URL"
    if parts.scheme != "https" and platform != "woocommerce":
        return f"KEEPWELL_APP_URL={url} is not https (Shopify only calls https URLs)"
    if not host:
        return f"KEEPWELL_APP_URL={url} has no host name"
    why = _local_host(host)
    if why:
        return f"KEEPWELL_APP_URL={url}: {host} {why}, which stores cannot reach"
    return None


def check_app_url(config: Config) -> Check:
    """A public https URL is OK. Plain http is a warning while no Shopify app is configured
    (WooCommerce stores deliver over http) and a failure once one is."""
    name = "app url"
    url = config.app_url
    fix = "set KEEPWELL_APP_URL to this app's public https URL, e.g. https://keepwell.example.com"
    plain = url.lower().startswith("http://")
    problem = app_url_problem(url, None if config.shopify_api_key or not plain else "woocommerce")
    if problem:
        return Check(name, FAIL, problem, fix)
    if plain:
        return Check(name, WARN, f"KEEPWELL_APP_URL={url} is plain http: WooCommerce stores can deliver webhooks "
                                 "to it, but Shopify and WooCommerce's connect page need https", fix)
    return Check(name, OK, f"KEEPWELL_APP_URL={url}")


# --- services -----------------------------------------------------------------------------------

def check_redis(config: Config, timeout: float = 3.0) -> Check:
    from redis import Redis
    from redis.exceptions import RedisError

    name = "redis"
    where = _safe_url(config.redis_url)
    try:
        client = Redis.from_url(config.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except ValueError as exc:
        return Check(name, FAIL, f"REDIS_URL={where} is not a Redis URL ({exc})", "use redis://[:password@]host:6379/0 or rediss://...")
    try:
        try:
            client.ping()
        except RedisError as exc:
            return Check(name, FAIL, f"cannot reach {where}: {_reason(exc)}",
                         "start Redis, or set REDIS_URL to a Redis this machine can reach (and its password)")
        key = f"{config.queue}:doctor:{uuid.uuid4().hex}"
        try:
            client.set(key, "1", ex=60)
            readback = client.get(key)
            client.delete(key)
        except RedisError as exc:
            return Check(name, FAIL, f"{where} answers PING but refuses writes: {_reason(exc)}",
                         "point REDIS_URL at the primary (not a read-only replica) and check its maxmemory and ACLs")
        if readback != b"1":
            return Check(name, FAIL, f"{where} answers PING but did not keep a written key",
                         "check the Redis server (eviction policy, proxy in between)")
        return Check(name, OK, f"{where} answers PING and accepts writes")
    finally:
        client.close()


def check_dead_letters(config: Config, timeout: float = 3.0) -> Check:
    """Backlog entries the worker gave up on: each is a webhook (or timer) nobody acted on yet."""
    from redis import Redis
    from redis.exceptions import RedisError

    from plugin import deadletters
    from plugin.handoff import Handoff

    name = "dead letters"
    client = Redis.from_url(config.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        found = deadletters.counts(Handoff(client, config.queue))
    except RedisError as exc:
        return Check(name, SKIP, f"cannot count them: {_reason(exc)}")
    finally:
        client.close()
    if not found:
        return Check(name, OK, "none")
    listed = ", ".join(f"shop {shop} ({n})" for shop, n in list(found.items())[:MAX_LISTED])
    more = f" and {len(found) - MAX_LISTED} more shops" if len(found) > MAX_LISTED else ""
    return Check(name, WARN, f"{sum(found.values())} backlog entries were set aside: {listed}{more}",
                 "`keepwell dead-letters list --shop SHOP_ID` says why; fix the cause, then "
                 "`keepwell dead-letters retry --shop SHOP_ID --all` (or `drop`)")


def _tls(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def check_smtp(config: Config, timeout: float = 5.0) -> Check:
    from plugin.mail import parse_smtp_url

    name = "smtp"
    try:
        server = parse_smtp_url(config.smtp_url)
    except ValueError as exc:
        return Check(name, FAIL, str(exc), "set SMTP_URL to your mail server")
    where = f"{server.scheme}://{server.host}:{server.port}"
    smtp = None
    try:
        if server.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=timeout, context=_tls(server.verify))
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=timeout)
        code, reply = smtp.ehlo()
        if code != 250:
            return Check(name, FAIL, f"{where} answered EHLO with {code} {reply.decode(errors='replace')}",
                         "check SMTP_URL points at an SMTP server")
        if server.scheme == "smtp+starttls":
            smtp.starttls(context=_tls(server.verify))
            smtp.ehlo()
        if server.username:
            smtp.login(server.username, server.password or "")
    except smtplib.SMTPAuthenticationError as exc:
        return Check(name, FAIL, f"{where} refused the login for {server.username!r}: {exc.smtp_code} "
                                 f"{exc.smtp_error.decode(errors='replace') if isinstance(exc.smtp_error, bytes) else exc.smtp_error}",
                     "check the user name and password in SMTP_URL (percent-encode special characters)")
    except ssl.SSLError as exc:
        return Check(name, FAIL, f"{where}: TLS failed: {_reason(exc)}",
                     "use smtps:// for port 465, smtp+starttls:// for 587; ?verify=false accepts a self-signed certificate")
    except (smtplib.SMTPException, OSError) as exc:
        return Check(name, FAIL, f"cannot reach {where}: {_reason(exc)}",
                     "start the mail server, or set SMTP_URL to one this machine can reach")
    finally:
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
    return Check(name, OK, f"{where} answers EHLO" + (" and accepts the login" if server.username else ""))


# --- the database -------------------------------------------------------------------------------

def _engine(database_url: str, timeout: float):
    url = make_url(database_url)
    backend = url.get_backend_name()
    args = {"timeout": timeout} if backend == "sqlite" else {"connect_timeout": max(1, int(timeout))} if backend == "postgresql" else {}
    return create_engine(url, connect_args=args, poolclass=NullPool)


def check_database(config: Config, timeout: float = 5.0) -> tuple[list[Check], object | None]:
    """The database and migration checks, and an engine on a current schema (else None)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from plugin.db import MIGRATIONS

    where = _safe_url(config.database_url)
    upgrade = "run `keepwell db upgrade` (or deploy, which runs it as the release step)"
    try:
        url = make_url(config.database_url)
    except Exception as exc:  # SQLAlchemy's ArgumentError: not a database URL
        return [Check("database", FAIL, f"DATABASE_URL={where} is not a database URL ({exc})",
                      "use postgresql://user:password@host/db or sqlite:///path/keepwell.db"),
                Check("migrations", SKIP, "needs a reachable database")], None
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") and not Path(url.database).exists():
        # connecting would create an empty file: say so instead
        return [Check("database", FAIL, f"SQLite file {url.database} does not exist", upgrade),
                Check("migrations", SKIP, "needs a reachable database")], None
    engine = _engine(config.database_url, timeout)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = set(MigrationContext.configure(conn).get_current_heads())
    except Exception as exc:
        engine.dispose()
        return [Check("database", FAIL, f"cannot connect to {where}: {_reason(exc)}",
                      "check DATABASE_URL (host, port, user, password, database name) and that the server runs"),
                Check("migrations", SKIP, "needs a reachable database")], None
    checks = [Check("database", OK, f"{where} is reachable")]
    script = ScriptDirectory(str(MIGRATIONS))
    heads = set(script.get_heads())
    expected = ", ".join(sorted(heads))
    unknown = []
    for rev in current:
        try:
            if script.get_revision(rev) is None:
                unknown.append(rev)
        except CommandError:
            unknown.append(rev)
    if current == heads:
        checks.append(Check("migrations", OK, f"schema at revision {expected} (current)"))
        return checks, engine
    if not current:
        checks.append(Check("migrations", FAIL, f"the database has no Keepwell schema (unmigrated); this release expects revision {expected}", upgrade))
    elif unknown:
        checks.append(Check("migrations", FAIL, f"the database is at revision {', '.join(sorted(unknown))}, which this release "
                                                f"does not know (expects {expected}): a newer release migrated it",
                            "run the same Keepwell release everywhere that uses this database"))
    else:
        checks.append(Check("migrations", FAIL, f"the database is at revision {', '.join(sorted(current))}; this release "
                                                f"expects {expected}", upgrade))
    engine.dispose()
    return checks, None


def check_stored_secrets(config: Config, session) -> Check:
    """Decrypt the oldest and the newest shop's credentials: a dropped old key shows on the first."""
    from plugin import secrets
    from plugin.db import ShopRow

    name = "stored secrets"
    rows = []
    for order in (ShopRow.created_at.asc(), ShopRow.created_at.desc()):
        row = session.scalar(select(ShopRow).order_by(order, ShopRow.id).limit(1))
        if row is not None and row not in rows:
            rows.append(row)
    if not rows:
        return Check(name, OK, "no shops yet")
    for row in rows:
        try:
            secrets.decrypt(config.secret_keys, row.secrets)
        except secrets.SecretError:
            return Check(name, FAIL, f"shop {row.id} ({row.domain}): stored credentials cannot be decrypted with "
                                     f"the configured KEEPWELL_SECRET_KEY",
                         "set KEEPWELL_SECRET_KEY to the key they were stored with; to rotate, set 'new,old' "
                         "and keep the old key until every shop was saved again")
    return Check(name, OK, "credentials of shop " + " and ".join(r.id for r in rows) + " decrypt with the configured keys")


def check_rule_sets(session) -> Check:
    """Every active shop has an active rule set that compiles."""
    from plugin.db import ShopRow
    from plugin.errors import RuleError
    from plugin.shops import active_rule_row, compile_files

    name = "rule sets"
    shops = session.scalars(select(ShopRow).where(ShopRow.active).order_by(ShopRow.created_at, ShopRow.id)).all()
    if not shops:
        return Check(name, OK, "no active shops yet")
    compiled: dict[str, str | None] = {}  # digest -> first problem, or None
    bad = []
    for shop in shops:
        row = active_rule_row(session, shop.id)
        if row is None:
            bad.append(f"shop {shop.id} has no active rule set")
            continue
        if row.digest not in compiled:
            try:
                compile_files(row.files)
                compiled[row.digest] = None
            except RuleError as exc:
                compiled[row.digest] = f"{exc.problems[0]}" + (f" (+{len(exc.problems) - 1} more)" if len(exc.problems) > 1 else "")
        if compiled[row.digest] is not None:
            bad.append(f"shop {shop.id} version {row.version} does not compile: {compiled[row.digest]}")
    if bad:
        more = f"; and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
        return Check(name, FAIL, "; ".join(bad[:MAX_LISTED]) + more,
                     "push a valid rule set: `keepwell rules push --shop SHOP_ID DIR` (`keepwell rules lint DIR` shows every problem)")
    return Check(name, OK, f"{len(shops)} active shop(s), each with an active rule set that compiles")


def check_shopify_tokens(config: Config, session) -> Check:
    """App-installed Shopify shops still on a non-expiring offline token (refused from 2027-01-01)."""
    from plugin import secrets
    from plugin.db import ShopRow
    from plugin.tokens import on_legacy_token

    name = "shopify tokens"
    rows = session.scalars(select(ShopRow).where(ShopRow.platform == "shopify", ShopRow.active)
                           .order_by(ShopRow.created_at, ShopRow.id)).all()
    old = []
    for row in rows:
        try:
            if on_legacy_token(row, config):
                old.append(f"{row.id} ({row.domain})")
        except secrets.SecretError:
            continue  # "stored secrets" names it
    if old:
        more = f" and {len(old) - MAX_LISTED} more" if len(old) > MAX_LISTED else ""
        return Check(name, WARN, f"{len(old)} shop(s) on a non-expiring token, which Shopify refuses from "
                                 f"2027-01-01: {', '.join(old[:MAX_LISTED])}{more}",
                     "run `keepwell shop migrate-tokens` (or have the merchant open Keepwell in the Shopify admin)")
    if not rows:
        return Check(name, OK, "no active Shopify shops")
    return Check(name, OK, f"{len(rows)} active Shopify shop(s), none installed through the app on a "
                           "non-expiring token")


def check_timers(session) -> Check:
    """Touches that were never sent because their timer could not be armed again."""
    from plugin.db import DecisionRow

    name = "timers"
    failed = (DecisionRow.status == "failed") & (DecisionRow.kind == "suppressed")
    count = session.scalar(select(func.count()).select_from(DecisionRow).where(failed))
    if not count:
        return Check(name, OK, "no touch lost its timer")
    rows = session.execute(select(DecisionRow.shop_id, DecisionRow.rule_id, DecisionRow.customer_id, DecisionRow.error)
                           .where(failed).order_by(DecisionRow.updated_at.desc()).limit(MAX_LISTED)).all()
    listed = "; ".join(f"shop {s} rule {r} customer {c}: {e}" for s, r, c, e in rows)
    return Check(name, WARN, f"{count} touch(es) not sent because their timer failed ({listed})",
                 "keep every machine's clock synchronised (NTP); `keepwell explain --shop SHOP_ID --customer ID` "
                 "and the dashboard's activity page show each one")


CONSENT_SAMPLE = 500  # the latest customers looked at per WooCommerce shop
CONSENT_MIN = 20  # fewer customers than this say nothing yet


def check_woocommerce_consent(session) -> Check:
    """WooCommerce itself keeps no marketing consent: a store whose customers never carry an
    answer gets no marketing at all. Looks at each active WooCommerce shop's latest customers."""
    from plugin.db import CustomerRow, ShopRow

    name = "woocommerce consent"
    shops = session.scalars(select(ShopRow.id).where(ShopRow.active, ShopRow.platform == "woocommerce")
                            .order_by(ShopRow.created_at, ShopRow.id)).all()
    if not shops:
        return Check(name, OK, "no active WooCommerce shops")
    silent = []
    for shop_id in shops:
        states = session.scalars(select(CustomerRow.state).where(CustomerRow.shop_id == shop_id)
                                 .order_by(CustomerRow.updated_at.desc()).limit(CONSENT_SAMPLE)).all()
        if len(states) >= CONSENT_MIN and not any(s.get("consent_at") for s in states):
            silent.append(f"{shop_id} (none of its latest {len(states)} customers)")
    if silent:
        more = f" and {len(silent) - MAX_LISTED} more" if len(silent) > MAX_LISTED else ""
        return Check(name, WARN, f"no marketing consent is known, so nothing is marketed, for shop(s) "
                                 f"{', '.join(silent[:MAX_LISTED])}{more}",
                     "install the Keepwell WordPress plugin (`make wordpress-plugin`), or name the meta key your "
                     "store's opt-in is kept in: `keepwell shop consent SHOP_ID --meta-key KEY`")
    return Check(name, OK, f"{len(shops)} active WooCommerce shop(s); consent answers arrive (or too few "
                           f"customers yet to tell)")


def run(config: Config, timeout: float = 5.0) -> list[Check]:
    """Every check, in the order ``keepwell doctor`` prints them."""
    checks = [check_secret_key(config), check_shopify(config), check_app_url(config), check_redis(config, timeout)]
    if checks[-1].status == OK:
        checks.append(check_dead_letters(config, timeout))
    else:
        checks.append(Check("dead letters", SKIP, "needs a reachable Redis"))
    db_checks, engine = check_database(config, timeout)
    checks += db_checks
    checks.append(check_smtp(config, timeout))
    if engine is None:
        checks += [Check(name, SKIP, "needs a reachable, migrated database")
                   for name in ("stored secrets", "rule sets", "shopify tokens", "timers", "woocommerce consent")]
        return checks
    try:
        with Session(engine) as session:
            checks += [check_stored_secrets(config, session), check_rule_sets(session),
                       check_shopify_tokens(config, session), check_timers(session),
                       check_woocommerce_consent(session)]
    finally:
        engine.dispose()
    return checks


__all__ = ["Check", "OK", "WARN", "FAIL", "SKIP", "run", "failed", "check_secret_key", "check_shopify", "check_app_url",
           "app_url_problem", "check_redis", "check_dead_letters", "check_smtp", "check_database", "check_stored_secrets",
           "check_rule_sets", "check_shopify_tokens", "check_timers", "check_woocommerce_consent"]

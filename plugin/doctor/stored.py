"""Checks on what is stored: secrets that decrypt, rule sets, Shopify tokens, timers and consent."""
from __future__ import annotations

from sqlalchemy import func, select

from plugin.config import Config
from plugin.doctor.check import FAIL, MAX_LISTED, OK, WARN, Check


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

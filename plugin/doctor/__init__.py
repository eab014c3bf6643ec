"""``keepwell doctor``: check a deployment's configuration and say exactly what is wrong.

Each check returns one line: OK, WARN (works, but look), FAIL (will break) or SKIP (could not
run because an earlier check failed), with what was found and how to fix it. Nothing is sent:
SMTP gets EHLO and QUIT, Redis a key that is deleted again, the database only reads.
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from plugin.config import Config
from plugin.doctor.check import FAIL, OK, SKIP, WARN, Check, failed
from plugin.doctor.database import check_database
from plugin.doctor.services import check_dead_letters, check_redis, check_smtp
from plugin.doctor.settings import app_url_problem, check_app_url, check_secret_key, check_shopify
from plugin.doctor.stored import (
    check_rule_sets,
    check_shopify_tokens,
    check_stored_secrets,
    check_timers,
    check_woocommerce_consent,
)


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

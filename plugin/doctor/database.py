"""Checks on the database: reachable, migrated; and the engine the stored-data checks use."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from plugin.config import Config
from plugin.doctor.check import FAIL, OK, SKIP, Check, reason, safe_url


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

    where = safe_url(config.database_url)
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
        return [Check("database", FAIL, f"cannot connect to {where}: {reason(exc)}",
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

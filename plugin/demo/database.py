"""The demo's database: SQLite in the work folder by default, or the one ``--database-url``
names (PostgreSQL in any form DATABASE_URL accepts). A given database must hold no shops yet:
the demo adds its two stores and reports on everything the database holds, and it never
deletes anything it did not create."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from plugin.config import Config


def choose(workdir: Path, given: str | None) -> str:
    """DATABASE_URL for the demo's processes."""
    return given if given else f"sqlite:///{workdir / 'keepwell.db'}"


def describe(url: str) -> str:
    """The URL without its password, for the services list."""
    return make_url(Config.from_env({"DATABASE_URL": url}).database_url).render_as_string(hide_password=True)


def check_empty(url: str) -> None:
    """Raise DemoError unless ``url`` is reachable and holds no shops."""
    from plugin.demo.processes import DemoError

    engine = create_engine(Config.from_env({"DATABASE_URL": url}).database_url)
    try:
        with engine.connect() as conn:
            shops = conn.scalar(text("SELECT count(*) FROM shops")) if inspect(conn).has_table("shops") else 0
    except SQLAlchemyError as exc:
        raise DemoError(f"cannot use the database {describe(url)}: {exc.__class__.__name__}: "
                        f"{str(getattr(exc, 'orig', exc)).strip()}") from None
    finally:
        engine.dispose()
    if shops:
        raise DemoError(f"the database {describe(url)} already holds {shops} shop(s): the demo needs an empty one "
                        f"(it adds two demo stores and reports on everything in it); create one, e.g. "
                        f"`createdb keepwell_demo`, and pass --database-url postgresql://HOST/keepwell_demo")

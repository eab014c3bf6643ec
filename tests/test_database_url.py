"""DATABASE_URL as hosting platforms hand it out, and database pools that survive a fork.

Heroku and Fly hand out ``postgres://…``, Render and Railway ``postgresql://…``, often with
``?sslmode=require``; SQLAlchemy needs the driver named. A process that forks after using the
database (gunicorn --preload, RQ's forking worker, multiprocessing) must not let the child talk
on the parent's server connection: psycopg's prepared statements (``_pg3_0``) would then clash."""
from __future__ import annotations

import os

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from plugin.config import Config
from plugin.db import get_engine


@pytest.mark.parametrize("given, expected", [
    ("postgres://u:p%40ss@db.example.com:5432/d8f", "postgresql+psycopg://u:p%40ss@db.example.com:5432/d8f"),
    ("postgresql://u:p@db.example.com/d8f", "postgresql+psycopg://u:p@db.example.com/d8f"),
    ("postgres://u:p@db.example.com:5432/d8f?sslmode=require",
     "postgresql+psycopg://u:p@db.example.com:5432/d8f?sslmode=require"),
    ("postgresql://u:p@db.internal/d8f?sslmode=disable&connect_timeout=5",
     "postgresql+psycopg://u:p@db.internal/d8f?sslmode=disable&connect_timeout=5"),
    ("postgresql+psycopg://u:p@db.example.com/d8f", "postgresql+psycopg://u:p@db.example.com/d8f"),
    ("sqlite:////srv/keepwell/keepwell.db", "sqlite:////srv/keepwell/keepwell.db"),
])
def test_database_url_forms(given, expected):
    url = Config.from_env({"DATABASE_URL": given}).database_url
    assert url == expected
    assert make_url(url).get_driver_name() in ("psycopg", "pysqlite")


def _platform_forms(postgres_url: str) -> list[str]:
    """This test session's database, written as the platforms write it."""
    rest = postgres_url.split("://", 1)[1]
    return [f"postgres://{rest}", f"postgresql://{rest}", f"postgres://{rest}?sslmode=prefer",
            f"postgresql://{rest}?sslmode=disable&application_name=keepwell"]


def test_each_platform_form_connects(postgres_url):
    for given in _platform_forms(postgres_url):
        engine = get_engine(Config.from_env({"DATABASE_URL": given}).database_url)
        with engine.connect() as conn:
            assert conn.scalar(text("select current_database()")) == make_url(postgres_url).database, given


def test_sslmode_reaches_the_driver(postgres_url):
    """``?sslmode=require`` is not dropped on the way to libpq: it gets SSL, or refuses a server
    that has none (the local test server usually)."""
    rest = postgres_url.split("://", 1)[1]
    with psycopg.connect(postgres_url.replace("+psycopg", "")) as conn:
        server_ssl = conn.execute("show ssl").fetchone()[0] == "on"
    engine = get_engine(Config.from_env({"DATABASE_URL": f"postgres://{rest}?sslmode=require"}).database_url)
    if server_ssl:
        with engine.connect() as conn:
            assert conn.scalar(text("select ssl from pg_stat_ssl where pid = pg_backend_pid()")) is True
    else:
        with pytest.raises(OperationalError, match="SSL"):
            engine.connect()


def _run_many(engine, sql: str, times: int = 8) -> int:
    """Run ``sql`` often enough that psycopg prepares it on the server (after 5 runs)."""
    with engine.connect() as conn:
        for _ in range(times):
            value = conn.scalar(text(sql))
        return value


def test_a_forked_child_gets_its_own_connection(postgres_url):
    engine = get_engine(postgres_url)
    engine.dispose()  # earlier tests may have left several connections pooled: start with none
    parent_pid = _run_many(engine, "select pg_backend_pid()")  # the pool now holds one prepared connection
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read)
        try:
            pid = _run_many(engine, "select pg_backend_pid() + 0")  # prepared as the next _pg3_N
            os.write(write, str(pid).encode())
            code = 0
        except BaseException as exc:  # noqa: BLE001 - report anything to the parent
            os.write(write, repr(exc).encode())
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read) as f:
        said = f.read()
    assert os.waitpid(child, 0)[1] == 0, said
    assert int(said) != parent_pid  # the child opened its own server connection
    # The parent's session is intact: it prepares the same statement name the child used.
    assert _run_many(engine, "select pg_backend_pid() + 1") == parent_pid + 1

"""Real services for the end-to-end tests: Redis, PostgreSQL and SQLite, an SMTP server.

Redis: REDIS_URL when set, else 127.0.0.1:6379, else a private redis-server started here; tests
use database 13 (KEEPWELL_TEST_REDIS_DB to run suites side by side) and a unique queue/key prefix
each, deleted afterwards. PostgreSQL: a database
created per test session on TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/postgres)
and dropped at the end. SMTP: an aiosmtpd server on a free local port.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from contextlib import contextmanager

import pytest
from redis import Redis

import children


def pytest_configure(config):
    children.install()



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_alive(url: str) -> bool:
    try:
        return Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except Exception:
        return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """The URL of a running Redis, on the test database (13 unless KEEPWELL_TEST_REDIS_DB says)."""
    db = int(os.environ.get("KEEPWELL_TEST_REDIS_DB", "13"))
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
    base = url.rsplit("/", 1)[0] if url.count("/") > 2 else url
    if _redis_alive(base):
        yield f"{base}/{db}"
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("no Redis reachable and no redis-server installed: run `make test` (it installs one)")
    port = free_port()
    proc = children.start([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                           "--dir", str(tmp_path_factory.mktemp("redis"))], env=dict(os.environ), stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}"
    for _ in range(100):
        if _redis_alive(url):
            break
        time.sleep(0.05)
    yield f"{url}/{db}"
    children.stop(proc, 5)


@contextmanager
def _new_postgres_database():
    """(admin URL, name) of a database created here and dropped afterwards."""
    import psycopg

    admin = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"keepwell_test_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL not reachable at {admin} ({exc}); run `make test`, which starts it")
    try:
        yield admin, name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh PostgreSQL database for this test session."""
    with _new_postgres_database() as (admin, name):
        base = admin.rsplit("/", 1)[0]
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
        from plugin import db

        for url, engine in list(db._engines.items()):
            if name in url:
                engine.dispose()
                del db._engines[url]


@pytest.fixture
def empty_postgres_url():
    """A database of its own for one test, as hosting platforms write its URL (postgres://)."""
    with _new_postgres_database() as (admin, name):
        yield f"postgres://{admin.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"


class Mailbox:
    """Messages an aiosmtpd server received, parsed."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        self.messages.append(message_from_bytes(envelope.original_content or envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.url = f"smtp://127.0.0.1:{port}"
    yield box
    controller.stop()


@pytest.fixture(autouse=True)
def _shared_caches_unbound():
    """Each test starts as a fresh process does: a Runtime made by an earlier test (a CLI command,
    say) binds the connectors' shared caches and Shopify's cost bucket to its Redis for the whole
    process, which would pace or answer this test's store calls from another test's state."""
    from connectors import cache

    cache.bind(None)

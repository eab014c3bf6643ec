"""Redis and PostgreSQL for a benchmark run with no arguments: found, or started.

Redis: REDIS_URL or 127.0.0.1:6379 when one answers, else a private redis-server on a free
port (stopped at the end). PostgreSQL: KEEPWELL_BENCH_DATABASE_URL, TEST_POSTGRES_URL, or
what scripts/services.sh finds or starts (it installs PostgreSQL on a machine without it); the
bench gets a fresh database of its own there, dropped at the end.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from redis import Redis

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def redis_url(db: int = 14):
    """A Redis URL for the bench (database ``db`` on a shared server)."""
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
    try:
        Redis.from_url(f"{base}/{db}", socket_connect_timeout=1).ping()
        yield f"{base}/{db}"
        return
    except Exception:
        if not shutil.which("redis-server"):
            raise RuntimeError("no Redis answers at REDIS_URL and redis-server is not installed "
                               "(scripts/services.sh installs it)")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="keepwell-bench-redis-") as tmp:
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
        try:
            url = f"redis://127.0.0.1:{port}/{db}"
            for _ in range(100):
                try:
                    Redis.from_url(url).ping()
                    break
                except Exception:
                    time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


def _postgres_admin_url() -> str:
    url = os.environ.get("KEEPWELL_BENCH_DATABASE_URL") or os.environ.get("TEST_POSTGRES_URL")
    if url:
        return url
    out = subprocess.run(["bash", str(ROOT / "scripts" / "services.sh")], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        if line.startswith("export TEST_POSTGRES_URL="):
            return line.split("=", 1)[1].strip("'\"")
    raise RuntimeError("scripts/services.sh found no PostgreSQL:\n" + out.stderr)


@contextmanager
def postgres_url():
    """A fresh PostgreSQL database for the bench (SQLAlchemy URL), dropped afterwards."""
    import psycopg

    admin = _postgres_admin_url().replace("postgresql+psycopg://", "postgresql://")
    name = f"keepwell_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    finally:
        from plugin import db

        for key, engine in list(db._engines.items()):
            if name in key:
                engine.dispose()
                del db._engines[key]
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

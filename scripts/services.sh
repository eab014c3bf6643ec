#!/usr/bin/env bash
# Make sure Redis and PostgreSQL are reachable for the tests; install and start them when a
# machine has neither (Debian/Ubuntu, as root). Prints `export` lines for the caller to eval.
set -euo pipefail
log() { echo "services: $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else log "need root for: $*"; exit 1; fi; }
apt_install() {
  if [ -z "${_APT_UPDATED:-}" ]; then as_root apt-get update -qq >&2; _APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# Redis: a running server on REDIS_URL / 127.0.0.1:6379, else the tests start a private
# redis-server themselves; they only need the binary.
redis_url="${REDIS_URL:-redis://127.0.0.1:6379}"
if ! command -v redis-server >/dev/null; then
  if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
    log "installing redis-server"; apt_install redis-server
  fi
fi
echo "export REDIS_URL='${redis_url}'"

# PHP's command line for the WordPress plugin's tests (lint, and a run with WordPress's hooks).
if ! command -v php >/dev/null; then log "installing php-cli"; apt_install php-cli; fi

# Chromium for the dashboard's browser tests (Playwright drives Debian's build; no downloads).
if [ ! -x /usr/bin/chromium ]; then log "installing chromium"; apt_install chromium; fi

# PostgreSQL: TEST_POSTGRES_URL if given, else the local server with trust auth, else a
# local server installed and started here with a password for the postgres role.
if [ -n "${TEST_POSTGRES_URL:-}" ]; then
  echo "export TEST_POSTGRES_URL='${TEST_POSTGRES_URL}'"; exit 0
fi
pg_ok() { command -v psql >/dev/null && PGCONNECT_TIMEOUT=3 psql "$1" -qtAc 'select 1' >/dev/null 2>&1; }
if pg_ok "postgresql://postgres@127.0.0.1:5432/postgres"; then
  echo "export TEST_POSTGRES_URL='postgresql://postgres@127.0.0.1:5432/postgres'"; exit 0
fi
if ! command -v pg_ctlcluster >/dev/null; then
  log "installing postgresql"; apt_install postgresql
fi
version=$(ls /etc/postgresql | sort -V | tail -n1)
as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 2>/dev/null || true
for _ in $(seq 1 30); do
  as_root su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1 && break; sleep 1
done
as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'keepwell'\"" >&2
url="postgresql://postgres:keepwell@127.0.0.1:5432/postgres"
pg_ok "$url" || { log "PostgreSQL did not come up at 127.0.0.1:5432"; exit 1; }
echo "export TEST_POSTGRES_URL='${url}'"

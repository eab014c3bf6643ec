#!/usr/bin/env bash
# `make demo` needs a Redis: REDIS_URL when set, else a private redis-server the demo starts
# itself, so only the binary is needed. Installs it as root on Debian/Ubuntu; otherwise says how.
set -euo pipefail
if [ -n "${REDIS_URL:-}" ] || command -v redis-server >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "ensure-redis: installing redis-server" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
  exit 0
fi
cat >&2 <<'MSG'
ensure-redis: redis-server is not installed and REDIS_URL is not set. Either
  - install it: `sudo apt-get install -y redis-server` (Debian/Ubuntu), `brew install redis` (macOS),
    or run `make demo` as root, which installs it; or
  - use a Redis you run: `REDIS_URL=redis://HOST:6379/0 make demo` (the demo only writes keys
    under its own prefix, and deletes them when it ends).
MSG
exit 1

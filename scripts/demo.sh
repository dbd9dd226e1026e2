#!/usr/bin/env bash
# The README's first command: builds the dashboard (web/out, when missing or older than its
# sources) and opslive, and runs `opslive demo` — a private PostgreSQL (wal_level=logical, its
# own port, files under ./data/demo) loaded with the shop's fixtures and a private MariaDB (row
# binlog) with the helpdesk's, the traffic simulator writing into both, and `opslive serve`
# reading both and serving the dashboard. Ctrl-C stops everything. PostgreSQL's and MariaDB's
# server binaries are installed with apt when missing (as root); arguments go to
# `opslive demo` (try --help). Without Node (>= 20.9) the demo runs without the dashboard.
set -euo pipefail
cd "$(dirname "$0")/.."

have_pg_server() {
  local bin
  bin=$( (pg_config --bindir 2>/dev/null) || true)
  [ -n "$bin" ] && [ -x "$bin/initdb" ] && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}
if ! have_pg_server; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing PostgreSQL's server binaries (apt-get install postgresql) ..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
fi
if ! [ -x /usr/sbin/mariadbd ] && ! command -v mariadbd >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing MariaDB's server binaries (apt-get install mariadb-server) ..." >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
  fi
fi

# The dashboard is a static export: Node is needed to build it, never to serve it.
web_is_stale() {
  [ -f web/out/index.html ] || return 0
  [ -n "$(find web/app web/components web/lib web/package.json web/package-lock.json web/next.config.ts \
    graphql/schema.graphql -newer web/out/index.html -print -quit 2>/dev/null)" ]
}
if web_is_stale; then
  if command -v npm >/dev/null && node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=9)?0:1)' 2>/dev/null; then
    if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
      echo "installing the dashboard's packages (npm ci) ..." >&2
      npm ci --prefix web --no-audit --no-fund --loglevel=error >&2
    fi
    echo "building the dashboard (npm run build) ..." >&2
    NEXT_TELEMETRY_DISABLED=1 npm run build --prefix web --silent >&2
  else
    echo "Node >= 20.9 with npm is missing: the demo runs without the dashboard (status page and GraphiQL only)." >&2
  fi
fi

echo "building opslive (release) ..." >&2
cargo build --release --quiet --bin opslive
exec ./target/release/opslive demo --data-dir ./data/demo "$@"

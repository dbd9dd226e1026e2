#!/usr/bin/env bash
# The README's first command: builds opslive and runs `opslive demo` — a private PostgreSQL
# (wal_level=logical, its own port, files under ./data/demo) loaded with the fixtures, the
# traffic simulator writing into it, and `opslive serve` reading it. Ctrl-C stops everything.
# PostgreSQL's server binaries are installed with apt when missing (as root); arguments go to
# `opslive demo` (try --help).
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

echo "building opslive (release) ..." >&2
cargo build --release --quiet --bin opslive
exec ./target/release/opslive demo --data-dir ./data/demo "$@"

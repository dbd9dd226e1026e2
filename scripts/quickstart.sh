#!/usr/bin/env bash
# Starts a private PostgreSQL (wal_level=logical) with the fixture schema and seed data under
# ./data/quickstart, then runs `opslive tail` on it: snapshot rows, then every change as it
# commits. Ctrl-C stops tail and the database. Re-runnable; nothing is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${OPSLIVE_QUICKSTART_PORT:-54329}
DIR=$PWD/data/quickstart
BIN=$( (pg_config --bindir 2>/dev/null) || true)
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
  BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
fi
if { [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing PostgreSQL's server binaries (apt-get install postgresql)..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
fi
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
  echo "PostgreSQL server binaries not found: install them with 'apt-get install postgresql'" >&2
  exit 1
fi

# postgres refuses to run as root: run it as the postgres account then.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

mkdir -p "$DIR"
if [ ! -f "$DIR/pg/PG_VERSION" ]; then
  mkdir -p "$DIR/pg"
  [ "$(id -u)" = 0 ] && chown -R postgres "$DIR"
  as_pg "$BIN/initdb" -D "$DIR/pg" -A trust -U postgres >/dev/null
fi
[ "$(id -u)" = 0 ] && chown -R postgres "$DIR"
as_pg "$BIN/pg_ctl" -D "$DIR/pg" -l "$DIR/postgres.log" -w -o \
  "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10" start >/dev/null
stop() { as_pg "$BIN/pg_ctl" -D "$DIR/pg" -m fast stop >/dev/null 2>&1 || true; }
trap stop EXIT

URL="postgres://postgres@127.0.0.1:$PORT/shop"
if ! psql -h 127.0.0.1 -p "$PORT" -U postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'shop'" | grep -q 1; then
  echo "loading the fixtures (schema and seed data)..." >&2
  psql -q -h 127.0.0.1 -p "$PORT" -U postgres -c "CREATE DATABASE shop"
  psql -q -h 127.0.0.1 -p "$PORT" -U postgres -d shop -v ON_ERROR_STOP=1 \
    -f fixtures/postgres/schema.sql -f fixtures/postgres/seed.sql >/dev/null
fi
sed "s|postgres://postgres@127.0.0.1:5432/shop|$URL|" fixtures/opslive.example.toml > "$DIR/opslive.toml"

cargo build --release --quiet
cat >&2 <<MSG

PostgreSQL with the fixtures is running at $URL
Printing snapshot rows, then changes as they commit. In another terminal, try:
  psql $URL -c "UPDATE orders SET status = 'paid' WHERE id = 1"
Ctrl-C stops tail and the database.

MSG
./target/release/opslive --config "$DIR/opslive.toml" tail "$@" || true

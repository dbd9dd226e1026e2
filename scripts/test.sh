#!/usr/bin/env bash
# Every test: formatting, lints, unit tests, and integration tests against private PostgreSQL
# servers started from the machine's binaries (no shared database is touched).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo fmt --check
cargo clippy --quiet --lib --bins --tests --benches -- -D warnings
cargo nextest run --profile ci

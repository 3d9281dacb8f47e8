#!/usr/bin/env bash
# Sets up what is missing, then runs every check CI runs: formatting, clippy
# (warnings denied) on the server and the WASM side, the Rust tests (unit and
# integration, against SQLite and a PostgreSQL they start), and the browser
# tests (Playwright driving Debian's Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
. scripts/env.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy (server side)"
# Not --workspace: that would build the app with both `ssr` and `hydrate`.
cargo clippy --all-targets --locked -- -D warnings
step "clippy (browser side)"
cargo clippy -p bootler-frontend --target wasm32-unknown-unknown --locked -- -D warnings

step "build the site (cargo leptos build)"
cargo leptos build

step "Rust tests"
cargo test --locked

step "browser tests"
(cd end2end && BOOTLER_BIN="$PWD/../target/debug/bootler" BOOTLER_SITE_DIR="$PWD/../target/site" node --test --test-reporter=spec tests/)

#!/usr/bin/env bash
# Sets up what is missing, then runs every check CI runs: formatting, clippy
# (warnings denied) on the server and the WASM side, the Rust tests (unit and
# integration, against SQLite and a PostgreSQL they start), and the browser
# tests (Playwright driving Debian's Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
. scripts/env.sh
# A fresh clone builds once: incremental caches only cost disk (tens of GB).
export CARGO_INCREMENTAL=0

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy (server side)"
# Not --workspace: that would build the app with both `ssr` and `hydrate`.
cargo clippy --all-targets --locked -- -D warnings
if [ "$(cat target/.wasm-route)" = rustup ]; then
  step "clippy (browser side)"
  cargo clippy -p bootler-frontend --target wasm32-unknown-unknown --locked -- -D warnings
else
  # Debian's rustc-web has no clippy: check the browser side at least.
  step "cargo check (browser side, Debian rustc-web)"
  RUSTFLAGS="-D warnings" cargo check -p bootler-frontend --target wasm32-unknown-unknown --locked
fi

step "build the site (cargo leptos build)"
cargo leptos build

step "Rust tests"
cargo test --locked 2>&1 | tee "$logs/cargo"

# The OpenStack backend against a real cloud, when one is given (the
# standard OS_* variables or OS_CLOUD, and BOOTLER_OS_LIVE_IMAGE/FLAVOR):
# see domain/tests/openstack.rs. Without them the double above stands in.
if [ -n "${OS_AUTH_URL:-}${OS_CLOUD:-}" ]; then
  step "OpenStack live test"
  cargo test --locked -p bootler-domain --test openstack -- --ignored live_cloud 2>&1 | tee -a "$logs/cargo"
fi

step "browser tests"
(cd end2end && BOOTLER_BIN="$PWD/../target/debug/bootler" BOOTLER_SITE_DIR="$PWD/../target/site" node --test --test-reporter=spec tests/) 2>&1 | tee "$logs/node"

# The release WASM goes through wasm-opt, which can break hydration (Debian's
# binaryen 108 did): run the browser tests against it too, in a site folder
# of its own.
step "browser tests (release WASM)"
LEPTOS_SITE_ROOT=target/site-release cargo leptos build --release --frontend-only
(cd end2end && BOOTLER_BIN="$PWD/../target/debug/bootler" BOOTLER_SITE_DIR="$PWD/../target/site-release" node --test --test-reporter=spec tests/) 2>&1 | tee -a "$logs/node"

# One closing line over both runners.
count() {
  awk -v word="$1" '/^test result:/ { for (i = 1; i < NF; i++) if ($(i + 1) == word ";") n += $i }
    $1 == "ℹ" && $2 == substr(word, 1, 4) { n += $3 } END { print n + 0 }' "$logs/cargo" "$logs/node"
}
passed=$(count passed)
failed=$(count failed)
echo
echo "total: $passed passed, $failed failed"

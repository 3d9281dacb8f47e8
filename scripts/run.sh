#!/usr/bin/env bash
# Sets up what is missing, builds Bootler (release) and runs it on its
# embedded defaults: http://127.0.0.1:3000, SQLite under ./data/.
# Extra arguments go to `bootler` (e.g. `scripts/run.sh --config bootler.toml`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh run
. scripts/env.sh
cargo leptos build --release
exec target/release/bootler "$@"

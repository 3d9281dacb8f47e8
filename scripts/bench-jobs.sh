#!/usr/bin/env bash
# Job queue benchmarks for docs/benchmarks.md: no-op job throughput with 1,
# 4 and 16 workers on SQLite and PostgreSQL, and the latency from a job's
# end to its WebSocket event. Starts a private PostgreSQL (Debian's
# binaries) on a free loopback port with its default, durable settings
# (fsync on, synchronous_commit on) and stops it afterwards.
#
#   scripts/bench-jobs.sh                  # 5000 jobs per run, 500 events
#   BENCH_JOBS=20000 scripts/bench-jobs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
echo "postgresql: $("$pg_bin/postgres" --version)"

cargo build --release --locked --example bench_jobs -q

dir=$(mktemp -d)
chmod 755 "$dir"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$pg_bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/pg.log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 ${BENCH_PG_OPTIONS:-}" start >/dev/null
trap 'as_pg "$pg_bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null; rm -rf "$dir"' EXIT
echo "postgresql options: ${BENCH_PG_OPTIONS:-defaults (fsync=on, synchronous_commit=on)}"

BENCH_PG_URL="postgres://postgres@127.0.0.1:$port/postgres" RUST_LOG=warn \
  target/release/examples/bench_jobs

#!/usr/bin/env bash
# Boot-storm benchmark for docs/benchmarks.md: 10,000 registered hosts and
# many keep-alive clients asking `GET /boot/{mac}` for random MACs, on
# SQLite and on PostgreSQL, beside nginx serving a static iPXE script of the
# same size in the same run. Load comes from server/examples/boot_storm.rs.
#
# For each engine: `bootler migrate`, 10,000 hosts seeded with SQL (state
# `local`, MACs 52-54-00-XX-XX-XX of their number, a holder, a global
# system template (thesis listing A.4) and a global unattended template
# (listing A.2), vars as in the thesis tests), `bootler serve` on a free
# loopback port, then:
#   local     random MACs on /boot/{mac}?hostname=… (enrolled hosts boot
#             from their disk) at each concurrency of BENCH_CURVE;
#   rendered  every host marked (install_pending); each MAC once, shuffled:
#             each request renders A.4 and moves its host to `installing`;
#   unattended  hosts installing; random MACs on /boot/{mac}/unattended
#             (renders A.2).
# plus, once, /boot.ipxe (the same router and middleware, no database: the
# ceiling of Bootler's HTTP stack on this machine).
# Bootler writes timeline rows and "last seen" behind its answers; after
# each run the script waits until they are written, and the table shows
# the rows written per answer and how long the backlog took after the run
# (rows dropped from a full queue are counted from the server's log).
# The rendered parts run when a probe shows the server renders (a marked
# host gets a script with `kernel`, /unattended answers 200); else they are
# reported as skipped. BENCH_FORCE_RENDERED=1 runs them anyway.
#
# PostgreSQL: a private cluster of Debian's binaries with its default,
# durable settings, as in scripts/bench-jobs.sh. nginx: a private instance
# (Debian package `nginx`), `worker_processes auto`, access log off.
#
#   scripts/bench-boot.sh
#   BENCH_DURATION=10 BENCH_CURVE=256 BENCH_ENGINES=sqlite scripts/bench-boot.sh
#
# Knobs: BENCH_HOSTS (10000), BENCH_CONCURRENCY (256: the rendered runs),
# BENCH_CURVE (1,64,256: local path and nginx), BENCH_DURATION (20 s),
# BENCH_WARMUP (2 s), BENCH_ENGINES (sqlite,postgres), BENCH_NGINX (1),
# BENCH_DB_MAX_CONNECTIONS (unset: Bootler's default), BENCH_PG_OPTIONS,
# BENCH_LOADGEN_THREADS (unset: all cores), BENCH_RESULTS (a file for the
# JSON lines), BENCH_KEEP=1 (keep the temporary folder: server logs,
# databases). Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

hosts=${BENCH_HOSTS:-10000}
concurrency=${BENCH_CONCURRENCY:-256}
curve=${BENCH_CURVE:-1,64,256}
duration=${BENCH_DURATION:-20}
warmup=${BENCH_WARMUP:-2}
engines=${BENCH_ENGINES:-sqlite,postgres}
with_nginx=${BENCH_NGINX:-1}
target_dir=${CARGO_TARGET_DIR:-target}
bootler=$target_dir/release/bootler
storm=$target_dir/release/examples/boot_storm
thesis=domain/src/templates/thesis

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
echo "kernel: $(uname -r); $(sed -n 's/^PRETTY_NAME=//p' /etc/os-release | tr -d '"')"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
pg_bin=""
if [[ ,$engines, == *,postgres,* ]]; then
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  echo "postgresql: $("$pg_bin/postgres" --version)"
fi
if [ "$with_nginx" = 1 ]; then
  if ! command -v nginx >/dev/null; then
    echo "nginx is not installed: apt-get install -y nginx (or BENCH_NGINX=0)" >&2
    exit 1
  fi
  echo "nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')"
fi
# Other work on the machine skews every figure: say what was running.
echo "before the run: load average $(cut -d' ' -f1-3 /proc/loadavg); busiest processes: $(ps -eo pcpu=,comm= --sort=-pcpu | head -3 | awk '{printf "%s %s%%; ", $2, $1}')"
echo "load: $hosts hosts; concurrency $curve (local, nginx), $concurrency (rendered); ${duration} s after ${warmup} s of warm-up; generator threads ${BENCH_LOADGEN_THREADS:-$(nproc)}, on the same cores"

cargo build --release --locked -p bootler-server --bin bootler --example boot_storm -q

dir=$(mktemp -d /tmp/bench-boot.XXXXXX)
chmod 755 "$dir"
results=${BENCH_RESULTS:-$dir/results.jsonl}
: >"$results"
server_pid=""
nginx_pid=""
pg_data=""
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# Stops a process of ours: TERM, then KILL if it lingers past 30 s.
stop_pid() {
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 300); do
    # Gone, or a zombie waiting for `wait`.
    ps -o stat= -p "$1" | grep -qv Z || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
stop_server() {
  if [ -n "$server_pid" ]; then
    stop_pid "$server_pid"
    server_pid=""
  fi
}
cleanup() {
  stop_server
  if [ -n "$nginx_pid" ]; then
    stop_pid "$nginx_pid"
  fi
  if [ -n "$pg_data" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true
  fi
  if [ "${BENCH_KEEP:-0}" = 1 ]; then
    echo "kept $dir (logs, databases)"
  else
    rm -rf "$dir"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# MAC of host n, hexhyp (as in URLs) or with colons (as stored).
mac_of() { printf '52-54-00-%02x-%02x-%02x' $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)); }

# CPU seconds (user + system) used so far by the processes PIDS and their
# children, live or already reaped: bootler (+ the PostgreSQL postmaster),
# or the nginx master.
cpu_seconds() {
  python3 - "$@" <<'PY'
import os, sys
def stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # from field 3 (state) on
wanted = set(sys.argv[1:])
ticks = 0
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    f = stat(pid)
    if f is None:
        continue
    if pid in wanted:
        ticks += sum(int(x) for x in f[11:15])  # utime stime cutime cstime
    elif f[1] in wanted:
        ticks += int(f[11]) + int(f[12])  # a live child
print(ticks / os.sysconf("SC_CLK_TCK"))
PY
}
# The processes whose CPU a run counts (set before each group of runs).
cpu_pids=""
cpu_before=0

# storm LABEL ARGS…: one generator run; its JSON line goes to $results.
storm() {
  local label=$1
  shift
  local threads=()
  [ -n "${BENCH_LOADGEN_THREADS:-}" ] && threads=(--threads "$BENCH_LOADGEN_THREADS")
  local line cpu_after
  # shellcheck disable=SC2086
  cpu_before=$(cpu_seconds $cpu_pids)
  line=$("$storm" --label "$label" "${threads[@]}" "$@")
  # shellcheck disable=SC2086
  cpu_after=$(cpu_seconds $cpu_pids)
  # The machine's 1-minute load average at the end of the run, and the
  # server's CPU time during it (warm-up included, like `sent`).
  line=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["loadavg"]=float(sys.argv[2]); r["server_cpu_s"]=round(float(sys.argv[4])-float(sys.argv[3]),2); print(json.dumps(r))' \
    "$line" "$(cut -d' ' -f1 /proc/loadavg)" "$cpu_before" "$cpu_after")
  echo "$line" >>"$results"
  python3 - "$line" <<'EOF'
import json, sys
r = json.loads(sys.argv[1])
print(f"  {r['label']:<28} c={r['concurrency']:<4} {r['requests']:>7} req in {r['seconds']:>6.2f} s  "
      f"{r['rps']:>9.1f} req/s  p50 {r['p50_ms']:.2f}  p90 {r['p90_ms']:.2f}  p99 {r['p99_ms']:.2f}  "
      f"max {r['max_ms']:.2f} ms  {r['bytes_per_response']:.0f} B  errors {r['errors']}  load {r['loadavg']}"
      + f"\n    server CPU {r['server_cpu_s']:.1f} s, {1e6 * r['server_cpu_s'] / max(r['sent'], 1):.0f} µs per answer"
      + (f"  statuses {r['statuses']}  e.g. {r['error_sample'][:2]}" if r['errors'] else ""))
EOF
}

# skip LABEL WHY: a run that did not happen, for the table.
skip() {
  python3 -c 'import json,sys; print(json.dumps({"label": sys.argv[1], "skipped": sys.argv[2]}))' "$1" "$2" >>"$results"
  echo "  $1: skipped ($2)"
}

# SQL on the engine under test.
sql_sqlite() {
  python3 - "$db_file" "$1" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=60)
cur = db.executescript(sys.argv[2])
db.commit()
EOF
}
query_sqlite() {
  python3 - "$db_file" "$1" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=60)
for row in db.execute(sys.argv[2]):
    print("|".join(str(c) for c in row))
EOF
}
sql_pg() { psql -h 127.0.0.1 -p "$pg_port" -U postgres -d bootler -v ON_ERROR_STOP=1 -qAt -c "$1"; }
run_sql() { if [ "$engine" = sqlite ]; then sql_sqlite "$1"; else sql_pg "$1" >/dev/null; fi; }
query() { if [ "$engine" = sqlite ]; then query_sqlite "$1"; else sql_pg "$1"; fi; }
# A bulk change of hosts; retried if it meets the server's own writes
# (a deadlock on PostgreSQL, a busy database on SQLite).
# Bulk state changes go straight to the database, behind Bootler's back.
# Bootler keeps hosts in memory (and hears of changes made through it, or
# through another replica, not of these), so it restarts to read afresh.
change_hosts() {
  local try
  for try in 1 2 3 4 5; do
    if run_sql "$1" 2>"$dir/sql.err"; then
      if [ -n "$server_pid" ]; then
        stop_server
        start_server
        set_cpu_pids
      fi
      return 0
    fi
    echo "  (retrying a bulk change: $(head -1 "$dir/sql.err"))"
    sleep 1
  done
  cat "$dir/sql.err" >&2
  return 1
}

# Bootler writes timeline rows and "last seen" behind its answers, in
# batches: after a run, wait until the count of timeline rows stops
# changing (1.5 s), so the next run starts on a quiet database and the
# backlog is measured. Sets drain_s (seconds from the end of the run to
# the last row written) and rows_now.
drain() {
  local ended=$1 last changed now
  last=$(query 'SELECT COUNT(*) FROM host_events')
  changed=$(date +%s.%N)
  while true; do
    sleep 0.25
    rows_now=$(query 'SELECT COUNT(*) FROM host_events')
    now=$(date +%s.%N)
    if [ "$rows_now" != "$last" ]; then
      last=$rows_now
      changed=$now
    elif python3 -c "import sys; sys.exit(0 if $now - $changed >= 1.5 or $now - $ended > 600 else 1)"; then
      break
    fi
  done
  drain_s=$(python3 -c "print(f'{max(0.0, $changed - $ended):.2f}')")
}

# storm_db LABEL ARGS…: a run against Bootler; then the backlog of its
# timeline rows, added to the JSON line (timeline_rows, drain_s).
storm_db() {
  local before ended
  before=$(query 'SELECT COUNT(*) FROM host_events')
  storm "$@"
  ended=$(date +%s.%N)
  drain "$ended"
  local line cpu_drained
  # shellcheck disable=SC2086
  cpu_drained=$(cpu_seconds $cpu_pids)
  line=$(tail -1 "$results")
  # The server's CPU time, writing the backlog included.
  line=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["timeline_rows"]=int(sys.argv[2]); r["drain_s"]=float(sys.argv[3]); r["server_cpu_s"]=round(float(sys.argv[5])-float(sys.argv[4]),2); print(json.dumps(r))' \
    "$line" "$((rows_now - before))" "$drain_s" "$cpu_before" "$cpu_drained")
  sed -i '$d' "$results"
  echo "$line" >>"$results"
  echo "    timeline: $((rows_now - before)) rows for $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["sent"])' "$line") answers (warm-up included); backlog written ${drain_s} s after the run; server CPU with the backlog: $(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); c=r["server_cpu_s"]; print("%.1f s, %.0f µs per answer" % (c, 1e6 * c / max(r["sent"], 1)))' "$line")"
}

# The hosts, their MACs, a holder, a pool and the two global templates.
seed_sqlite() {
  python3 - "$db_file" "$hosts" "$thesis/a4-system.ipxe" "$thesis/a2-preseed.cfg" <<'EOF'
import datetime, json, sqlite3, sys
path, n, system_file, unattended_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
now = datetime.datetime.now(datetime.timezone.utc).isoformat()
db = sqlite3.connect(path, timeout=60)
c = db.cursor()
c.execute("INSERT INTO users (username, email, display_name, role, status, created_at, activated_at) "
          "VALUES ('ana', 'ana@uminho.pt', 'Ana Silva', 'user', 'active', ?, ?)", (now, now))
user = c.lastrowid
c.execute("INSERT INTO pools (name, description, created_at) VALUES ('storm', 'boot-storm hosts', ?)", (now,))
pool = c.lastrowid
templates = {}
for name, kind, file in (("thesis-a4", "system", system_file), ("thesis-a2", "unattended", unattended_file)):
    body = open(file).read()
    c.execute("INSERT INTO templates (name, kind, owner_id, description, version, body, created_at, updated_at) "
              "VALUES (?, ?, NULL, 'boot-storm benchmark', 1, ?, ?, ?)", (name, kind, body, now, now))
    templates[kind] = c.lastrowid
    c.execute("INSERT INTO template_versions (template_id, version, body, created_by, created_at) "
              "VALUES (?, 1, ?, NULL, ?)", (c.lastrowid, body, now))
vars_ = json.dumps({"disk": "vda", "user": "gsd"})
c.executemany(
    "INSERT INTO hosts (id, name, state, pool_id, holder_id, interface, vars, state_changed_at, created_at, "
    "updated_at, system_template_id, unattended_template_id) VALUES (?, ?, 'local', ?, ?, 'eth1', ?, ?, ?, ?, ?, ?)",
    ((i, f"node-{i}", pool, user, vars_, now, now, now, templates["system"], templates["unattended"])
     for i in range(1, n + 1)))
c.executemany("INSERT INTO host_macs (mac, host_id) VALUES (?, ?)",
              ((f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}", i) for i in range(1, n + 1)))
db.commit()
c.execute("ANALYZE")
db.commit()
print(user)
EOF
}
seed_pg() {
  psql -h 127.0.0.1 -p "$pg_port" -U postgres -d bootler -v ON_ERROR_STOP=1 -qAt \
    -v n="$hosts" -v system_body="$(cat "$thesis/a4-system.ipxe")" \
    -v unattended_body="$(cat "$thesis/a2-preseed.cfg")" <<'EOF'
\set vars '{"disk": "vda", "user": "gsd"}'
INSERT INTO users (username, email, display_name, role, status, created_at, activated_at)
  VALUES ('ana', 'ana@uminho.pt', 'Ana Silva', 'user', 'active', now(), now());
INSERT INTO pools (name, description, created_at) VALUES ('storm', 'boot-storm hosts', now());
INSERT INTO templates (name, kind, owner_id, description, version, body, created_at, updated_at)
  VALUES ('thesis-a4', 'system', NULL, 'boot-storm benchmark', 1, :'system_body', now(), now()),
         ('thesis-a2', 'unattended', NULL, 'boot-storm benchmark', 1, :'unattended_body', now(), now());
INSERT INTO template_versions (template_id, version, body, created_by, created_at)
  SELECT id, version, body, NULL, now() FROM templates;
INSERT INTO hosts (id, name, state, pool_id, holder_id, interface, vars, state_changed_at, created_at,
                   updated_at, system_template_id, unattended_template_id)
  SELECT i, 'node-' || i, 'local', (SELECT id FROM pools WHERE name = 'storm'),
         (SELECT id FROM users WHERE username = 'ana'), 'eth1', :'vars', now(), now(), now(),
         (SELECT id FROM templates WHERE name = 'thesis-a4' AND owner_id IS NULL),
         (SELECT id FROM templates WHERE name = 'thesis-a2' AND owner_id IS NULL)
  FROM generate_series(1, :n) AS i;
SELECT setval('hosts_id_seq', :n);
INSERT INTO host_macs (mac, host_id)
  SELECT '52:54:00:' || lpad(to_hex(i >> 16 & 255), 2, '0') || ':' || lpad(to_hex(i >> 8 & 255), 2, '0')
         || ':' || lpad(to_hex(i & 255), 2, '0'), i
  FROM generate_series(1, :n) AS i;
ANALYZE;
SELECT id FROM users WHERE username = 'ana';
EOF
}

# The environment of `bootler` for the engine under test.
bootler_vars() {
  benv=(BOOTLER_DATABASE_URL="$db_url" BOOTLER_LISTEN="127.0.0.1:$port"
    BOOTLER_BASE_URL="http://127.0.0.1:$port" BOOTLER_DATA_DIR="$dir/data-$engine"
    BOOTLER_BOOT__DISCOVERY_PER_MINUTE=1000000 BOOTLER_BOOT__MAX_DISCOVERED=1000000
    RUST_LOG="${RUST_LOG:-warn}")
  if [ -n "${BENCH_DB_MAX_CONNECTIONS:-}" ]; then
    benv+=(BOOTLER_DATABASE_MAX_CONNECTIONS="$BENCH_DB_MAX_CONNECTIONS")
  fi
}

# The processes whose CPU time counts as the server's.
set_cpu_pids() {
  cpu_pids=$server_pid
  if [ "$engine" = postgres ]; then cpu_pids="$server_pid $(head -1 "$pg_data/postmaster.pid")"; fi
}

start_server() {
  bootler_vars
  # `env` execs bootler: $! is the server itself.
  env "${benv[@]}" "$bootler" serve >"$dir/server-$engine.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 300); do
    if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "bootler serve exited:" >&2
      tail -20 "$dir/server-$engine.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "bootler serve did not become ready" >&2
  exit 1
}

rendered_size=""
rendered_body=""
entry_done=""

bench_engine() {
  echo
  echo "== $engine"
  port=$(free_port)
  if [ "$engine" = sqlite ]; then
    db_file=$dir/data-sqlite/bootler.db
    mkdir -p "$dir/data-sqlite"
    db_url="sqlite://$db_file"
  else
    pg_data=$dir/pg/data
    mkdir -p "$dir/pg"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir/pg"
    pg_port=$(free_port)
    as_pg "$pg_bin/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 >/dev/null
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$dir/pg/pg.log" -w \
      -o "-p $pg_port -k $dir/pg -c listen_addresses=127.0.0.1 -c max_connections=200 ${BENCH_PG_OPTIONS:-}" start >/dev/null
    psql -h 127.0.0.1 -p "$pg_port" -U postgres -qAt -c "CREATE DATABASE bootler" >/dev/null
    db_url="postgres://postgres@127.0.0.1:$pg_port/bootler"
    echo "postgresql options: ${BENCH_PG_OPTIONS:-defaults (fsync=on, synchronous_commit=on)}"
  fi
  bootler_vars
  env "${benv[@]}" "$bootler" migrate >"$dir/migrate-$engine.log" 2>&1 || {
    cat "$dir/migrate-$engine.log" >&2
    exit 1
  }
  local t0 user
  t0=$(date +%s.%N)
  if [ "$engine" = sqlite ]; then user=$(seed_sqlite); else user=$(seed_pg | tail -1); fi
  echo "seeded $(query 'SELECT COUNT(*) FROM hosts') hosts, $(query 'SELECT COUNT(*) FROM host_macs') MACs in $(python3 -c "import time; print(f'{time.time() - $t0:.1f}')") s"
  start_server
  set_cpu_pids
  local base="http://127.0.0.1:$port"
  local mac1
  mac1=$(mac_of 1)
  local sample
  sample=$(curl -sS "$base/boot/$mac1?hostname=node-1")
  echo "local-boot script of host 1 ($(printf %s "$sample" | wc -c) bytes): $(printf %s "$sample" | head -2 | tail -1)"

  # a. Enrolled hosts boot from their disk.
  IFS=, read -ra levels <<<"$curve"
  for c in "${levels[@]}"; do
    storm_db "$engine local" --url-base "$base" --macs "$hosts" --concurrency "$c" \
      --duration "$duration" --warmup "$warmup"
  done

  # The ceiling of Bootler's HTTP stack: the same router and middleware,
  # no database (the entry script DHCP hands out). Once per run.
  if [ -z "$entry_done" ]; then
    entry_done=1
    storm "$engine entry-script-no-db" --url-base "$base" --path /boot.ipxe \
      --concurrency "$concurrency" --duration "$duration" --warmup "$warmup"
  fi

  # b(i). Every host marked: each boot renders A.4 once and starts the install.
  change_hosts "UPDATE hosts SET state = 'install_pending', marked_by = $user, state_changed_at = updated_at"
  local probe rendered=0
  probe=$(curl -sS "$base/boot/$mac1?hostname=node-1")
  if printf %s "$probe" | grep -q '^kernel '; then
    rendered=1
    rendered_body=${rendered_body:-$probe}
    echo "rendered A.4 for host 1: $(printf %s "$probe" | wc -c) bytes"
  else
    echo "a marked host got: $(printf %s "$probe" | sed -n 2p) (the server does not render yet)"
  fi
  # The probe served host 1's install: mark it again.
  drain "$(date +%s.%N)"
  change_hosts "UPDATE hosts SET state = 'install_pending' WHERE id = 1"
  if [ "$rendered" = 1 ] || [ "${BENCH_FORCE_RENDERED:-0}" = 1 ]; then
    storm_db "$engine rendered (each once)" --url-base "$base" --macs "$hosts" \
      --concurrency "$concurrency" --each-once
    echo "  hosts by state afterwards: $(query "SELECT state || '=' || COUNT(*) FROM hosts GROUP BY state ORDER BY state" | paste -sd' ')"
    if [ "$rendered" = 1 ] && [ -z "$rendered_size" ]; then
      rendered_size=$(tail -1 "$results" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["bytes_per_response"]))')
    fi
  else
    skip "$engine rendered (each once)" "the server answers marked hosts with the local-boot script"
  fi

  # b(ii). Installing hosts fetch their answer file (A.2, rendered).
  change_hosts "UPDATE hosts SET state = 'installing', marked_by = $user"
  local status
  status=$(curl -sS -o "$dir/unattended-probe" -w '%{http_code}' "$base/boot/$mac1/unattended")
  if [ "$status" = 200 ] || [ "${BENCH_FORCE_RENDERED:-0}" = 1 ]; then
    echo "answer file of host 1: HTTP $status, $(wc -c <"$dir/unattended-probe") bytes"
    storm_db "$engine unattended" --url-base "$base" --macs "$hosts" \
      --path-template "/boot/{mac}/unattended" --expect-prefix "d-i " \
      --concurrency "$concurrency" --duration "$duration" --warmup "$warmup"
  else
    echo "/boot/$mac1/unattended answered HTTP $status: $(head -c 160 "$dir/unattended-probe")"
    skip "$engine unattended" "/unattended answers HTTP $status (not rendered by the server yet)"
  fi
  echo "timeline events written: $(query 'SELECT COUNT(*) FROM host_events')"
  stop_server
  echo "server log: $(grep -c . "$dir/server-$engine.log" || true) lines; $(grep -ciE 'error|warn' "$dir/server-$engine.log" || true) warnings or errors; $(grep -c 'row was dropped' "$dir/server-$engine.log" || true) timeline rows dropped (queue full); $(grep -c 'slow statement: execution' "$dir/server-$engine.log" || true) slow statements (> 1 s)"
  grep -iE 'error|warn' "$dir/server-$engine.log" | head -3 || true
  if [ "$engine" = postgres ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m fast stop >/dev/null
    pg_data=""
  fi
}

IFS=, read -ra engine_list <<<"$engines"
for engine in "${engine_list[@]}"; do
  bench_engine
done

if [ "$with_nginx" = 1 ]; then
  echo
  echo "== nginx"
  mkdir -p "$dir/nginx/www" "$dir/nginx/tmp"
  if [ -n "$rendered_body" ]; then
    # The rendered script of host 1, padded to the mean rendered size.
    printf %s "$rendered_body" >"$dir/nginx/www/boot.ipxe"
    python3 - "$dir/nginx/www/boot.ipxe" "$rendered_size" <<'EOF'
import sys
path, size = sys.argv[1], int(sys.argv[2])
body = open(path, "rb").read()
if not body.endswith(b"\n"):
    body += b"\n"
pad = size - len(body)
if pad >= 2:
    body += b"#" * (pad - 1) + b"\n"
elif pad == 1:
    body += b"\n"
open(path, "wb").write(body)
EOF
    echo "static file: the rendered A.4 script of host 1, $(wc -c <"$dir/nginx/www/boot.ipxe") bytes (mean rendered size)"
  else
    cp "$thesis/a4-system.ipxe.expected" "$dir/nginx/www/boot.ipxe"
    echo "static file: $thesis/a4-system.ipxe.expected, $(wc -c <"$dir/nginx/www/boot.ipxe") bytes (no rendered script measured)"
  fi
  chmod -R a+rX "$dir/nginx"
  nginx_port=$(free_port)
  cat >"$dir/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 300s;
    keepalive_requests 10000000;
    default_type text/plain;
    client_body_temp_path $dir/nginx/tmp/body;
    proxy_temp_path $dir/nginx/tmp/proxy;
    fastcgi_temp_path $dir/nginx/tmp/fastcgi;
    uwsgi_temp_path $dir/nginx/tmp/uwsgi;
    scgi_temp_path $dir/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$nginx_port;
        root $dir/nginx/www;
        location / {
            try_files /boot.ipxe =404;
            add_header Cache-Control no-store;
        }
    }
}
EOF
  nginx -p "$dir/nginx/" -e "$dir/nginx/error.log" -c "$dir/nginx/nginx.conf" &
  nginx_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$nginx_port/boot/$(mac_of 1)" >/dev/null 2>&1 && break
    sleep 0.1
  done
  echo "nginx workers: $(pgrep -P "$nginx_pid" | wc -l)"
  cpu_pids=$nginx_pid
  IFS=, read -ra levels <<<"$curve"
  for c in "${levels[@]}"; do
    storm "nginx static" --url-base "http://127.0.0.1:$nginx_port" --macs "$hosts" \
      --concurrency "$c" --duration "$duration" --warmup "$warmup"
  done
  stop_pid "$nginx_pid"
  nginx_pid=""
fi

echo
python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
nginx = {r["concurrency"]: r["rps"] for r in rows if r["label"] == "nginx static" and "rps" in r}
print("| engine | path | concurrency | requests | req/s | p50 ms | p99 ms | max ms | bytes | errors | % of nginx | timeline rows / answers | backlog written after | server CPU µs / answer | load |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    engine, _, path = r["label"].partition(" ")
    if "skipped" in r:
        print(f"| {engine} | {path} | | | skipped: {r['skipped']} | | | | | | | | | | |")
        continue
    ref = nginx.get(r["concurrency"])
    pct = f"{100 * r['rps'] / ref:.0f} %" if ref and engine != "nginx" else ""
    rows_ = f"{r['timeline_rows']:,} / {r['sent']:,}" if "timeline_rows" in r else ""
    drain_ = f"{r['drain_s']:.1f} s" if "drain_s" in r else ""
    cpu_ = f"{1e6 * r['server_cpu_s'] / max(r['sent'], 1):.0f}" if "server_cpu_s" in r else ""
    print(f"| {engine} | {path} | {r['concurrency']} | {r['requests']:,} | {r['rps']:,.0f} | {r['p50_ms']:.2f} "
          f"| {r['p99_ms']:.2f} | {r['max_ms']:.1f} | {r['bytes_per_response']:.0f} | {r['errors']} | {pct} | {rows_} | {drain_} | {cpu_} | {r['loadavg']} |")
ref = nginx.get(256)
for r in rows:
    if "rendered" not in r["label"] or "rps" not in r or r["concurrency"] != 256:
        continue
    rate = f"{100 * r['rps'] / ref:.0f} % of nginx" if ref else "no nginx run"
    verdict = "met" if ref and r["rps"] >= 0.5 * ref and r["p99_ms"] < 10 else "not met"
    print(f"\ngoal for {r['label']} at 256 connections (>= 50 % of nginx, p99 < 10 ms): "
          f"{verdict} ({rate}, p99 {r['p99_ms']:.2f} ms)")
EOF

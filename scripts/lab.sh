#!/usr/bin/env bash
# The simulated lab: bare-metal provisioning without hardware.
#
#   scripts/lab.sh [--nodes N] [--url http://127.0.0.1:3000] [--admin NAME]
#                  [--password-file FILE] [--dir DIR] [--bmc-port-base PORT]
#   scripts/lab.sh --stop [--dir DIR]
#
# For each node i (lab1, lab2, …) it starts a BMC, OpenIPMI's `ipmi_sim`, on
# its own loopback UDP port (9623+i, or the next free one) with one user,
# `admin`, and a random password. The BMC's chassis control is a script that
# plays the machine: "power on" starts a QEMU node (TCG, 256 MiB, no root)
# whose NIC (MAC 52:54:00:1a:b0:<i>) network-boots with iPXE from the
# Bootler at --url; "power off" and "soft off" kill it; "power status" is
# whether that QEMU runs. When Bootler says "boot from the local disk", the
# node boots a one-sector stand-in disk that prints a line and halts, so the
# node stays on like a real one until it is powered off.
#
# It then registers every node in Bootler (as an admin: pool "lab", system
# template "local-boot", the IPMI power driver with the BMC's port and
# password), prints what it made, and stays in the foreground, showing what
# the BMCs and nodes do, until Ctrl-C, which stops every ipmi_sim and QEMU
# it started. A watchdog stops them too if this script is killed; `--stop`
# stops a lab started from DIR in another terminal.
#
# Bootler must hand the nodes a URL they can reach: start it with
# BOOTLER_BOOT__BASE_URL=http://10.0.2.100:<port> (the address QEMU's user network
# gives the lab's Bootler inside each node), e.g.
#
#   BOOTLER_BOOT__BASE_URL=http://10.0.2.100:3000 scripts/run.sh
#
# The admin's credentials come from --admin / --password-file, or from the
# environment (BOOTLER_LAB_ADMIN, BOOTLER_LAB_PASSWORD); on a terminal the
# script asks for what is missing.
#
# Needs the Debian packages openipmi ipmitool qemu-system-x86 ipxe-qemu,
# plus python3 and curl.
# shellcheck disable=SC1111 # messages quote names with “ ” on purpose
set -euo pipefail

if [ -t 2 ]; then bold=$'\033[1m' yellow=$'\033[1;33m' red=$'\033[1;31m' plain=$'\033[0m'
else bold='' yellow='' red='' plain=''; fi
say() { printf '%slab:%s %s\n' "$bold" "$plain" "$*"; }
warn() { printf '%slab:%s %s\n' "$yellow" "$plain" "$*" >&2; }
die() { printf '%slab:%s %s\n' "$red" "$plain" "$*" >&2; exit 1; }

usage() {
  cat <<'EOF'
Usage: scripts/lab.sh [options]        start the simulated lab (Ctrl-C stops it)
       scripts/lab.sh --stop [--dir DIR]  stop a lab started from DIR elsewhere

Options:
  --nodes N             how many nodes (default 3, at most 50)
  --url URL             the running Bootler (default http://127.0.0.1:3000)
  --admin NAME          an administrator of that Bootler (or BOOTLER_LAB_ADMIN)
  --password-file FILE  their password, first line (or BOOTLER_LAB_PASSWORD)
  --dir DIR             where the lab keeps its files (default target/lab in
                        the repository, or /tmp/bootler-lab)
  --bmc-port-base PORT  node i's BMC listens on UDP PORT+i, or the next free
                        port (default 9623)
  --stop                stop the lab running from DIR, then exit
  -h, --help            this text
EOF
}

# --- Options ----------------------------------------------------------------
nodes=3
url=http://127.0.0.1:3000
admin=${BOOTLER_LAB_ADMIN:-}
password=${BOOTLER_LAB_PASSWORD:-}
password_file=
dir=
stop=0
bmc_base=9623
bmc_address=127.0.0.1

need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)."; }
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) need_value "$@"; nodes=$2; shift 2 ;;
    --nodes=*) nodes=${1#*=}; shift ;;
    --url) need_value "$@"; url=$2; shift 2 ;;
    --url=*) url=${1#*=}; shift ;;
    --admin) need_value "$@"; admin=$2; shift 2 ;;
    --admin=*) admin=${1#*=}; shift ;;
    --password-file) need_value "$@"; password_file=$2; shift 2 ;;
    --password-file=*) password_file=${1#*=}; shift ;;
    --dir) need_value "$@"; dir=$2; shift 2 ;;
    --dir=*) dir=${1#*=}; shift ;;
    --bmc-port-base) need_value "$@"; bmc_base=$2; shift 2 ;;
    --bmc-port-base=*) bmc_base=${1#*=}; shift ;;
    --stop) stop=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "Unknown argument “$1”." ;;
  esac
done

if [ -z "$dir" ]; then
  repo=$(cd "$(dirname "$0")/.." && pwd)
  if [ -f "$repo/Cargo.toml" ] && [ -d "$repo/scripts" ]; then
    dir=$repo/target/lab
  else
    dir=${TMPDIR:-/tmp}/bootler-lab
  fi
fi
mkdir -p "$dir" || die "Cannot create the lab's directory $dir."
dir=$(cd "$dir" && pwd)

# --- Stopping (also what the watchdog and Ctrl-C run) -------------------------
# Every process the lab starts is named in a pid file under $dir, and is
# killed only if its command line still names $dir (a pid can be reused).
# The same script is written to $dir/stop.sh for the watchdog.
write_stop_script() {
  cat >"$dir/stop.sh" <<'EOF'
#!/usr/bin/env bash
# Stops what scripts/lab.sh started from this directory: the BMCs first (so
# none starts a node again), then the nodes, then stray forwarders.
dir=$(cd "$(dirname "$0")" && pwd)
mine() { # pid: does it run and name this lab's directory?
  [ -r "/proc/$1/cmdline" ] || return 1
  local st; st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }; [ "${st%% *}" != Z ] || return 1
  { tr '\0' '\n' <"/proc/$1/cmdline"; } 2>/dev/null | grep -qF -- "$dir/"
}
stop_pids() { # pids…: TERM, up to 3 s, then KILL
  local pid left
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 30); do
    left=()
    for pid in "$@"; do mine "$pid" && left+=("$pid"); done
    [ ${#left[@]} -eq 0 ] && return 0
    sleep 0.1
  done
  for pid in "${left[@]}"; do kill -KILL "$pid" 2>/dev/null; done
}
for kind in ipmi_sim qemu; do
  pids=()
  for file in "$dir"/lab*/"$kind.pid"; do
    [ -f "$file" ] || continue
    pid=$(cat "$file" 2>/dev/null)
    if [[ $pid =~ ^[0-9]+$ ]] && mine "$pid"; then pids+=("$pid"); fi
    rm -f "$file"
  done
  [ ${#pids[@]} -gt 0 ] && stop_pids "${pids[@]}"
done
# The forwarders end with their node; any left are killed.
pids=()
for proc in /proc/[0-9]*; do
  { tr '\0' '\n' <"$proc/cmdline"; } 2>/dev/null | grep -qxF -- "$dir/forward.py" && pids+=("${proc#/proc/}")
done
[ ${#pids[@]} -gt 0 ] && stop_pids "${pids[@]}"
rm -f "$dir/.curl-credentials"
exit 0
EOF
  chmod 755 "$dir/stop.sh"
}

lab_pid() { # the pid of the lab.sh running from $dir, if any
  local pid
  pid=$(cat "$dir/lab.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && [ "$pid" != $$ ] && kill -0 "$pid" 2>/dev/null || return 1
  { tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q 'lab\.sh' || return 1
  echo "$pid"
}

if [ "$stop" = 1 ]; then
  if pid=$(lab_pid); then
    say "stopping the lab running from $dir (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  write_stop_script
  "$dir/stop.sh"
  rm -f "$dir/lab.pid"
  say "stopped: no BMC or node of $dir runs."
  exit 0
fi

# --- What the lab needs --------------------------------------------------------
case "$nodes" in ''|*[!0-9]*) die "--nodes needs a number from 1 to 50, not “$nodes”." ;; esac
[ "$nodes" -ge 1 ] && [ "$nodes" -le 50 ] || die "--nodes needs a number from 1 to 50, not $nodes."
case "$bmc_base" in ''|*[!0-9]*) die "--bmc-port-base needs a port number, not “$bmc_base”." ;; esac
[ "$bmc_base" -ge 1024 ] && [ "$bmc_base" -le 65000 ] || die "--bmc-port-base needs a port from 1024 to 65000."

missing=()
for tool in ipmi_sim ipmitool qemu-system-x86_64 python3 curl setsid; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
rom=
for candidate in /usr/lib/ipxe/qemu/efi-virtio.rom /usr/share/qemu/efi-virtio.rom /usr/share/qemu/pxe-virtio.rom; do
  [ -e "$candidate" ] && rom=$candidate && break
done
[ -n "$rom" ] || missing+=("iPXE for QEMU (efi-virtio.rom)")
if [ ${#missing[@]} -gt 0 ]; then
  die "The lab needs $(printf '%s, ' "${missing[@]}" | sed 's/, $//'), which are not installed: install the Debian packages openipmi ipmitool qemu-system-x86 ipxe-qemu (and python3, curl): sudo apt-get install --no-install-recommends openipmi ipmitool qemu-system-x86 ipxe-qemu python3-minimal curl"
fi
qemu_bin=$(command -v qemu-system-x86_64)
# The forwarder runs once per connection of a node: the system's python3
# starts fastest (a pyenv or venv shim adds a shell on every start).
python_bin=$(command -v python3)
[ -x /usr/bin/python3 ] && python_bin=/usr/bin/python3

# --url: http://HOST[:PORT][/]
url=${url%/}
[[ $url =~ ^http://(\[[0-9A-Fa-f:.]+\]|[^/:@]+)(:([0-9]+))?$ ]] ||
  die "--url must be Bootler's plain-HTTP address, like http://127.0.0.1:3000 (not “$url”)."
bootler_host=${BASH_REMATCH[1]}
bootler_port=${BASH_REMATCH[3]:-80}
bootler_host=${bootler_host#[}; bootler_host=${bootler_host%]}

if pid=$(lab_pid); then
  die "A lab already runs from $dir (pid $pid): stop it with Ctrl-C there, or $0 --stop --dir $dir, or give another --dir."
fi
# Leftovers of a lab that was killed before its watchdog could act.
write_stop_script
"$dir/stop.sh"

# --- Credentials ----------------------------------------------------------------
if [ -n "$password_file" ]; then
  [ -r "$password_file" ] || die "Cannot read the password file $password_file."
  IFS= read -r password <"$password_file" || true
  [ -n "$password" ] || die "The password file $password_file is empty: its first line is the password."
fi
if [ -z "$admin" ]; then
  [ -t 0 ] || die "Which administrator of Bootler may the lab act as? Give --admin NAME (or BOOTLER_LAB_ADMIN)."
  read -rp "Bootler administrator: " admin
  [ -n "$admin" ] || die "No administrator given."
fi
if [ -z "$password" ]; then
  [ -t 0 ] || die "No password for “$admin”: give --password-file FILE (or BOOTLER_LAB_PASSWORD)."
  read -rsp "Password of $admin: " password
  echo
  [ -n "$password" ] || die "No password given."
fi

# curl reads the credentials from a file (not from its command line, which
# every user of the machine can see).
umask 077
curl_conf=$dir/.curl-credentials
esc() { local s=${1//\\/\\\\}; printf '%s' "${s//\"/\\\"}"; }
printf 'user = "%s:%s"\n' "$(esc "$admin")" "$(esc "$password")" >"$curl_conf"
umask 022
trap 'rm -f "$curl_conf"' EXIT

# JSON without jq: `json EXPR` evaluates EXPR with `d` bound to the JSON on
# stdin; strings print bare, the rest as JSON, None as nothing.
json() {
  "$python_bin" -c '
import json, sys
d = json.load(sys.stdin)
try:
    v = eval(sys.argv[1])
except (KeyError, IndexError, TypeError):
    v = None
if v is None: pass
elif isinstance(v, str): print(v)
else: print(json.dumps(v))
' "$1"
}

# `api METHOD PATH [JSON]`: sets status and body (status 000: no answer).
status='' body=''
api() {
  local method=$1 path=$2 data=${3-} out
  out=$(mktemp)
  local args=(-sS --max-time 20 -K "$curl_conf" -X "$method" -o "$out" -w '%{http_code}' -H 'Accept: application/json')
  if [ -n "$data" ]; then
    status=$(curl "${args[@]}" -H 'Content-Type: application/json' --data-binary @- "$url$path" <<<"$data" 2>/dev/null) || status=000
  else
    status=$(curl "${args[@]}" "$url$path" 2>/dev/null) || status=000
  fi
  body=$(cat "$out")
  rm -f "$out"
}
api_error() { # the error message in $body, or the status
  local msg
  msg=$(json 'd["error"]["message"]' <<<"$body" 2>/dev/null) || msg=
  printf '%s' "${msg:-HTTP $status: ${body:0:300}}"
}
api_ok() { # METHOD PATH [JSON] WHAT: dies with Bootler's reason unless 2xx
  local what=${!#}
  api "${@:1:$#-1}"
  case "$status" in 2??) ;; *) die "Bootler refused to $what: $(api_error)" ;; esac
}

# --- Is Bootler there, and does it take the credentials? ----------------------
run_hint="BOOTLER_BOOT__BASE_URL=http://10.0.2.100:$bootler_port scripts/run.sh"
[ "$bootler_port" = 3000 ] || run_hint="BOOTLER_LISTEN=127.0.0.1:$bootler_port $run_hint"
api GET /api/v1
if [ "$status" != 200 ] || [ "$(json 'd["name"]' <<<"$body" 2>/dev/null)" != bootler ]; then
  die "Bootler does not answer at $url. Start it first, with the address the lab's nodes reach it at, e.g.: $run_hint (or give --url)."
fi
api GET /api/v1/me
case "$status" in
  200) ;;
  401) die "Bootler at $url refused the credentials of “$admin”: $(api_error)" ;;
  429) die "Bootler at $url is refusing sign-ins for a while after failed ones: $(api_error)" ;;
  *) die "Bootler at $url did not accept the credentials of “$admin”: $(api_error)" ;;
esac
[ "$(json 'd["user"]["role"]' <<<"$body")" = admin ] ||
  die "“$admin” is not an administrator of Bootler at $url: the lab needs one (to create the pool and set power drivers). Create one with: bootler user add --admin NAME --email ADDRESS"

# The address the nodes use for Bootler: base_url, as the entry script says.
boot_status=$(curl -sS --max-time 10 -o "$dir/boot.ipxe" -w '%{http_code}' "$url/boot.ipxe" 2>/dev/null) || boot_status=000
case "$boot_status" in
  200) ;;
  403) die "Bootler refuses boot requests from this machine: $(head -n1 "$dir/boot.ipxe") The lab's nodes reach it through a forwarder on this machine; add its address (e.g. \"127.0.0.1/32\") to boot.allowed_networks." ;;
  *) die "Bootler at $url did not serve its entry script /boot.ipxe (HTTP $boot_status)." ;;
esac
guest_base=$(sed -n 's|^chain \(https\{0,1\}://[^/]*\)/boot/.*|\1|p' "$dir/boot.ipxe" | head -n1)
[ -n "$guest_base" ] || die "Cannot find Bootler's own address (boot.base_url) for nodes in its /boot.ipxe."
fix_base="Start Bootler with BOOTLER_BOOT__BASE_URL=http://10.0.2.100:$bootler_port: the lab's nodes reach it at that address (QEMU forwards it to $url)."
[[ $guest_base =~ ^http://([0-9]+)\.([0-9]+)\.([0-9]+)\.([0-9]+)(:([0-9]+))?$ ]] ||
  die "Bootler tells nodes to find it at $guest_base, which the lab's nodes cannot reach: they need a plain-HTTP IPv4 address. $fix_base"
o1=${BASH_REMATCH[1]} o2=${BASH_REMATCH[2]} o3=${BASH_REMATCH[3]} o4=${BASH_REMATCH[4]}
guest_port=${BASH_REMATCH[6]:-80}
if [ "$o1" = 127 ] || [ "$o1" = 0 ] || [ "$o1" -ge 224 ] || [ "$o4" = 0 ] || [ "$o4" -ge 255 ]; then
  die "Bootler tells nodes to find it at $guest_base (its boot.base_url), which a node cannot reach: inside the node, that address is not this machine. $fix_base"
fi
guest_ip=$o1.$o2.$o3.$o4
# QEMU's user network is made the /24 around that address, with its own
# gateway, DNS and DHCP addresses kept off it (10.0.2.100 gives QEMU's
# usual 10.0.2.0/24).
net=$o1.$o2.$o3
gw=2; [ "$o4" = 2 ] && gw=1
dns=3; [ "$o4" = 3 ] && dns=4
dhcp=15; [ "$o4" -ge 15 ] && [ "$o4" -le 30 ] && dhcp=100
netdev_net="net=$net.0/24,host=$net.$gw,dns=$net.$dns,dhcpstart=$net.$dhcp"

# --- The lab's files ------------------------------------------------------------
# The guest forward: each TCP connection a node opens to Bootler's address
# makes QEMU run this with the connection as stdin/stdout; it carries it to
# Bootler (argv: host port node events-file) and notes the request line.
cat >"$dir/forward.py" <<'EOF'
import os, socket, sys, threading, time
try:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
except Exception:
    os._exit(1)
def note(chunk):
    # A chunk that starts a request (iPXE keeps connections open).
    try:
        line = chunk.split(b"\r\n", 1)[0].decode("ascii", "replace")
        if line.startswith(("GET ", "POST ", "HEAD ")):
            with open(sys.argv[4], "a") as f:
                f.write("%s %s: %s\n" % (time.strftime("%H:%M:%S"), sys.argv[3], line.rsplit(" ", 1)[0]))
    except Exception:
        pass
def up():
    try:
        while True:
            b = os.read(0, 65536)
            if not b:
                break
            note(b)
            s.sendall(b)
    except Exception:
        pass
    try:
        s.shutdown(socket.SHUT_WR)
    except Exception:
        pass
threading.Thread(target=up, daemon=True).start()
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        while b:
            b = b[os.write(1, b):]
except Exception:
    pass
os._exit(0)
EOF

# The chassis: what ipmi_sim runs for chassis control (`get power`,
# `set power 0|1`, `set shutdown 1`, `set reset 1`, `set boot <device>`,
# `get boot`). Settings come from node.env next to it.
chassis_script=$(cat <<'EOF'
#!/usr/bin/env bash
# Chassis control of one lab node, run by its ipmi_sim (see scripts/lab.sh):
# power on starts the node's QEMU, power off and soft off kill it, the power
# state is whether it runs. Every call goes to calls.log with its time.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/node.env"
echo "$(date '+%Y-%m-%dT%H:%M:%S.%3N%z') $*" >>"$here/calls.log"
event() { echo "$(date +%H:%M:%S) $NAME: $*" >>"$EVENTS"; }
qemu_pid() { # the pid of this node's QEMU, if it runs
  local pid st
  pid=$(cat "$here/qemu.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  st=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  st=${st##*) }; [ "${st%% *}" != Z ] || return 1
  { tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$here/" || return 1
  echo "$pid"
}
power_on() {
  local pid
  if pid=$(qemu_pid); then event "power on: already on (QEMU pid $pid)"; return; fi
  printf '\r\n===== %s: powered on by the BMC =====\r\n' "$(date '+%F %T')" >>"$here/serial.log"
  setsid "$here/qemu.sh" </dev/null >>"$here/serial.log" 2>&1 &
  echo $! >"$here/qemu.pid"
  sleep 0.3
  if qemu_pid >/dev/null; then
    event "powered on: QEMU pid $! network-boots (console: $here/serial.log)"
  else
    event "power on FAILED: QEMU exited at once: $(tail -n 2 "$here/serial.log" | tr -d '\r' | tr '\n' ' ')"
  fi
}
power_off() { # why
  local pid
  if ! pid=$(qemu_pid); then rm -f "$here/qemu.pid"; event "$1: already off"; return; fi
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 30); do qemu_pid >/dev/null || break; sleep 0.1; done
  qemu_pid >/dev/null && kill -KILL "$pid" 2>/dev/null
  rm -f "$here/qemu.pid"
  printf '\r\n===== %s: %s =====\r\n' "$(date '+%F %T')" "$1" >>"$here/serial.log"
  event "$1: QEMU pid $pid stopped"
}
op=${1:-}
shift || true
case "$op" in
get)
  for what in "$@"; do
    case "$what" in
      power) if qemu_pid >/dev/null; then echo power:1; else echo power:0; fi ;;
      boot) echo "boot:$(cat "$here/boot" 2>/dev/null || echo default)" ;;
    esac
  done
  ;;
set)
  while [ $# -ge 2 ]; do
    case "$1" in
      power) if [ "$2" = 1 ]; then power_on; else power_off "powered off"; fi ;;
      shutdown) [ "$2" = 1 ] && power_off "soft off (the node obeys at once)" ;;
      reset) [ "$2" = 1 ] && { power_off "reset"; power_on; } ;;
      boot)
        echo "$2" >"$here/boot"
        event "next boot: $2 (recorded; a lab node always tries the network first)"
        ;;
    esac
    shift 2
  done
  ;;
esac
exit 0
EOF
)

# The stand-in local disk: a boot sector that prints a line on the serial
# console and halts (cli; hlt), so a node that "boots from its disk" stays on.
make_disk() { # file name
  "$python_bin" - "$1" "$2" <<'EOF'
import sys
msg = ("\r\n%s: booted from its local disk (the lab's stand-in: it prints this line and halts).\r\n"
       % sys.argv[2]).encode() + b"\0"
# cli; cld; xor ax,ax; mov ds,ax; mov si,0x7c17; mov dx,0x3f8;
# next: lodsb; test al,al; jz done; out dx,al; jmp next; done: hlt; jmp done
code = bytes.fromhex("fafc31c08ed8be177cbaf803ac84c07403eeebf8f4ebfd")
sector = code + msg
sector += b"\0" * (510 - len(sector)) + b"\x55\xaa"
with open(sys.argv[1], "wb") as f:
    f.write(sector)
    f.truncate(1 << 20)
EOF
}

port_free() { # UDP port on the BMC address
  "$python_bin" -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)' "$bmc_address" "$1"
}

random_password() { # 16 letters and digits (IPMI allows at most 20 bytes)
  "$python_bin" -c 'import secrets, string; print("".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(16)))'
}

q() { printf '%q' "$1"; }
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; } # for sh -c: 'it'\''s'


: >"$dir/events.log"
echo $$ >"$dir/lab.pid"

# --- From here on, everything started is stopped on the way out ---------------
watchdog=
tailer=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  [ -n "$tailer" ] && kill "$tailer" 2>/dev/null
  echo
  say "stopping the BMCs and nodes…"
  "$dir/stop.sh"
  [ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null
  rm -f "$dir/lab.pid" "$curl_conf"
  say "stopped: no ipmi_sim or QEMU of this lab runs (files kept in $dir)."
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# The watchdog outlives a `kill -9` of this script and then stops the lab.
setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2/stop.sh"' lab-watchdog $$ "$dir" \
  </dev/null >/dev/null 2>&1 &
watchdog=$!

names=() macs=() ports=() passwords=() ids=()
next_port=$bmc_base
for i in $(seq "$nodes"); do
  name=lab$i
  mac=$(printf '52:54:00:1a:b0:%02x' "$i")
  node=$dir/$name
  rm -rf "$node"
  mkdir -p "$node/state"
  port=$((bmc_base + i))
  [ "$port" -lt "$next_port" ] && port=$next_port
  while ! port_free "$port"; do
    port=$((port + 1))
    [ "$port" -le 65535 ] || die "No free UDP port for $name's BMC from $((bmc_base + i)) on."
  done
  next_port=$((port + 1))
  pw=$(random_password)
  names+=("$name") macs+=("$mac") ports+=("$port") passwords+=("$pw")

  {
    echo "NAME=$(q "$name")"
    echo "MAC=$(q "$mac")"
    echo "EVENTS=$(q "$dir/events.log")"
  } >"$node/node.env"
  make_disk "$node/disk.img" "$name"
  printf '%s\n' "$chassis_script" >"$node/chassis.sh"
  chmod 755 "$node/chassis.sh"
  forwarder="$(sq "$python_bin") $(sq "$dir/forward.py") $(sq "$bootler_host") $bootler_port $name $(sq "$dir/events.log")"
  {
    echo '#!/usr/bin/env bash'
    echo "# $name: a QEMU node that network-boots with iPXE from Bootler ($guest_base inside"
    echo "# the node, carried to $url), then boots its stand-in disk."
    echo '# It keeps none of the descriptors of the ipmi_sim that started it.'
    echo 'for fd in /proc/$$/fd/*; do fd=${fd##*/}; case $fd in 0|1|2|255) ;; *) [ -e "/proc/$$/fd/$fd" ] && eval "exec $fd>&-" ;; esac; done'
    printf 'exec %q' "$qemu_bin"
    for arg in -name "$name" -accel tcg -m 256 -nographic -boot strict=on \
      -netdev "user,id=n0,restrict=on,$netdev_net,hostname=$name,guestfwd=tcp:$guest_ip:$guest_port-cmd:${forwarder//,/,,},bootfile=$guest_base/boot.ipxe" \
      -device "virtio-net-pci,netdev=n0,mac=$mac,bootindex=1" \
      -drive "if=none,id=disk,format=raw,file=${node//,/,,}/disk.img" \
      -device virtio-blk-pci,drive=disk,bootindex=2; do
      printf ' \\\n  %q' "$arg"
    done
    echo
  } >"$node/qemu.sh"
  chmod 755 "$node/qemu.sh"

  # The BMC: RMCP+ needs a guid; mc_setbmc or ipmi_sim exits at once; -n as
  # its stdin is no terminal.
  guid=$("$python_bin" -c 'import secrets; print(secrets.token_hex(16))')
  cat >"$node/lan.conf" <<EOF
name "$name"
startlan 1
  addr $bmc_address $port
  priv_limit admin
  allowed_auths_callback none md2 md5 straight
  allowed_auths_user none md2 md5 straight
  allowed_auths_operator none md2 md5 straight
  allowed_auths_admin none md2 md5 straight
  guid $guid
endlan
chassis_control "$node/chassis.sh"
user 2 true "admin" "$pw" admin 10 none md2 md5 straight
EOF
  chmod 600 "$node/lan.conf"
  cat >"$node/sim.emu" <<'EOF'
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr
mc_enable 0x20
EOF
  setsid ipmi_sim -c "$node/lan.conf" -f "$node/sim.emu" -s "$node/state" -n \
    </dev/null >"$node/ipmi_sim.log" 2>&1 &
  echo $! >"$node/ipmi_sim.pid"
done

# Wait until every BMC answers the real ipmitool.
for i in "${!names[@]}"; do
  name=${names[$i]} node=$dir/${names[$i]}
  pid=$(cat "$node/ipmi_sim.pid")
  ok=0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || die "$name's BMC (ipmi_sim) stopped at once: $(tail -n 5 "$node/ipmi_sim.log")"
    if IPMI_PASSWORD=${passwords[$i]} ipmitool -I lanplus -C 3 -N 1 -R 1 -H "$bmc_address" -p "${ports[$i]}" -U admin -E \
      chassis power status </dev/null >/dev/null 2>&1; then
      ok=1
      break
    fi
    sleep 0.2
  done
  [ "$ok" = 1 ] || die "$name's BMC did not answer on UDP $bmc_address:${ports[$i]} within 20 s (log: $node/ipmi_sim.log)."
  : >"$node/calls.log"
done
say "${#names[@]} BMCs answer (ipmi_sim on UDP $(printf '%s ' "${ports[@]}"| sed 's/ $//'))."

# --- Registration in Bootler ------------------------------------------------------
api_ok GET /api/v1/pools "list the pools"
if [ "$(json '"yes" if any(p["name"] == "lab" for p in d["pools"]) else "no"' <<<"$body")" = no ]; then
  api_ok POST /api/v1/pools '{"name": "lab", "description": "The simulated lab (scripts/lab.sh): QEMU nodes behind ipmi_sim BMCs."}' "create the pool “lab”"
  say "created the pool “lab”."
fi

# A stand-in installer, for a whole install cycle (installing → installed)
# in seconds: it writes nothing, reports the install done and boots the disk.
api_ok GET /api/v1/templates "list the templates"
if [ "$(json '"yes" if any(t["name"] == "lab-install" for t in d["templates"]) else "no"' <<<"$body")" = no ]; then
  template=$("$python_bin" - <<'PY'
import json
body = """#!ipxe
# The simulated lab's stand-in installer (scripts/lab.sh): it installs
# nothing, reports the install done, and boots from the local disk.
echo Lab install on {{ host.name }}: a stand-in installer that writes nothing.
imgfetch --name done {{ done_url }} || goto failed
imgfree done
echo Lab install on {{ host.name }}: reported done to Bootler.
exit
:failed
echo Lab install on {{ host.name }}: could not report done to Bootler.
exit
"""
print(json.dumps({"name": "lab-install", "kind": "system", "body": body,
    "description": "The simulated lab's stand-in installer (scripts/lab.sh): installs nothing, reports done at once, then boots from the local disk; reads no vars."}))
PY
)
  api POST /api/v1/templates "$template"
  case "$status" in
    2??) say "created the system template “lab-install” (a stand-in installer that only reports done)." ;;
    409) ;;
    *) warn "Could not create the template “lab-install”: $(api_error)" ;;
  esac
fi

for i in "${!names[@]}"; do
  name=${names[$i]} mac=${macs[$i]}
  api_ok GET "/api/v1/hosts?mac=$mac" "look up $mac"
  id=$(json 'd["hosts"][0]["id"]' <<<"$body")
  if [ -z "$id" ]; then
    # A node's first boot request registers it; this one stands in for it.
    code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$url/boot/$mac?hostname=$name" 2>/dev/null) || code=000
    [ "$code" = 200 ] || die "Bootler did not register $name ($mac): GET /boot/$mac answered HTTP $code."
    api_ok GET "/api/v1/hosts?mac=$mac" "look up $mac"
    id=$(json 'd["hosts"][0]["id"]' <<<"$body")
    [ -n "$id" ] || die "Bootler did not register $name ($mac) (boot.max_discovered or boot.discovery_per_minute reached? see its log)."
  fi
  ids+=("$id")
  settings=$("$python_bin" -c 'import json, sys
print(json.dumps({"pool": "lab", "system": "local-boot", "power": [{
    "driver": "ipmi", "address": sys.argv[1], "port": int(sys.argv[2]),
    "username": "admin", "password": sys.argv[3], "cipher_suite": 3, "interface": "lanplus"}]}))' \
    "$bmc_address" "${ports[$i]}" "${passwords[$i]}")
  api_ok PUT "/api/v1/hosts/$id" "$settings" "set up $name (host $id)"
done
say "registered ${#ids[@]} hosts in pool “lab” of $url."

# --- What was made ----------------------------------------------------------------
summary=$dir/lab.txt
{
  echo "The simulated lab ($dir), for Bootler at $url (nodes reach it at $guest_base):"
  echo
  printf '  %-6s %-5s %-18s %-16s %s\n' host id MAC "BMC (UDP)" "BMC password"
  for i in "${!names[@]}"; do
    printf '  %-6s %-5s %-18s %-16s %s\n' "${names[$i]}" "${ids[$i]}" "${macs[$i]}" "$bmc_address:${ports[$i]}" "${passwords[$i]}"
  done
  echo
  echo "Ask a BMC directly (the real ipmitool):"
  for i in "${!names[@]}"; do
    echo "  ipmitool -I lanplus -C 3 -H $bmc_address -p ${ports[$i]} -U admin -P ${passwords[$i]} chassis power status"
  done
  echo
  echo "Through Bootler (or on the host's page, $url/hosts/${ids[0]}):"
  echo "  curl -u $admin -H 'Content-Type: application/json' -d '{\"action\":\"on\"}' $url/api/v1/hosts/${ids[0]}/power"
  echo "  curl -u $admin $url/api/v1/hosts/${ids[0]}        # state, power and the timeline"
  echo "  curl -u $admin -H 'Content-Type: application/json' -d '{\"action\":\"off\"}' $url/api/v1/hosts/${ids[0]}/power"
  echo
  echo "A whole install cycle with the stand-in installer (give the host to someone first):"
  echo "  curl -u $admin -H 'Content-Type: application/json' -d '{\"user\":\"$admin\"}' $url/api/v1/hosts/${ids[0]}/allocate"
  echo "  curl -u $admin -X PUT -H 'Content-Type: application/json' -d '{\"system\":\"lab-install\"}' $url/api/v1/hosts/${ids[0]}"
  echo "  curl -u $admin -X POST $url/api/v1/hosts/${ids[0]}/reinstall     # installing, then installed"
  echo
  echo "A node's console: tail -f $dir/${names[0]}/serial.log"
  echo "Its BMC's calls:  $dir/${names[0]}/calls.log"
} >"$summary"
chmod 600 "$summary"
echo
cat "$summary"
echo
say "running. What the BMCs and nodes do shows below; Ctrl-C stops every BMC and node."
echo

tail --pid=$$ -n +1 -F "$dir/events.log" 2>/dev/null &
tailer=$!
while :; do
  sleep 2 &
  wait $! || true
  for i in "${!names[@]}"; do
    pid=$(cat "$dir/${names[$i]}/ipmi_sim.pid" 2>/dev/null) || pid=
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
      die "${names[$i]}'s BMC (ipmi_sim) stopped: $(tail -n 3 "$dir/${names[$i]}/ipmi_sim.log" 2>/dev/null)"
    fi
  done
done

#!/usr/bin/env bash
# Reproducible measurements for docs/benchmarks.md: clean release build time
# of the whole workspace, the WASM bundle size (raw, gzip, brotli if
# available) and the release server's resident memory at idle.
#
#   scripts/bench-foundation.sh            # cleans target/ first (slow: a full build)
#   scripts/bench-foundation.sh --no-clean # measure sizes and memory only
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh run >/dev/null
. scripts/env.sh

clean=1
[ "${1:-}" = "--no-clean" ] && clean=0

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
echo "toolchain: $(rustc --version), $(cargo leptos --version), wasm-bindgen $(wasm-bindgen --version | awk '{print $2}'), wasm-opt $(wasm-opt --version | awk '{print $3}')"

if [ $clean = 1 ]; then
  cargo clean -q
  start=$(date +%s)
  cargo leptos build --release >/tmp/bootler-bench-build.log 2>&1
  end=$(date +%s)
  echo "clean release build (cargo leptos build --release): $((end - start)) s"
else
  cargo leptos build --release >/tmp/bootler-bench-build.log 2>&1
fi

wasm=target/site/pkg/bootler.wasm
js=target/site/pkg/bootler.js
css=target/site/pkg/bootler.css
raw=$(wc -c <"$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
echo "wasm: $raw bytes raw ($((raw / 1024)) KiB), $gz bytes gzip -9 ($((gz / 1024)) KiB)"
if command -v brotli >/dev/null; then
  br=$(brotli -c -q 11 "$wasm" | wc -c)
  echo "wasm brotli -q 11: $br bytes ($((br / 1024)) KiB)"
fi
echo "js: $(wc -c <"$js") bytes raw, $(gzip -9 -c "$js" | wc -c) gzip; css: $(wc -c <"$css") bytes raw"

# Resident memory of the release server at idle, after it served the start
# page and the assets once.
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
BOOTLER_LISTEN=127.0.0.1:$port BOOTLER_DATA_DIR=$dir BOOTLER_SITE_DIR=$PWD/target/site RUST_LOG=warn \
  target/release/bootler serve &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
rss_start=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
for path in / /pkg/bootler.wasm /pkg/bootler.js /pkg/bootler.css /readyz /metrics; do
  curl -fs -o /dev/null "http://127.0.0.1:$port$path"
done
sleep 2
rss_idle=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
for _ in $(seq 200); do curl -fs -o /dev/null "http://127.0.0.1:$port/"; done
sleep 2
rss_after=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
echo "server RSS: $rss_start KiB after start, $rss_idle KiB idle after serving each asset once, $rss_after KiB idle after 200 page renders"
echo "binary: $(wc -c <target/release/bootler) bytes"

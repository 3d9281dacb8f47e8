#!/usr/bin/env bash
# Installs what building, running and testing Bootler needs, and nothing that
# is already there: safe to run again (a second run only checks).
#
#   scripts/setup.sh run    toolchain, cargo-leptos, wasm-bindgen, wasm-opt
#   scripts/setup.sh test   the same, plus the services and browser the tests start
#
# Debian packages are installed with apt-get (as root, or through sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-test}
case "$mode" in run|test) ;; *) echo "usage: $0 run|test" >&2; exit 2 ;; esac

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
die() { printf '\033[1;31msetup:\033[0m %s\n' "$*" >&2; exit 1; }

CARGO_LEPTOS_VERSION=0.3.11

# --- Debian packages -------------------------------------------------------
# build: a C compiler for the bundled SQLite, libvirt's client library (the
# VM backend); node/npm for wasm-opt (binaryen) and the browser tests.
apt_run=(gcc libc6-dev pkg-config ca-certificates libvirt-dev)
# test: the real peers the test suite starts on loopback.
apt_test=(postgresql slapd ldap-utils openssl chromium fonts-liberation python3-aiosmtpd qemu-system-x86 ipxe-qemu openipmi ipmitool python3-minimal debconf
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-utils dnsmasq-base ipxe genisoimage
  openvpn debian-installer-12-netboot-amd64)

packages=("${apt_run[@]}")
[ "$mode" = test ] && packages+=("${apt_test[@]}")
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

# Installs the Debian packages given that are not installed yet.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install: ${missing[*]}"
    sudo=(sudo)
  fi
  say "installing Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  # --no-install-recommends: chromium's recommends (udev, upower) fail to
  # configure in containers although chromium itself works.
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
apt_install "${packages[@]}"

# --- Rust toolchain (pinned in rust-toolchain.toml) ------------------------
command -v rustup >/dev/null 2>&1 || die "rustup is missing: install it (https://rustup.rs or Debian's rustup package) and run again"
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
[ -n "$toolchain" ] || die "no channel in rust-toolchain.toml"
have_toolchain() { rustup run "$toolchain" rustc --version >/dev/null 2>&1; }
have_wasm() { rustup target list --installed --toolchain "$toolchain" 2>/dev/null | grep -qx wasm32-unknown-unknown; }
have_components() {
  local installed
  installed=$(rustup component list --installed --toolchain "$toolchain" 2>/dev/null)
  grep -q '^rustfmt' <<<"$installed" && grep -q '^clippy' <<<"$installed"
}
if ! have_toolchain || ! have_components; then
  say "installing Rust $toolchain"
  rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy
fi
# The WASM target comes from rustup; where rustup cannot install it (or with
# BOOTLER_WASM_ROUTE=debian), Debian's rustc-web builds std for WASM itself.
route=${BOOTLER_WASM_ROUTE:-rustup}
if [ "$route" = rustup ] && ! have_wasm; then
  say "adding the wasm32-unknown-unknown target"
  if ! rustup target add --toolchain "$toolchain" wasm32-unknown-unknown; then
    say "rustup cannot install the wasm32-unknown-unknown target: using Debian's rustc-web instead"
    route=debian
  fi
fi
if [ "$route" = debian ]; then
  apt_install rustc-web cargo-web rust-web-src lld-19
fi
mkdir -p target
echo "$route" >target/.wasm-route

# --- cargo-leptos and wasm-bindgen ----------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
if [ "$(cargo leptos --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LEPTOS_VERSION" ]; then
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION (takes about 13 minutes on 2 cores)"
  cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
fi
# wasm-bindgen-cli must match the wasm-bindgen library in Cargo.lock exactly.
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
[ -n "$bindgen_version" ] || die "wasm-bindgen not found in Cargo.lock"
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$bindgen_version" ]; then
  say "installing wasm-bindgen-cli $bindgen_version"
  # Not --locked: one of its locked dependencies has been yanked from crates.io.
  cargo install wasm-bindgen-cli --version "$bindgen_version" --force
fi

# --- npm packages: wasm-opt (binaryen) and Playwright ----------------------
# Debian's binaryen 108 produces modules that fail to hydrate in Chromium; the
# npm package ships a current wasm-opt.
if [ ! -x end2end/node_modules/.bin/wasm-opt ] || [ ! -d end2end/node_modules/playwright-core ] ||
   [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  say "installing npm packages in end2end/"
  (cd end2end && npm ci --no-audit --no-fund --loglevel=error)
fi

say "ready ($mode)"

# Sourced by the other scripts: puts the project's tools on PATH.
export PATH="$HOME/.cargo/bin:$PWD/end2end/node_modules/.bin:$PATH"
# The Debian WASM route (chosen by scripts/setup.sh) wraps cargo.
if [ "$(cat target/.wasm-route 2>/dev/null)" = debian ]; then
  export PATH="$PWD/scripts/debian-wasm:$PATH"
fi

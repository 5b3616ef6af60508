#!/usr/bin/env bash
# Checks the REST API against its OpenAPI document with schemathesis. It
# starts the whole platform (the `lintas` binary) on free loopback ports with
# a fresh data folder and runs every schemathesis check, as the quickstart's
# admin token (checks for ignored authentication send none), with a fixed seed and
# a bounded number of examples. Then it stops the platform, and it fails on
# any failure.
#
# Usage: scripts/schemathesis.sh [SCHEMATHESIS RUN OPTION ...]
#   Options go to `schemathesis run` after the defaults, for example
#   `scripts/schemathesis.sh --max-examples 500 --seed 7`.
#
# The first run installs schemathesis from PyPI into target/schemathesis/venv
# and later runs reuse it. scripts/schemathesis/schemathesis.toml lists the
# rules the run leaves out and why; the platform's log goes to
# target/schemathesis/platform.log.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly SCHEMATHESIS_VERSION=4.32.5
readonly SEED=20260101
readonly MAX_EXAMPLES=250 # per operation and phase
readonly RUN_TIMEOUT=600  # seconds; a run takes about 55 s on an idle 2-core machine
readonly WORK_DIR=target/schemathesis
readonly VENV="$WORK_DIR/venv"

install_schemathesis() {
  if [[ -x $VENV/bin/schemathesis ]] &&
    [[ $("$VENV/bin/schemathesis" --version) == *" $SCHEMATHESIS_VERSION" ]]; then
    return
  fi
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

responds_ok() {
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null
}

wait_until_ready() {
  local url=$1
  for _ in $(seq 1 150); do
    if responds_ok "$url"; then
      return
    fi
    if ! kill -0 "$platform_pid" 2>/dev/null; then
      echo "the platform exited during start-up; see $WORK_DIR/platform.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "the platform is not ready after 30 s at $url; see $WORK_DIR/platform.log" >&2
  exit 1
}

stop_platform() {
  if [[ -n ${platform_pid:-} ]] && kill -0 "$platform_pid" 2>/dev/null; then
    kill "$platform_pid"
    wait "$platform_pid" 2>/dev/null || true
  fi
  if [[ -n ${data_dir:-} ]]; then
    rm -rf "$data_dir"
  fi
}

mkdir -p "$WORK_DIR"
install_schemathesis
cargo build --locked -p lintas

gateway_port=$(free_port)
user_port=$(free_port)
order_port=$(free_port)
data_dir=$(mktemp -d "$WORK_DIR/data.XXXXXX")
trap stop_platform EXIT

"${CARGO_TARGET_DIR:-target}/debug/lintas" --data-dir "$data_dir" \
  --gateway-listen "127.0.0.1:$gateway_port" \
  --user-svc-listen "127.0.0.1:$user_port" \
  --order-svc-listen "127.0.0.1:$order_port" \
  --log-format json >"$WORK_DIR/platform.log" 2>&1 &
platform_pid=$!
base_url="http://127.0.0.1:$gateway_port"
wait_until_ready "$base_url/readyz"
# The quickstart writes its admin token once the demo data is in.
for _ in $(seq 1 100); do
  [[ -s $data_dir/admin.token ]] && break
  sleep 0.1
done
if [[ ! -s $data_dir/admin.token ]]; then
  echo "the platform wrote no admin token to $data_dir within 10 s" >&2
  exit 1
fi
token=$(<"$data_dir/admin.token")

echo "==> schemathesis $SCHEMATHESIS_VERSION against $base_url"
config=$PWD/scripts/schemathesis/schemathesis.toml
export SCHEMATHESIS_HOOKS=$PWD/scripts/schemathesis/hooks.py
# From the work folder, so that schemathesis's own files stay under target/.
status=0
(
  cd "$WORK_DIR"
  timeout "$RUN_TIMEOUT" "$PWD/venv/bin/schemathesis" --config-file "$config" \
    run "$base_url/api/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks all --seed "$SEED" --max-examples "$MAX_EXAMPLES" \
    --request-timeout 15 --no-color "$@"
) || status=$?
if [[ $status -eq 124 ]]; then
  echo "schemathesis did not finish within $RUN_TIMEOUT s" >&2
fi
exit "$status"

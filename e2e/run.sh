#!/usr/bin/env bash
# Runs the end-to-end suite: installs what is missing, builds the three
# binaries and the suite's driver, and runs the driver, which starts the
# whole platform on loopback ports and checks it (see e2e/README.md).
#
# Usage: e2e/run.sh [DRIVER OPTION ...]
#   Options go to the driver, for example `e2e/run.sh --only flows,cache`;
#   `e2e/run.sh --help` lists them.
#
# Missing tools are installed first. On Debian, as root or through sudo,
# apt-get installs PostgreSQL, Redis, Prometheus, Alertmanager, Chromium, jq
# and curl. npm installs playwright-core into e2e/browser/node_modules.
# Later runs reuse them. Logs, generated configuration and screenshots of each run
# go to target/e2e-artifacts/RUN_ID/.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly INSTALL_TIMEOUT=900 # seconds for one apt-get or npm run
readonly BROWSER_DIR=e2e/browser
started_at=$(date +%s)

# --- Tools ----------------------------------------------------------------------

missing_packages() {
  local -a missing=()
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null ||
    missing+=(prometheus-alertmanager)
  [[ -x /usr/bin/chromium ]] || missing+=(chromium)
  command -v jq >/dev/null || missing+=(jq)
  command -v curl >/dev/null || missing+=(curl)
  echo "${missing[@]}"
}

install_packages() {
  local -a packages
  read -r -a packages <<<"$(missing_packages)"
  if [[ ${#packages[@]} -eq 0 ]]; then
    return
  fi
  local -a sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null; then
      echo "missing Debian packages ${packages[*]}: install them, or run as root to have this script install them" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  if ! command -v apt-get >/dev/null; then
    echo "missing packages ${packages[*]}, and there is no apt-get to install them with" >&2
    exit 1
  fi
  echo "==> installing Debian packages: ${packages[*]}"
  timeout "$INSTALL_TIMEOUT" "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout "$INSTALL_TIMEOUT" "${sudo[@]}" \
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

install_playwright() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "node and npm are missing: install Node.js 20 or newer (playwright-core needs it)" >&2
    exit 1
  fi
  local wanted installed=""
  wanted=$(node -p "require('./$BROWSER_DIR/package.json').dependencies['playwright-core']")
  if [[ -f $BROWSER_DIR/node_modules/playwright-core/package.json ]]; then
    installed=$(node -p "require('./$BROWSER_DIR/node_modules/playwright-core/package.json').version")
  fi
  if [[ $installed != "$wanted" ]]; then
    echo "==> installing playwright-core $wanted from npm"
    # playwright-core downloads no browser: the suite drives Debian's Chromium.
    timeout "$INSTALL_TIMEOUT" npm ci --prefix "$BROWSER_DIR" --no-audit --no-fund --loglevel=error
  fi
}

# --- Leftovers --------------------------------------------------------------------

# The driver lists every process it starts in ARTIFACTS/pids as "PID EXECUTABLE".
# It stops them itself; this catches what is left when it was killed. A pid
# is signalled only while it still runs the recorded executable.
# shellcheck disable=SC2317 # called from the EXIT trap
stop_leftovers() {
  local pids_file="$1/pids" pid executable
  [[ -f $pids_file ]] || return 0
  local -a alive=()
  while read -r pid executable; do
    if [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$executable" ]]; then
      alive+=("$pid")
    fi
  done <"$pids_file"
  [[ ${#alive[@]} -gt 0 ]] || return 0
  echo "stopping ${#alive[@]} process(es) the driver left running: ${alive[*]}" >&2
  kill -TERM "${alive[@]}" 2>/dev/null || true
  for _ in $(seq 1 50); do
    local -a still=()
    for pid in "${alive[@]}"; do
      kill -0 "$pid" 2>/dev/null && still+=("$pid")
    done
    [[ ${#still[@]} -gt 0 ]] || return 0
    sleep 0.1
  done
  kill -KILL "${still[@]}" 2>/dev/null || true
}

# Deletes the temporary folders listed in ARTIFACTS/temp-dirs that the
# driver did not delete itself. Only folders named lintas-e2e-* are touched.
# shellcheck disable=SC2317 # called from the EXIT trap
remove_leftover_folders() {
  local list="$1/temp-dirs" folder
  [[ -f $list ]] || return 0
  while read -r folder; do
    if [[ $(basename "$folder") == lintas-e2e-* && -d $folder ]]; then
      rm -rf -- "$folder"
    fi
  done <"$list"
}

# --- Run --------------------------------------------------------------------------

build() {
  # One invocation, so the four share one feature set and one set of artifacts.
  cargo build --locked -p gateway -p user-svc -p order-svc -p lintas-e2e "$@"
}

for arg in "$@"; do
  if [[ $arg == --help || $arg == -h ]]; then
    build --quiet
    exec "${CARGO_TARGET_DIR:-target}/debug/lintas-e2e" --help
  fi
done

install_packages
install_playwright

echo "==> cargo build (gateway, user-svc, order-svc, lintas-e2e)"
build_started=$(date +%s)
build
build_seconds=$(($(date +%s) - build_started))

run_id=$(date -u +%Y%m%dT%H%M%SZ)
artifacts=$PWD/target/e2e-artifacts/$run_id
mkdir -p "$artifacts"
trap 'stop_leftovers "$artifacts"; remove_leftover_folders "$artifacts"' EXIT

status=0
"${CARGO_TARGET_DIR:-target}/debug/lintas-e2e" --run-id "$run_id" --artifacts "$artifacts" "$@" || status=$?
echo "e2e/run.sh took $(($(date +%s) - started_at)) s, of which the build took ${build_seconds} s; artifacts in $artifacts"
exit "$status"

#!/usr/bin/env bash
# Runs the platform benchmark: installs what is missing, builds the three
# binaries with the production profile of the container images and the
# driver in release mode, and runs the driver, which starts
# the platform on loopback ports, measures each scenario and writes the
# results to BENCHMARKS.md.
#
# Usage: bench/run.sh [DRIVER OPTION ...]
#   For example `bench/run.sh --duration-secs 5 --no-write`;
#   `bench/run.sh --help` lists the options.
#
# On Debian, as root or through sudo, apt-get installs wrk, PostgreSQL and
# Redis when they are missing. Logs of each run go to
# target/bench-artifacts/RUN_ID/.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly INSTALL_TIMEOUT=900 # seconds for one apt-get run

missing_packages() {
  local -a missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
  command -v redis-server >/dev/null || missing+=(redis-server)
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
  echo "==> installing Debian packages: ${packages[*]}"
  timeout "$INSTALL_TIMEOUT" "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive timeout "$INSTALL_TIMEOUT" "${sudo[@]}" \
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

# Help needs neither the packages nor a release build.
for argument in "$@"; do
  if [[ $argument == --help || $argument == -h ]]; then
    exec cargo run --quiet --locked -p lintas-bench -- --help
  fi
done

install_packages

# The many-connections scenario opens a thousand sockets on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "==> building gateway, user-svc and order-svc with the production profile, as the images are"
cargo build --profile production --locked -p gateway -p user-svc -p order-svc
echo "==> building lintas-bench in release mode"
cargo build --release --locked -p lintas-bench

BENCH_COMMAND=${BENCH_COMMAND:-"bench/run.sh${*:+ $*}"} \
  exec "${CARGO_TARGET_DIR:-target}/release/lintas-bench" "$@"

#!/usr/bin/env bash
# Runs the whole test suite: the Rust workspace against SQLite and then
# PostgreSQL, then every deployment file checked by its own tool, then the
# end-to-end suite (e2e/run.sh), then a short run of every benchmark
# scenario (no figures kept). On a Debian machine it installs and starts
# what is missing: PostgreSQL, the Redis that the gateway's cache tests use
# at 127.0.0.1:6379, and wrk. e2e/run.sh installs what the end-to-end suite
# needs. Right after the cargo tests, scripts/schemathesis.sh checks the REST
# API against its OpenAPI document, and scripts/fuzz.sh runs each fuzz target
# of gateway/fuzz for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."

export LINTAS_TEST_POSTGRES_URL="${LINTAS_TEST_POSTGRES_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"

apt_updated=false
install_packages() {
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "missing $*: install it, or run as root on Debian to have this script install it" >&2
    exit 1
  fi
  if [[ $apt_updated == false ]]; then
    apt-get update -qq
    apt_updated=true
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    return
  fi
  command -v pg_ctlcluster >/dev/null || install_packages postgresql
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
  done
  pg_isready -h 127.0.0.1 -p 5432
  # A fresh Debian cluster requires a password over TCP, so give the test user one.
  su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
}

redis_responds() {
  # A PING over bash's /dev/tcp, so the check needs no redis-cli.
  (
    exec 3<>/dev/tcp/127.0.0.1/6379 || exit 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 2 reply <&3 && [[ $reply == +PONG* ]]
  ) 2>/dev/null
}

ensure_redis() {
  # The cache tests also start their own redis-server on other ports.
  command -v redis-server >/dev/null || install_packages redis-server
  if redis_responds; then
    return
  fi
  # A cache only: no snapshots, no append-only file.
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null
  for _ in $(seq 1 50); do
    redis_responds && return
    sleep 0.1
  done
  echo "redis-server started but does not respond on 127.0.0.1:6379" >&2
  exit 1
}

drop_test_databases() {
  local databases
  databases=$(psql "$LINTAS_TEST_POSTGRES_URL" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'lintas\_test\_%'")
  for database in $databases; do
    psql "$LINTAS_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $database" >/dev/null
  done
}

command -v psql >/dev/null || install_packages postgresql-client
ensure_postgres
drop_test_databases
ensure_redis

echo "==> cargo test (SQLite)"
LINTAS_TEST_BACKEND=sqlite cargo test --workspace --locked

echo "==> cargo test (PostgreSQL)"
LINTAS_TEST_BACKEND=postgres cargo test --workspace --locked
drop_test_databases

echo "==> OpenAPI document (schemathesis)"
scripts/schemathesis.sh

echo "==> fuzz targets (cargo fuzz)"
scripts/fuzz.sh

if [[ -x scripts/validate-deploy.sh ]]; then
  echo "==> deployment files"
  scripts/validate-deploy.sh
fi

echo "==> end-to-end suite"
e2e/run.sh

echo "==> benchmark smoke run"
command -v wrk >/dev/null || install_packages wrk
cargo build --locked -p gateway -p user-svc -p order-svc -p lintas-bench
target_dir=${CARGO_TARGET_DIR:-target}
"$target_dir/debug/lintas-bench" --smoke --bin-dir "$target_dir/debug"

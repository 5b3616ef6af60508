#!/usr/bin/env bash
# Runs the whole test suite: the Rust workspace, then every deployment file
# checked by its own tool. Installs what is missing on a Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo test"
cargo test --workspace --locked

if [[ -x scripts/validate-deploy.sh ]]; then
  echo "==> deployment files"
  scripts/validate-deploy.sh
fi

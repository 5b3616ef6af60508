#!/usr/bin/env bash
# Builds the libFuzzer targets of gateway/fuzz and runs each one for a
# bounded time, starting from the hand-written seeds in
# gateway/fuzz/seeds/TARGET. Installs cargo-fuzz when it is missing.
#
# cargo fuzz passes unstable (-Z) flags to rustc, which RUSTC_BOOTSTRAP=1
# lets the stable toolchain accept. Targets are built with AddressSanitizer,
# cargo fuzz's default, so that a stack overflow is reported with its input
# rather than killing the fuzzer silently.
#
# FUZZ_SECONDS sets the time per target (default 20). Inputs that found new
# coverage stay in gateway/fuzz/corpus/TARGET for the next run. A crash, a
# timeout (one input over 10 s) or a failed property stops the script, and
# libFuzzer saves the input under gateway/fuzz/artifacts/TARGET/. Replay it
# with `RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET FILE` in gateway/fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
targets=(rest_body rest_request page_token graphql_document jwt)
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

cd gateway/fuzz
# cargo fuzz has no --locked flag, so check the lock file on its own.
cargo metadata --locked --format-version 1 >/dev/null

echo "==> building fuzz targets"
cargo fuzz build

mkdir -p target/logs
for target in "${targets[@]}"; do
  echo "==> fuzzing $target for ${seconds}s"
  mkdir -p "corpus/$target"
  log="target/logs/$target.log"
  if ! cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $target failed; its input is in gateway/fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
done

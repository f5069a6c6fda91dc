#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 20), starting
# from the committed seeds (seeds/<target>) plus what earlier runs found
# (corpus/<target>, not committed). Exits non-zero on the first crash, leak,
# timeout or out-of-memory; libFuzzer leaves the input in artifacts/<target>/.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# cargo-fuzz drives libFuzzer through nightly-only rustc flags; on a stable
# toolchain RUSTC_BOOTSTRAP=1 allows them (see README.md).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
shift || true
export RUSTC_BOOTSTRAP=1
cargo fuzz build
targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo fuzz list)
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "--- fuzz $t for ${secs}s"
  if ! cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- \
    -seed=1 -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
    -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz target $t failed (input saved under fuzz/artifacts/$t/)"
    exit 1
  fi
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
done

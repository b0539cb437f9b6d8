#!/usr/bin/env bash
# `make fuzz`: runs each fuzz target for a fixed time on a corpus seeded from tests/fuzz/seeds/
# (kept between runs, so longer runs build on earlier ones), prints the executions reached, and
# fails on the first crash, leak, sanitizer report or timeout, leaving the input in artifacts/.
set -euo pipefail
build=${1:-build-fuzz}
seconds=${2:-60}
targets=(fuzz_json fuzz_token fuzz_http_request)
seeds=$(cd "$(dirname "$0")" && pwd)/seeds
failed=0
for t in "${targets[@]}"; do
  corpus=$build/corpus/$t
  artifacts=$build/artifacts/$t
  log=$build/logs/$t.log
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  cp "$seeds/$t"/* "$corpus"/
  echo "== $t: ${seconds}s"
  if "$build/$t" "$corpus" -max_total_time="$seconds" -max_len=70000 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "$t: ${execs:-?} executions, no crash (corpus $(ls "$corpus" | wc -l) inputs)"
  else
    failed=1
    echo "$t: FAILED (log $log)"
    grep -E -m1 -A40 '^==[0-9]+==ERROR|invariant failed|runtime error|^SUMMARY|ERROR: libFuzzer' \
      "$log" >"$log.first" || tail -40 "$log" >"$log.first"
    head -60 "$log.first"
    ls "$artifacts"
  fi
done
exit $failed

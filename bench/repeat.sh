#!/usr/bin/env bash
# Runs bench/run.sh N times with the same scenarios, then prints the median of each figure over
# the runs, with the spread of the ratio and of the p99 (the issue's targets are medians of the
# ratios over repeated runs). `make bench-median` runs it (REPEATS, 3; SCENARIOS, all).
#
#   bench/repeat.sh N [stock|orders-pg|orders-sqlite|hot|micro|cluster ...]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
runs=${1:-}
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/repeat.sh N [scenario...] (N >= 1)" >&2; exit 2; }
shift
tables=()
for i in $(seq "$runs"); do
  echo "=== run $i of $runs"
  log=$(mktemp /tmp/emporium-bench-run.XXXXXX)
  "$here/run.sh" "$@" | tee "$log"
  dir=$(grep -o 'results in [^ ]*' "$log" | tail -1 | cut -d' ' -f3)
  rm -f "$log"
  [ -f "$dir/table.tsv" ] || { echo "run $i left no table" >&2; exit 1; }
  tables+=("$dir/table.tsv")
done
echo
echo "Medians over $runs runs (tables: ${tables[*]})"
python3 "$here/report.py" medians "${tables[@]}"

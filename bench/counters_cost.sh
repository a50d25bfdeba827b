#!/usr/bin/env bash
# What the event counters cost (vmstat, retry paths, the reach table): the
# mixed scenario with them and without them (FL_COUNTERS=OFF, where
# Counters::bump does nothing), same seed and configuration, the two binaries
# alternating round by round so the machine's noise falls on both
# (bench/overhead.py, which also checks that both ran the same schedule: one
# digest, counting adds no schedule point).  Prints each run, the medians of
# CPU time and the cost.
#
#   bash bench/counters_cost.sh            5 runs each of --ops 50000 (about 4 minutes with the builds)
#   RUNS=9 OPS=200000 bash bench/counters_cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
ops=${OPS:-50000}
cmake --preset release >/dev/null
cmake --build --preset release --target faultline
cmake -S . -B build/nocounters -G Ninja -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_FLAGS_RELEASE="-O2 -g" -DFL_COUNTERS=OFF -DFL_BUILD_TESTS=OFF -DFL_BUILD_BENCH=OFF >/dev/null
cmake --build build/nocounters --target faultline
out=$(mktemp)
trap 'rm -f "$out"' EXIT
python3 bench/overhead.py --release build/release/stress/faultline --nocounters build/nocounters/stress/faultline \
  --variants 'as shipped,counters out' --runs "$runs" --ops "$ops" --json "$out"
python3 - "$out" <<'PY'
import json, sys
f = {r["variant"]: r["factor"] for r in json.load(open(sys.argv[1]))["rows"]}["counters out"]
print(f"counters cost: {100 * (1 - f):.2f}% of the CPU time (time without / time with {f:.4f})")
PY

#!/usr/bin/env bash
# What the event counters cost (vmstat, retry paths, the reach table): the
# mixed scenario's operations per second with them and without them
# (FL_COUNTERS=OFF, where Counters::bump does nothing), same seed and
# configuration, the two binaries alternating in one session so the machine's
# noise falls on both; prints each run, the medians and their ratio, and
# checks that both ran the same schedule (same digest: counting adds no
# schedule point).
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
python3 - "$runs" "$ops" <<'PY'
import json, statistics, subprocess, sys, tempfile, os
runs, ops = int(sys.argv[1]), sys.argv[2]
bins = {"with counters": "build/release/stress/faultline", "without": "build/nocounters/stress/faultline"}
rates = {k: [] for k in bins}
digests = {k: set() for k in bins}
with tempfile.TemporaryDirectory() as d:
    for i in range(runs):
        for name, exe in bins.items():
            out = os.path.join(d, "r.json")
            subprocess.run([exe, "--scenario", "mixed", "--ops", ops, "--seed", "1", "--quiet", "--json", out],
                           check=True, stdout=subprocess.DEVNULL)
            j = json.load(open(out))
            rates[name].append(j["operations"]["per_second"])
            digests[name].add(j["schedule"]["digest"])
            print(f"run {i + 1} {name:>13}: {j['operations']['per_second']:10.0f} ops/s  digest {j['schedule']['digest']}")
med = {k: statistics.median(v) for k, v in rates.items()}
for k, v in med.items():
    print(f"median {k:>13}: {v:10.0f} ops/s over {runs} runs")
print(f"counters cost: {100 * (1 - med['with counters'] / med['without']):.2f}% of the throughput "
      f"(ratio with/without {med['with counters'] / med['without']:.4f})")
same = digests["with counters"] == digests["without"] and len(digests["without"]) == 1
print("schedules: " + ("the same digest in every run" if same else f"DIFFER: {digests}"))
sys.exit(0 if same else 1)
PY

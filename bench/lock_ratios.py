#!/usr/bin/env python3
"""Runs lock_bench with repetitions and prints medians and the issue-2 ratios.

usage: python3 bench/lock_ratios.py build/release/bench/lock_bench [reps]
"""
import json
import subprocess
import sys

BACKENDS = ["std", "futex", "tbb-spin", "tbb-queuing", "fiber"]


def main():
    if len(sys.argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    binary = sys.argv[1]
    reps = sys.argv[2] if len(sys.argv) > 2 else "7"
    out = subprocess.run(
        [binary, f"--benchmark_repetitions={reps}", "--benchmark_report_aggregates_only=true",
         "--benchmark_format=json"],
        check=True, capture_output=True, text=True).stdout
    medians = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("aggregate_name") == "median":
            medians[b["run_name"]] = b["real_time"]
    for name, ns in sorted(medians.items()):
        print(f"{ns:10.1f} ns  {name}")
    print()
    print(f"{'backend':12} {'raw':>8} {'off':>8} {'on':>8} {'off/raw':>8}  on<100ns")
    for i, be in enumerate(BACKENDS):
        raw = medians.get(f"raw/{be}")
        off = medians.get(f"BM_Mutex/{i}/0")
        on = medians.get(f"BM_Mutex/{i}/1")
        if raw and off and on:
            print(f"{be:12} {raw:8.1f} {off:8.1f} {on:8.1f} {off / raw:8.2f}  {'yes' if on < 100 else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

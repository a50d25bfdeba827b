#!/usr/bin/env bash
# The benchmark suite (issue 16; bench/README.md explains each figure).
# Installs what is missing, builds the release preset's benchmark programs
# and faultline, runs the suite and writes its JSON, PNG plots and summary.md
# into a results folder.
#
#   ci/bench.sh                  quick: at most 5 minutes on 2 cores
#   ci/bench.sh --full           bigger machines (about 25 minutes on 2 cores): 1 s per scaling point,
#                                workers up to 4 x the cores (at least 64),
#                                5 repetitions of the microbenchmarks (medians),
#                                and it builds the two other faultlines the
#                                overhead factors compare: one without KASSERTs
#                                (FL_INVARIANTS=OFF, build/bench-noinv) and the
#                                tsan preset's (about 4 more minutes on 2 cores)
#   ci/bench.sh --out DIR        results here (default build/bench-results/DATE)
# The quick mode prices invariants and TSan only if those builds exist
# (build/bench-noinv from an earlier --full; build/tsan as ci/test.sh leaves
# it), and says so when they do not.
# Exit code: 0 done, 1 a benchmark failed, 2 bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."

full=0
out=""
while (($#)); do
  case "$1" in
    --full) full=1 ;;
    --out)
      [[ $# -ge 2 && -n "$2" ]] || { echo "bench.sh: --out needs a folder" >&2; exit 2; }
      out="$2"
      shift
      ;;
    -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1' (--full, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done
[[ -n "$out" ]] || out="build/bench-results/$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
out=$(cd "$out" && pwd)
start=$(date +%s)
stamp() { echo "bench.sh: [$(($(date +%s) - start)) s] $*"; }

if ((full)); then bash ci/install-deps.sh --bench --clang; else bash ci/install-deps.sh --bench; fi

stamp "building the release preset's benchmarks and faultline"
cmake --preset release >/dev/null
cmake --build --preset release --target faultline scale_bench host_bench fault_bench ops_bench sched_bench
if ((full)); then
  stamp "building faultline without KASSERTs (build/bench-noinv)"
  cmake -S . -B build/bench-noinv -G Ninja -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS_RELEASE="-O2 -g" -DFL_WERROR=ON -DFL_INVARIANTS=OFF -DFL_BUILD_TESTS=OFF \
    -DFL_BUILD_BENCH=OFF -DFL_INSTALL=OFF >/dev/null
  cmake --build build/bench-noinv --target faultline
  stamp "building the tsan preset's faultline"
  cmake --preset tsan >/dev/null
  cmake --build --preset tsan --target faultline
fi
others=()
if [[ -x build/bench-noinv/stress/faultline ]]; then
  others+=(--noinv build/bench-noinv/stress/faultline)
else
  stamp "invariants out: not priced (no build/bench-noinv; ci/bench.sh --full builds it)"
fi
if [[ -x build/tsan/stress/faultline ]]; then
  others+=(--tsan build/tsan/stress/faultline)
else
  stamp "tsan: not priced (no build/tsan; ci/bench.sh --full or ci/test.sh builds it)"
fi
# Debian's python3 (its matplotlib), not one a version manager put first in PATH.
py=python3
[[ -x /usr/bin/python3 ]] && py=/usr/bin/python3

b=build/release/bench
if ((full)); then
  cores=$(nproc)
  top=$((cores * 4 > 64 ? cores * 4 : 64))
  export FL_BENCH_SECONDS=1 FL_BENCH_MAX_WORKERS=$top
  reps=(--benchmark_repetitions=5 --benchmark_report_aggregates_only=true)
  min=(--benchmark_min_time=0.5)
  ovruns=5
  ovops=20000
  tsanruns=3
else
  export FL_BENCH_SECONDS=0.1 FL_BENCH_MAX_WORKERS=64
  reps=()
  min=(--benchmark_min_time=0.1)
  ovruns=5
  ovops=4000
  tsanruns=1
fi
fmt=--benchmark_out_format=json

stamp "model scaling (scale_bench: 3 shapes x 3 sharings x read/write x 1..$FL_BENCH_MAX_WORKERS workers, profiled)"
rm -f "$out/scale_profile.jsonl" "$out/scale_profile.jsonl.txt"
FL_BENCH_PROFILE="$out/scale_profile.jsonl" $b/scale_bench "--benchmark_out=$out/scale.json" "$fmt" >"$out/scale.txt"
stamp "host kernel scaling (host_bench)"
$b/host_bench "--benchmark_out=$out/host.json" "$fmt" >"$out/host.txt"
stamp "fault costs: chain depth, object size, single-thread faults (fault_bench)"
$b/fault_bench "${min[@]}" "${reps[@]}" "--benchmark_out=$out/fault.json" "$fmt" >"$out/fault.txt"
stamp "fork, truncation, pageout per page (ops_bench)"
# Its iterations are long (a scan of 2,048 pages) and their setup untimed: 0.1 s of timed
# work per repetition is plenty, in both modes.
$b/ops_bench --benchmark_min_time=0.1 "${reps[@]}" "--benchmark_out=$out/ops.json" "$fmt" >"$out/ops.txt"
stamp "deterministic scheduler: points per second (sched_bench)"
$b/sched_bench --benchmark_filter='BM_Sched' "${min[@]}" "${reps[@]}" "--benchmark_out=$out/sched.json" "$fmt" >"$out/sched.txt"
for n in 1000 10000 100000; do
  # One process per point: a process reuses the stacks and heap of its earlier runs.
  $b/sched_bench --benchmark_filter="BM_FiberMemory/$n/" "--benchmark_out=$out/fibermem-$n.json" "$fmt" >>"$out/sched.txt"
done
stamp "overhead factors on the mixed workload (bench/overhead.py)"
$py bench/overhead.py --release build/release/stress/faultline "${others[@]}" --runs "$ovruns" --tsan-runs "$tsanruns" --ops "$ovops" \
  --json "$out/overhead.json" | tee "$out/overhead.txt"
stamp "plots"
$py bench/plot.py "$out"
stamp "done: $out"
ls "$out"

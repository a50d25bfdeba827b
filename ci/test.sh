#!/usr/bin/env bash
# The whole test suite: installs what is missing, then configures, builds and
# tests the release (g++ 12), tsan and asan (clang-19, -Wthread-safety -Werror)
# presets.  Each preset's CTest summary is printed; the script fails on the
# first preset that fails.
#
#   bash ci/test.sh                 all three presets
#   bash ci/test.sh release asan    only these
set -euo pipefail
cd "$(dirname "$0")/.."

bash ci/install-deps.sh --clang
# The -Wthread-safety negative-compile check must run here: a missing
# clang++-19 is a failure, not a skipped test (CMakeLists.txt: FL_TSA_CHECK).
if ! command -v clang++-19 >/dev/null; then
  echo "test.sh: clang++-19 is missing after ci/install-deps.sh --clang" >&2
  exit 1
fi
export FL_TSA_CHECK=ON

presets=("$@")
if ((${#presets[@]} == 0)); then presets=(release tsan asan); fi

summary=()
for p in "${presets[@]}"; do
  echo "=== preset ${p} ==="
  start=$(date +%s)
  # A build tree configured before FL_TSA_CHECK=ON keeps its cached AUTO.
  if [[ -f "build/${p}/CMakeCache.txt" ]]; then
    cmake -DFL_TSA_CHECK=ON "build/${p}" >/dev/null
  fi
  # PIPESTATUS must be read right after the pipeline: a `|| true` would
  # replace it with true's (that hid a failing preset once).
  set +e
  cmake --workflow --preset "${p}" 2>&1 | tee "/tmp/faultline-ci-${p}.log" | grep -vE '^\s+Start |^\[[0-9]+/[0-9]+\] '
  rc=${PIPESTATUS[0]}
  set -e
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of' "/tmp/faultline-ci-${p}.log" | tail -n 1 || true)
  summary+=("${p}: ${line:-no test summary} ($(($(date +%s) - start)) s)")
  if ((rc == 0)) && ! grep -q 'locking.tsa_compile_bad .*Passed' "/tmp/faultline-ci-${p}.log"; then
    summary+=("${p}: the -Wthread-safety compile check did not run")
    rc=1
  fi
  if ((rc != 0)); then
    printf '%s\n' "${summary[@]}"
    echo "preset ${p} failed (exit ${rc}); full log: /tmp/faultline-ci-${p}.log"
    exit "${rc}"
  fi
done
echo "=== summary ==="
printf '%s\n' "${summary[@]}"

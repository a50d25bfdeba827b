#!/usr/bin/env bash
# The main job: installs what is missing, builds the release preset and runs
# the default stress campaign (faultline with no arguments: scenario mixed,
# deterministic fibers, seed 1; about half a minute on one core) and prints
# its summary.  Extra arguments go to faultline (e.g. --seed 7, or
# sweep --seeds 1..100).  Exit code: 0 pass, 1 a failure found, 2 bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."

bash ci/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target faultline
exec ./build/release/stress/faultline "$@"

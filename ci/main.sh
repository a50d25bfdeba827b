#!/usr/bin/env bash
# The main job: installs what is missing, builds the release preset and runs
# the default campaign with its summary.  Until the stress harness (stress/)
# lands, the default campaign is the lock library's demo: a reversal across
# threads caught and reported, a held-lock dump, the lock profile and the
# class order graph.
set -euo pipefail
cd "$(dirname "$0")/.."

bash ci/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target locking_demo
exec ./build/release/locking/locking_demo "$@"

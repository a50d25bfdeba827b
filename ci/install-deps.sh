#!/usr/bin/env bash
# Install the Debian 12 packages faultline needs, idempotently:
# `apt-get update` runs at most once, and only when something is missing.
#
#   ci/install-deps.sh            release toolchain (g++ 12) and libraries
#   ci/install-deps.sh --clang    also clang-19 and its sanitizer runtimes
#   ci/install-deps.sh --bench    also matplotlib (ci/bench.sh's plots)
# (the two may be given together)
set -euo pipefail

want=(
  build-essential cmake ninja-build pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  libtbb-dev libboost-fiber1.81-dev libboost-context1.81-dev
  libfmt-dev libcli11-dev nlohmann-json3-dev
  python3
)
for arg in "$@"; do
  case "$arg" in
    --clang) want+=(clang-19 libclang-rt-19-dev llvm-19) ;;
    --bench) want+=(python3-matplotlib) ;;
    *) echo "install-deps: unknown argument '$arg' (--clang, --bench)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"

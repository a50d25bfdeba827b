#!/usr/bin/env bash
# Proves the README's two commands on a truly fresh Debian 12 machine: builds
# a clean Debian 12 (bookworm) root file system with mmdebstrap (variant
# minbase: apt and the essential packages, nothing of this project's), puts
# a fresh clone of this repository's HEAD in it, and runs inside it, by
# chroot, first `bash ci/main.sh` (the main job) and then `bash ci/test.sh`
# (the whole test suite), each from nothing installed.  Run as root; about
# 40 minutes on 2 cores.  Not part of .ci/run.
#
#   bash ci/fresh-machine.sh [ROOT_DIR]      (default /tmp/faultline-fresh-root)
#   FRESH_ONLY=main bash ci/fresh-machine.sh   only the main job
#   FRESH_BENCH=1 bash ci/fresh-machine.sh     then also `bash ci/bench.sh` (the
#                                              benchmark suite, matplotlib from
#                                              nothing; about 5 more minutes)
#
# The root's apt sources are the host's own Debian sources
# (/etc/apt/sources.list.d/debian.sources, or /etc/apt/sources.list), so
# it reaches whatever Debian mirror this machine is set up for.  Logs:
# /tmp/faultline-fresh/{mmdebstrap,main,test}.log.  Exit 0 only if both
# commands succeed and the main job printed "pass: PASS".
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${1:-/tmp/faultline-fresh-root}
logs=/tmp/faultline-fresh
only=${FRESH_ONLY:-}

if [[ $(id -u) -ne 0 ]]; then
  echo "fresh-machine: run as root (mmdebstrap, mount and chroot need it)" >&2
  exit 2
fi
if ! command -v mmdebstrap >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi
sources=/etc/apt/sources.list.d/debian.sources
[[ -f $sources ]] || sources=/etc/apt/sources.list
if [[ ! -f $sources ]]; then
  echo "fresh-machine: no Debian apt sources on this host to copy" >&2
  exit 2
fi

mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT

for m in proc sys dev/pts dev; do
  if mountpoint -q "$root/$m" 2>/dev/null; then umount -l "$root/$m"; fi
done
rm -rf "$root"
mkdir -p "$logs"
echo "fresh-machine: building a clean Debian 12 root in $root (log: $logs/mmdebstrap.log)"
start=$(date +%s)
mmdebstrap --variant=minbase bookworm "$root" "$sources" >"$logs/mmdebstrap.log" 2>&1
echo "fresh-machine: root built in $(($(date +%s) - start)) s: $(chroot "$root" dpkg-query -W | wc -l) packages," \
  "$(du -sh "$root" | cut -f1)"

# A fresh clone of HEAD (committed work only), as CI and a new user get it.
rev=$(git -C "$repo" rev-parse HEAD)
git clone --quiet --no-local "$repo" "$root/root/faultline"
git -C "$root/root/faultline" checkout --quiet "$rev"
echo "fresh-machine: cloned $rev into /root/faultline"

cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc" && mounted+=("$root/proc")
mount -t sysfs sys "$root/sys" && mounted+=("$root/sys")
mount --bind /dev "$root/dev" && mounted+=("$root/dev")
mount -t devpts devpts "$root/dev/pts" && mounted+=("$root/dev/pts")

in_root() {  # a login-like clean environment: nothing of the host's
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 TERM=dumb /bin/bash -c "cd /root/faultline && $1"
}

# step NAME TAIL: runs `bash ci/NAME.sh` in the root, logs it, prints its
# last TAIL lines; returns its exit code.
step() {
  local name=$1 tail=$2 start code
  echo "=== fresh-machine: bash ci/$name.sh (log: $logs/$name.log) ==="
  start=$(date +%s)
  set +e
  in_root "bash ci/$name.sh" >"$logs/$name.log" 2>&1
  code=$?
  set -e
  tail -n "$tail" "$logs/$name.log"
  echo "fresh-machine: ci/$name.sh exited $code after $(($(date +%s) - start)) s"
  return "$code"
}

rc=0
step main 25 || rc=1
grep -q '^pass: PASS$' "$logs/main.log" || rc=1
if [[ $only != main ]]; then
  step test 12 || rc=1
fi
if [[ ${FRESH_BENCH:-0} == 1 ]]; then
  step bench 12 || rc=1
  ls "$root"/root/faultline/build/bench-results/*/summary.md >/dev/null 2>&1 || rc=1
fi
echo "fresh-machine: $( ((rc == 0)) && echo PASS || echo FAIL) at $rev"
exit "$rc"

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

rc=0
echo "=== fresh-machine: bash ci/main.sh (log: $logs/main.log) ==="
start=$(date +%s)
set +e
in_root "bash ci/main.sh" >"$logs/main.log" 2>&1
main_rc=$?
set -e
tail -n 25 "$logs/main.log"
echo "fresh-machine: ci/main.sh exited $main_rc after $(($(date +%s) - start)) s"
if ((main_rc != 0)) || ! grep -q '^pass: PASS$' "$logs/main.log"; then rc=1; fi

if [[ $only != main ]]; then
  echo "=== fresh-machine: bash ci/test.sh (log: $logs/test.log) ==="
  start=$(date +%s)
  set +e
  in_root "bash ci/test.sh" >"$logs/test.log" 2>&1
  test_rc=$?
  set -e
  tail -n 12 "$logs/test.log"
  echo "fresh-machine: ci/test.sh exited $test_rc after $(($(date +%s) - start)) s"
  ((test_rc == 0)) || rc=1
fi
echo "fresh-machine: $( ((rc == 0)) && echo PASS || echo FAIL) at $rev"
exit "$rc"

#!/usr/bin/env bash
# Host settings that the tests and benchmarks need, set by the project itself (a new machine has none of them).
# Idempotent; needs root. Called by scripts/test.sh and scripts/bench.sh, so neither depends on a machine
# prepared by hand.
#  - crun (podman's runtime, used by the peer tests and benchmarks) refuses to start on a hybrid cgroup host
#    whose v2 hierarchy still holds a controller ("cgroups in hybrid mode not supported, drop all controllers
#    from cgroupv2"). This host boots with hugetlb left on the v2 hierarchy; binding it to a v1 hierarchy moves
#    it off v2. berth itself runs either way.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "host-setup.sh: must run as root" >&2; exit 1; }
UNIFIED=/sys/fs/cgroup/unified
# Only on a hybrid host (v1 hierarchies on a tmpfs at /sys/fs/cgroup); a pure v2 host needs nothing.
if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = tmpfs ] && [ -f "$UNIFIED/cgroup.controllers" ]; then
  for c in $(cat "$UNIFIED/cgroup.controllers" 2>/dev/null); do
    mountpoint -q "/sys/fs/cgroup/$c" && continue
    # A controller enabled in some v2 subtree cannot move (EBUSY): a berth run on the unified hierarchy
    # (the tests' simulated v2 host) enables what it finds there. Disable it deepest cgroup first.
    find "$UNIFIED" -type d | awk -F/ '{ print NF, $0 }' | sort -rn | cut -d' ' -f2- | while read -r d; do
      grep -qw "$c" "$d/cgroup.subtree_control" 2>/dev/null && echo "-$c" > "$d/cgroup.subtree_control" || true
    done
    # Its emptied cgroups keep it busy until they go: remove berth's own empty ones (rmdir refuses any
    # that still holds a process).
    find "$UNIFIED/berth" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    mkdir -p "/sys/fs/cgroup/$c"
    mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" ||
      echo "host-setup.sh: could not bind the $c controller to a v1 hierarchy; podman/crun peers may refuse to run" >&2
  done
fi

#!/usr/bin/env bash
# Runs the peer benchmarks of ../shared/bench with berth side by side (crun, runc, podman, docker) and the
# monitor's memory per detached container. Needs root and the shared/ folder beside this repository.
# Usage: scripts/bench.sh [latency] [parallel] [rss] [registry]   (default: all four)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd .. && pwd)/shared}
[ -d "$SHARED/bench" ] || { echo "bench.sh: $SHARED/bench not found (set SHARED=…)" >&2; exit 2; }
scripts/deps.sh
cargo build --release --locked -p berth
B=${CARGO_TARGET_DIR:-$(pwd)/target}/release/berth
OUT=${OUT:-/var/tmp/berth-bench}; BR=$OUT/berth-root
"$SHARED/bench/make-busybox.sh" "$OUT" >/dev/null
# crun refuses to start on a hybrid cgroup host whose v2 hierarchy holds a controller ("cgroups in hybrid
# mode not supported"); hugetlb is such a leftover here: bind it to a v1 hierarchy so the peer can run.
if [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ] && ! mountpoint -q /sys/fs/cgroup/hugetlb; then
  mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb || true
fi
$B --root "$BR" image inspect bench-busybox >/dev/null 2>&1 || $B --root "$BR" import "$OUT/busybox.tar" bench-busybox >/dev/null
what=${*:-latency parallel rss registry}
echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for w in $what; do case $w in
  latency) "$SHARED/bench/start-latency.sh" --berth "$B --root $BR run --rm bench-busybox /bin/true" ;;
  parallel) "$SHARED/bench/start-parallel.sh" --berth "$B --root $BR run --rm bench-busybox /bin/true" ;;
  rss)
    ids=(); for i in 1 2 3 4 5; do ids+=("$($B --root "$BR" run -d bench-busybox sh -c 'while :; do echo tick; sleep 1; done')"); done
    sleep 3
    for id in "${ids[@]}"; do
      pid=$(pgrep -f "__monitor $id" | head -1)
      echo "monitor of ${id:0:12}: $(awk '/VmRSS/ {print $2, $3}' "/proc/$pid/status")"
    done
    $B --root "$BR" rm -f "${ids[@]}" >/dev/null ;;
  registry)
    # distribution 2.8 and berth's registry on local disk, same image and clients (curl, skopeo), one run.
    "$SHARED/bench/registry-throughput.sh" --berth "$B registry serve --addr 127.0.0.1:\$PORT --storage \$DATA" ;;
  *) echo "bench.sh: unknown benchmark $w" >&2; exit 2 ;;
esac; done

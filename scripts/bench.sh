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
  registry-1g)
    # Peak RSS of berth's registry while a 1 GiB blob goes through: pushed monolithically (POST + PUT),
    # pushed again chunked (PATCH + PUT), and pulled by 4 clients at once.
    d=$(mktemp -d "$OUT/reg1g.XXXX"); blob=$OUT/blob-1g
    [ -f "$blob" ] || head -c $((1 << 30)) /dev/urandom > "$blob"
    dig=sha256:$(sha256sum "$blob" | cut -d' ' -f1); port=$((5900 + RANDOM % 90)); u=http://127.0.0.1:$port/v2/big/blob
    "$B" registry serve --addr "127.0.0.1:$port" --storage "$d/data" 2>"$d/log" & pid=$!
    for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.1; done
    loc() { curl -fsS -D - -o /dev/null -X POST "$u/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}'; }
    s=$(date +%s%N); curl -fsS -o /dev/null -X PUT -T "$blob" "http://127.0.0.1:$port$(loc)?digest=$dig"
    echo "1 GiB monolithic push: $(( ($(date +%s%N) - s) / 1000000 )) ms"
    l=$(loc); s=$(date +%s%N); curl -fsS -o /dev/null -X PATCH -T "$blob" "http://127.0.0.1:$port$l"
    curl -fsS -o /dev/null -X PUT "http://127.0.0.1:$port$l?digest=$dig"
    echo "1 GiB chunked push: $(( ($(date +%s%N) - s) / 1000000 )) ms"
    s=$(date +%s%N); for _ in 1 2 3 4; do curl -fsS -o /dev/null "$u/blobs/$dig" & done; wait %2 %3 %4 %5 2>/dev/null || true
    echo "4 x 1 GiB pull: $(( ($(date +%s%N) - s) / 1000000 )) ms"
    echo "registry peak RSS: $(awk '/VmHWM/{printf "%d MiB", $2/1024}' /proc/$pid/status)"
    kill $pid; wait $pid 2>/dev/null || true; rm -rf "$d" ;;
  *) echo "bench.sh: unknown benchmark $w" >&2; exit 2 ;;
esac; done

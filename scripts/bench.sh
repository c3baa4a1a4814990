#!/usr/bin/env bash
# Runs the peer benchmarks of ../shared/bench with berth side by side (crun, runc, podman, docker) and the
# monitor's memory per detached container. Needs root and the shared/ folder beside this repository.
# Usage: scripts/bench.sh [latency] [parallel] [rss] [registry] [pull] [network]   (default: the first five;
# also registry-1g and network)
set -euo pipefail
# Root is needed (namespaces, mounts, cgroups): as root (a CI machine) run directly, elsewhere through sudo,
# keeping the caller's PATH so its cargo is found.
[ "$(id -u)" = 0 ] || exec sudo --preserve-env env "PATH=$PATH" "$0" "$@"
cd "$(dirname "$0")/.."
SHARED=${SHARED:-$(cd .. && pwd)/shared}
[ -d "$SHARED/bench" ] || { echo "bench.sh: $SHARED/bench not found (set SHARED=…)" >&2; exit 2; }
scripts/deps.sh
cargo build --release --locked -p berth
B=${CARGO_TARGET_DIR:-$(pwd)/target}/release/berth
OUT=${OUT:-/var/tmp/berth-bench}; BR=$OUT/berth-root
"$SHARED/bench/make-busybox.sh" "$OUT" >/dev/null
scripts/host-setup.sh   # the cgroup quirk crun needs fixed (see there)
$B --root "$BR" image inspect bench-busybox >/dev/null 2>&1 || $B --root "$BR" import "$OUT/busybox.tar" bench-busybox >/dev/null
what=${*:-latency parallel rss registry pull}
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
  network)
    # Bridge networking with podman and docker in one run (../shared/bench/network.sh): start cost of the
    # default bridge and a user network, published-port throughput and latency, DNS lookups, 20 containers.
    "$SHARED/bench/network.sh" --berth "$B --root $BR" ;;
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
  pull)
    # berth pull/push against distribution 2.8 on disk, beside podman pull and skopeo copy: a 4 x 64 MiB image
    # of random gzip'd layers (make-oci-image.py), median of 3, a fresh store (and a fresh registry for
    # pushes) each run, the registry's files in the page cache. Then a re-push of the unchanged image.
    scripts/registry-deps.sh
    img=$OUT/img-4x64
    [ -f "$img/index.json" ] || python3 "$SHARED/bench/make-oci-image.py" "$img" --layers 4 --mib 64 --tag v1 >/dev/null
    [ -f "$OUT/img-4x64.tar" ] || tar -C "$img" -cf "$OUT/img-4x64.tar" .
    DR="$SHARED/conformance/docker-registry.sh"
    ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
    median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
    reg_start() { rm -rf "/opt/conformance/registry-$1"; "$DR" start "$1" fs >/dev/null; }
    reg_stop() { "$DR" stop "$1"; rm -rf "/opt/conformance/registry-$1"; }
    port=$((6100 + RANDOM % 800)); ref=127.0.0.1:$port/bench/img:v1
    reg_start $port
    skopeo copy -q --dest-tls-verify=false "oci:$img:v1" "docker://$ref"
    d=$(mktemp -d "$OUT/pull.XXXX")
    "$B" --root "$d/warm" pull -q "$ref" >/dev/null   # page cache of the registry's files
    bt=(); pt=()
    for i in 1 2 3; do
      s=$(date +%s%N); "$B" --root "$d/b$i" pull -q "$ref" >/dev/null; bt+=("$(ms "$s")")
      P=(podman --root "$d/p$i" --runroot "/tmp/bench-pr$i" --storage-driver overlay)
      s=$(date +%s%N); "${P[@]}" pull -q --tls-verify=false "$ref" >/dev/null; pt+=("$(ms "$s")")
      "${P[@]}" system reset -f >/dev/null 2>&1 || true
      rm -rf "$d/b$i" "$d/p$i" "/tmp/bench-pr$i"
    done
    echo "pull 4x64 MiB from distribution 2.8: berth $(median "${bt[@]}") ms, podman $(median "${pt[@]}") ms (runs: berth ${bt[*]}; podman ${pt[*]})"
    reg_stop $port
    # Push: the image loaded into a berth store (no known source, so nothing is mounted), each run to a
    # registry started empty on a new port; skopeo from the OCI layout, likewise.
    "$B" --root "$d/push" load -q -i "$OUT/img-4x64.tar" >/dev/null
    src=$("$B" --root "$d/push" images -q --no-trunc | head -1)
    bt=(); st=()
    for i in 1 2 3; do
      p=$((port + i)); reg_start $p
      s=$(date +%s%N); "$B" --root "$d/push" push -q "$src" "127.0.0.1:$p/bench/img:v1" >/dev/null; bt+=("$(ms "$s")")
      reg_stop $p; reg_start $p
      s=$(date +%s%N); skopeo copy -q --dest-tls-verify=false "oci:$img:v1" "docker://127.0.0.1:$p/bench/img:v1"; st+=("$(ms "$s")")
      reg_stop $p
    done
    echo "push 4x64 MiB to distribution 2.8: berth $(median "${bt[@]}") ms, skopeo copy $(median "${st[@]}") ms (runs: berth ${bt[*]}; skopeo ${st[*]})"
    # Re-push of the unchanged image (HEAD per blob, manifest PUT): the registry has everything.
    p=$((port + 10)); reg_start $p
    "$B" --root "$d/push" push -q "$src" "127.0.0.1:$p/bench/img:v1" >/dev/null
    hyperfine -N --warmup 2 --runs 20 --export-json "$d/repush.json" \
      "$B --root $d/push push -q $src 127.0.0.1:$p/bench/img:v1" >/dev/null
    echo "re-push unchanged: berth $(jq '.results[0].median * 1000 | floor' "$d/repush.json") ms median (hyperfine, 20 runs)"
    reg_stop $p
    rm -rf "$d" ;;
  *) echo "bench.sh: unknown benchmark $w" >&2; exit 2 ;;
esac; done

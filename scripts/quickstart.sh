#!/usr/bin/env bash
# Fresh machine → a running container: installs dependencies, builds berth, imports a busybox image and runs
# a container from it, then pushes it to a local berth registry and pulls it into a second store. Needs root
# (namespaces, mounts, cgroups). State goes to $BERTH_ROOT (default /var/lib/berth).
set -euo pipefail
# Root is needed (namespaces, mounts, cgroups): as root (a CI machine) run directly, elsewhere through sudo,
# keeping the caller's PATH so its cargo is found.
[ "$(id -u)" = 0 ] || exec sudo --preserve-env env "PATH=$PATH" "$0" "$@"
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked -p berth
B=target/release/berth
scripts/make-busybox-tar.sh target/busybox.tar
$B import target/busybox.tar busybox:latest
$B images
$B run --rm busybox sh -c 'echo "hello from $(hostname), pid $$, in a berth container"; id; ls /'

# Ship it: serve a registry on this machine, push the image, pull it into a second, empty store (as another
# machine would) and run it there.
reg_dir=$(mktemp -d)
other_root=$(mktemp -d)
$B registry serve --addr 127.0.0.1:0 --storage "$reg_dir" 2>"$reg_dir.log" &
reg_pid=$!
trap 'kill $reg_pid 2>/dev/null; wait $reg_pid 2>/dev/null; rm -rf "$reg_dir" "$reg_dir.log" "$other_root"' EXIT
for _ in $(seq 50); do grep -q "listening on" "$reg_dir.log" && break; sleep 0.1; done
reg=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$reg_dir.log" | head -1)
$B tag busybox $reg/demo/busybox:1
$B push $reg/demo/busybox:1
$B --root "$other_root" pull $reg/demo/busybox:1
$B --root "$other_root" run --rm $reg/demo/busybox:1 echo "pulled from the registry and running"

#!/usr/bin/env bash
# Fresh machine → a running container: installs dependencies, builds berth, imports a busybox image and runs
# a container from it. Needs root (namespaces, mounts, cgroups). State goes to $BERTH_ROOT (default /var/lib/berth).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked -p berth
B=target/release/berth
scripts/make-busybox-tar.sh target/busybox.tar
$B import target/busybox.tar busybox:latest
$B images
$B run --rm busybox sh -c 'echo "hello from $(hostname), pid $$, in a berth container"; id; ls /'

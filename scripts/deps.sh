#!/usr/bin/env bash
# Installs what berth's build, quickstart and tests need on a fresh Debian machine (idempotent).
# busybox-static: the test images' userland. tar, file: building test tarballs. util-linux: unshare, mount.
# iproute2, nftables: the network tests set up and inspect their own namespaces with ip and nft (berth
# itself never runs them).
set -euo pipefail
need=()
[ -x /bin/busybox ] && file -b /bin/busybox 2>/dev/null | grep -q static || need+=(busybox-static file)
command -v tar >/dev/null || need+=(tar)
command -v zstd >/dev/null || need+=(zstd)
command -v gzip >/dev/null || need+=(gzip)
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "deps.sh: cargo (Rust stable) is required" >&2; exit 1; }

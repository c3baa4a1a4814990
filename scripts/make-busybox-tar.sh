#!/usr/bin/env bash
# Writes a busybox root filesystem tarball (busybox-static and its applets, /etc/passwd, /etc/group) to $1.
set -euo pipefail
out=${1:?usage: make-busybox-tar.sh OUT.tar}
bb=$(command -v busybox)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,etc,tmp,proc,sys,dev,root,var}
cp "$bb" "$tmp/bin/busybox"
for a in $("$tmp/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$tmp/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$tmp/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$tmp/etc/group"
chmod 1777 "$tmp/tmp"
tar --numeric-owner -C "$tmp" -cf "$out.tmp" . && mv "$out.tmp" "$out"

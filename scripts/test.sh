#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and end-to-end tests (real containers; needs root).
set -euo pipefail
# Root is needed (namespaces, mounts, cgroups): as root (a CI machine) run directly, elsewhere through sudo,
# keeping the caller's PATH so its cargo is found.
[ "$(id -u)" = 0 ] || exec sudo --preserve-env env "PATH=$PATH" "$0" "$@"
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/registry-deps.sh
scripts/host-setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# --no-fail-fast: one failing test binary must not hide the others.
cargo test --workspace --locked --no-fail-fast

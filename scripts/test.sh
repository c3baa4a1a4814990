#!/usr/bin/env bash
# The whole test suite, every tier (docs/testing.md): formatting, lints, the plain tests, the e2e tests
# (real containers; need root) and the peers tests (podman, skopeo, crane, distribution, moto, chromium).
set -euo pipefail
# Root is needed (namespaces, mounts, cgroups): as root (a CI machine) run directly, elsewhere through sudo,
# keeping the caller's PATH so its cargo is found.
[ "$(id -u)" = 0 ] || exec sudo --preserve-env env "PATH=$PATH" "$0" "$@"
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/registry-deps.sh
scripts/host-setup.sh
# A clean clone builds once: incremental caches would only cost disk.
export CARGO_INCREMENTAL=0
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
# --all-features turns on the e2e and peers tiers; --no-fail-fast: one failing test binary must not
# hide the others.
cargo test --workspace --all-features --locked --no-fail-fast

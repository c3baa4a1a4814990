#!/usr/bin/env bash
# Runs berth's fuzz targets (see docs/fuzzing.md).
#   scripts/fuzz.sh                 every target, 180 s each
#   scripts/fuzz.sh TARGET [SECS]   one target
#   scripts/fuzz.sh all SECS        every target, SECS each
# Needs the nightly toolchain; installs cargo-fuzz if it is missing. Runs niced, one job.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-all}
secs=${2:-180}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/h-fuzz}

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cd "$root/fuzz"
if [ "$target" = all ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
else
    targets=("$target")
fi

for t in "${targets[@]}"; do
    echo "== $t: ${secs}s"
    mkdir -p "corpus/$t"
    # Seeds that are checked in (small) are used alongside the generated corpus.
    seeds=()
    [ -d "seeds/$t" ] && seeds=("seeds/$t")
    nice -n 19 cargo +nightly fuzz run -O "$t" "corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=30 -len_control=20
done

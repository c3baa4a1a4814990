#!/usr/bin/env bash
# Runs the OCI distribution-spec v1.1.1 conformance suite (all four workflows) and the real-client smoke test
# (skopeo, crane, podman: ../shared/conformance/registry-clients.sh) against `berth registry serve`, on local
# disk, on S3 (a moto server), or both. Starts and stops everything itself; leaves no process or temp dir.
# Usage: scripts/conformance.sh [disk|s3|both]           (default: both; as root)
# Prints, per storage, the failing checks and two summary lines:
#   oci-conformance-disk: N passed, N failed, N skipped
#   registry-clients-disk: N passed, N failed, N skipped
# Exit status: 0 when every run completed (failed checks included), 1 when something could not run.
# Environment:
#   BERTH=PATH                  test this berth binary instead of building it (cargo build --release -p berth,
#                               into $CARGO_TARGET_DIR or target/)
#   CONFORMANCE_SERVER=distribution   test Debian's docker-registry (distribution 2.8) instead: the reference row
#   CONFORMANCE_REPORT=DIR      keep junit.xml, report.html and the logs of each run in DIR/<server>-<storage>/
#   CONFORMANCE_STRICT=1        also exit 1 when any check failed
#   OCI_*                       other suite settings pass through (e.g. OCI_AUTOMATIC_CROSSMOUNT=1, OCI_DEBUG=1)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
SHARED=${BERTH_SHARED:-$ROOT/../shared}/conformance
OCI_TEST=/opt/conformance/bin/oci-conformance.test
SERVER=${CONFORMANCE_SERVER:-berth}
BUCKET=berth-conformance

case ${1:-both} in
disk) MODES=(disk) ;; s3) MODES=(s3) ;; both) MODES=(disk s3) ;;
*) echo "usage: scripts/conformance.sh [disk|s3|both]" >&2; exit 2 ;;
esac
case $SERVER in berth | distribution) ;; *) echo "conformance: CONFORMANCE_SERVER must be berth or distribution" >&2; exit 2 ;; esac

say() { echo "conformance: $*" >&2; }
free_port() { bash "$ROOT/scripts/s3.sh" port; }

WORK=$(mktemp -d /tmp/berth-conformance.XXXXXX)
SERVER_PID="" SERVER_PORT="" S3_PORT=""
stop_servers() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  if [ "$SERVER" = distribution ] && [ -n "$SERVER_PORT" ]; then
    bash "$SHARED/docker-registry.sh" stop "$SERVER_PORT" >/dev/null 2>&1
    rm -rf "/opt/conformance/registry-$SERVER_PORT"
  fi
  [ -n "$S3_PORT" ] && bash "$ROOT/scripts/s3.sh" stop "$S3_PORT"
  SERVER_PID="" SERVER_PORT="" S3_PORT=""
}
cleanup() { stop_servers; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

bash "$ROOT/scripts/registry-deps.sh" || { say "scripts/registry-deps.sh failed"; exit 1; }
[ -x "$OCI_TEST" ] || { say "$OCI_TEST is missing after registry-deps.sh"; exit 1; }

if [ "$SERVER" = berth ] && [ -z "${BERTH:-}" ]; then
  target=${CARGO_TARGET_DIR:-target}
  case $target in /*) ;; *) target=$ROOT/$target ;; esac
  BERTH=$target/release/berth
  say "cargo build --release -p berth (into $target)"
  cargo build --release -p berth >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log" >&2; say "build failed"; exit 1; }
fi
if [ "$SERVER" = berth ]; then
  [ -x "$BERTH" ] || { say "no berth binary at $BERTH"; exit 1; }
  BERTH=$(cd "$(dirname "$BERTH")" && pwd)/$(basename "$BERTH")
fi

# Starts the registry for storage $1 with its files under $2; sets SERVER_PORT (and SERVER_PID, S3_PORT).
start_server() {
  local mode=$1 dir=$2
  SERVER_PORT=$(free_port)
  if [ "$mode" = s3 ]; then
    S3_PORT=$(free_port)
    bash "$ROOT/scripts/s3.sh" start "$S3_PORT" "$BUCKET" >/dev/null || { S3_PORT=""; say "moto did not start"; return 1; }
  fi
  if [ "$SERVER" = distribution ]; then
    local kind=fs
    [ "$mode" = s3 ] && kind=s3
    S3_PORT=$S3_PORT S3_BUCKET=$BUCKET bash "$SHARED/docker-registry.sh" start "$SERVER_PORT" "$kind" >/dev/null ||
      { say "docker-registry did not start"; return 1; }
    return 0
  fi
  local storage=$dir/storage
  [ "$mode" = s3 ] && storage=s3://$BUCKET/run-$$
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
    "$BERTH" registry serve --addr "127.0.0.1:$SERVER_PORT" --storage "$storage" \
    ${S3_PORT:+--s3-endpoint "http://127.0.0.1:$S3_PORT"} </dev/null >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
  local code
  for _ in $(seq 300); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$SERVER_PORT/v2/" 2>/dev/null)
    [ "$code" != 000 ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.2
  done
  say "berth registry serve did not answer on 127.0.0.1:$SERVER_PORT; its log:"
  tail -n 30 "$dir/server.log" >&2
  return 1
}

# Prints the FAIL lines of a log (ginkgo's summary or registry-clients'), indented.
show_failures() { sed -n "$1" "$2" | sed -e 's/^ */    /' -e 's/OCI Distribution Conformance Tests //' | cut -c1-200; }

STATUS=0 FAILED=0
for mode in "${MODES[@]}"; do
  dir=$WORK/$mode
  mkdir -p "$dir/report"
  say "$SERVER on $mode"
  if ! start_server "$mode" "$dir"; then
    STATUS=1
    stop_servers
    continue
  fi
  (cd "$dir/report" && env OCI_ROOT_URL="http://127.0.0.1:$SERVER_PORT" OCI_NAMESPACE=conformance/main \
    OCI_CROSSMOUNT_NAMESPACE=conformance/cross OCI_TEST_PULL=1 OCI_TEST_PUSH=1 OCI_TEST_CONTENT_DISCOVERY=1 \
    OCI_TEST_CONTENT_MANAGEMENT=1 OCI_HIDE_SKIPPED_WORKFLOWS=0 OCI_DELETE_MANIFEST_BEFORE_BLOBS=1 \
    OCI_REPORT_DIR="$dir/report" timeout 900 "$OCI_TEST" -ginkgo.no-color >"$dir/oci.log" 2>&1)
  # ginkgo's closing lines: "Ran 74 of 79 Specs in ..." and "FAIL! -- 62 Passed | 12 Failed | 0 Pending | 5 Skipped"
  counts=$(grep -Eo '[0-9]+ Passed \| [0-9]+ Failed \| [0-9]+ Pending \| [0-9]+ Skipped' "$dir/oci.log" | tail -n 1)
  if [ -n "$counts" ]; then
    read -r p _ _ f _ _ pe _ _ s _ <<<"$counts"
    show_failures '/^Summarizing/,/^Ran /{/\[FAIL\]/p}' "$dir/oci.log"
    echo "oci-conformance-$mode: $p passed, $f failed, $((s + pe)) skipped"
    [ "$f" -gt 0 ] && FAILED=1
  else
    say "the OCI conformance suite did not finish; last lines:"
    tail -n 20 "$dir/oci.log" >&2
    STATUS=1
  fi
  timeout 900 bash "$SHARED/registry-clients.sh" "127.0.0.1:$SERVER_PORT" </dev/null >"$dir/clients.log" 2>&1
  line=$(grep -E '^registry-clients: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped' "$dir/clients.log" | tail -n 1)
  if [ -n "$line" ]; then
    show_failures '/^FAIL /p' "$dir/clients.log"
    echo "${line/registry-clients:/registry-clients-$mode:}"
    grep -q ' 0 failed' <<<"$line" || FAILED=1
  else
    say "registry-clients.sh did not finish; last lines:"
    tail -n 20 "$dir/clients.log" >&2
    STATUS=1
  fi
  stop_servers
  if [ -n "${CONFORMANCE_REPORT:-}" ]; then
    keep=$CONFORMANCE_REPORT/$SERVER-$mode
    mkdir -p "$keep" && cp -r "$dir/report/." "$dir"/*.log "$keep/" && say "reports kept in $keep"
  fi
done
[ "${CONFORMANCE_STRICT:-0}" = 1 ] && [ "$FAILED" = 1 ] && STATUS=1
exit "$STATUS"

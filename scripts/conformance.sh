#!/usr/bin/env bash
# Runs the OCI distribution-spec v1.1.1 conformance suite and the real-client smoke test (skopeo, crane,
# podman: ../shared/conformance/registry-clients.sh) against `berth registry serve`, on local disk, on S3 (a
# moto server), or both. Starts and stops everything itself; leaves no process or temp dir behind.
#
# The suite's 79 specs include branches that exclude each other within one run (see docs/conformance.md),
# so for berth it runs four times per storage, each against a fresh registry configured as an operator might:
#   from  [api] cross_mount = "from" (the default); all four workflows; OCI_AUTOMATIC_CROSSMOUNT=0
#   off   [api] cross_mount = "off" (repository isolation: a mount with from answers 202); all four workflows
#   auto  [api] cross_mount = "auto" (mount without from where every repository is readable anyway);
#         all four workflows; OCI_AUTOMATIC_CROSSMOUNT=1
#   env   [api] cross_mount = "from"; pull and content discovery only, against an image pushed beforehand with
#         curl and named by OCI_TAG_NAME, OCI_MANIFEST_DIGEST, OCI_BLOB_DIGEST and OCI_TAG_LIST; three
#         referrers specs are left out (-ginkgo.skip): they expect referrers that only the suite's own setup
#         pushes, with content it generates at random, and these variables switch that setup off
# and the real clients once (in the "from" run). CONFORMANCE_SERVER=distribution runs the reference registry
# once per storage with the "from" settings.
#
# Usage: scripts/conformance.sh [disk|s3|both]           (default: both; as root)
# Prints the failing specs of each run, then per run and storage
#   oci-conformance-disk-from: P passed, F failed, S skipped
#   registry-clients-disk: P passed, F failed, S skipped
# and per storage the union over its runs, each of the 79 specs keyed by its full name and occurrence:
#   oci-conformance-disk: union N of 79 passed, F failed in some run
# Exit status: 1 when something could not run; with CONFORMANCE_STRICT=1 also when a spec failed in any run,
# a union is below 79 or a real-client check failed; else 0.
# Environment:
#   BERTH=PATH                  test this berth binary instead of building it (cargo build --release -p berth,
#                               into $CARGO_TARGET_DIR or target/)
#   CONFORMANCE_SERVER=distribution   test Debian's docker-registry (distribution 2.8) instead: the reference row
#   CONFORMANCE_RUNS="from off auto env"   which berth runs to do (default: all four)
#   CONFORMANCE_REPORT=DIR      keep junit.xml, report.html and the logs of each run in
#                               DIR/<server>-<storage>-<run>/
#   CONFORMANCE_STRICT=1        exit 1 on any failed spec, a union below 79 or a failed client check
#   OCI_DEBUG=1                 passes through (dumps every HTTP exchange into the logs)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
SHARED=${BERTH_SHARED:-$ROOT/../shared}/conformance
OCI_TEST=/opt/conformance/bin/oci-conformance.test
SERVER=${CONFORMANCE_SERVER:-berth}
BUCKET=berth-conformance
TOTAL_SPECS=79
NAMESPACE=conformance/main

case ${1:-both} in
disk) MODES=(disk) ;; s3) MODES=(s3) ;; both) MODES=(disk s3) ;;
*) echo "usage: scripts/conformance.sh [disk|s3|both]" >&2; exit 2 ;;
esac
case $SERVER in
berth) read -r -a RUNS <<<"${CONFORMANCE_RUNS:-from off auto env}" ;;
distribution) RUNS=(from) ;;
*) echo "conformance: CONFORMANCE_SERVER must be berth or distribution" >&2; exit 2 ;;
esac
for run in "${RUNS[@]}"; do
  case $run in from | off | auto | env) ;; *) echo "conformance: unknown run '$run' (from, off, auto, env)" >&2; exit 2 ;; esac
done

# Each run sets the suite's variables itself; stray ones from the caller would change what it tests.
for v in $(compgen -e | grep '^OCI_'); do [ "$v" = OCI_DEBUG ] || unset "$v"; done

say() { echo "conformance: $*" >&2; }
free_port() { bash "$ROOT/scripts/s3.sh" port; }

WORK=$(mktemp -d /tmp/berth-conformance.XXXXXX)
SERVER_PID="" SERVER_PORT="" S3_PORT=""
# Stops the registry of the current run (berth or distribution).
stop_registry() {
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
  SERVER_PID="" SERVER_PORT=""
}
stop_s3() {
  [ -n "$S3_PORT" ] && bash "$ROOT/scripts/s3.sh" stop "$S3_PORT"
  S3_PORT=""
}
cleanup() { stop_registry; stop_s3; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

bash "$ROOT/scripts/registry-deps.sh" --conformance || { say "scripts/registry-deps.sh failed"; exit 1; }
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

# Starts the registry for storage $1 with its files under $2, configured for run $3; sets SERVER_PORT and
# SERVER_PID. On S3 each run gets its own prefix in the storage's moto server (S3_PORT).
start_registry() {
  local mode=$1 dir=$2 run=$3
  SERVER_PORT=$(free_port)
  if [ "$SERVER" = distribution ]; then
    local kind=fs
    [ "$mode" = s3 ] && kind=s3
    S3_PORT=$S3_PORT S3_BUCKET=$BUCKET bash "$SHARED/docker-registry.sh" start "$SERVER_PORT" "$kind" >/dev/null ||
      { say "docker-registry did not start"; return 1; }
    return 0
  fi
  local storage=$dir/storage cross_mount=from
  [ "$mode" = s3 ] && storage=s3://$BUCKET/run-$$-$run
  case $run in off) cross_mount=off ;; auto) cross_mount=auto ;; esac
  printf '[api]\ncross_mount = "%s"\n' "$cross_mount" >"$dir/registry.toml"
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
    "$BERTH" registry serve --config "$dir/registry.toml" --addr "127.0.0.1:$SERVER_PORT" --storage "$storage" \
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

# Pushes blob file $2 to repository $1 of the registry at $BASE (POST, then PUT ?digest= with the body);
# prints its digest.
push_blob() {
  local repo=$1 file=$2 digest loc sep
  digest=sha256:$(sha256sum "$file" | cut -d' ' -f1)
  loc=$(curl -fsS -o /dev/null -D - -X POST "$BASE/v2/$repo/blobs/uploads/" | tr -d '\r' |
    sed -n 's/^[Ll]ocation: *//p') || return 1
  [ -n "$loc" ] || return 1
  case $loc in /*) loc=$BASE$loc ;; esac
  case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
  curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$file" \
    "$loc${sep}digest=$digest" || return 1
  echo "$digest"
}

# For the "env" run: pushes one image (config, layer, manifest) to $NAMESPACE under tags seed0..seed3 and
# prints the suite's variables naming it.
seed_image() {
  local dir=$1 config layer manifest m t
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"author":"seed-%s"}' \
    "$$" >"$dir/seed-config.json"
  head -c 1024 /dev/urandom >"$dir/seed-layer"
  config=$(push_blob "$NAMESPACE" "$dir/seed-config.json") || return 1
  layer=$(push_blob "$NAMESPACE" "$dir/seed-layer") || return 1
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}' \
    "$config" "$(stat -c %s "$dir/seed-config.json")" "$layer" 1024 >"$dir/seed-manifest.json"
  manifest=sha256:$(sha256sum "$dir/seed-manifest.json" | cut -d' ' -f1)
  for t in seed0 seed1 seed2 seed3; do
    curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
      --data-binary "@$dir/seed-manifest.json" "$BASE/v2/$NAMESPACE/manifests/$t" || return 1
  done
  m=$(curl -fsS -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "$BASE/v2/$NAMESPACE/manifests/$manifest") || return 1
  [ "$m" = 200 ] || return 1
  echo "OCI_TAG_NAME=seed0 OCI_MANIFEST_DIGEST=$manifest OCI_BLOB_DIGEST=$config OCI_TAG_LIST=seed0,seed1,seed2,seed3"
}

# Counts of one junit report: "passed failed skipped total", specs only.
junit_counts() {
  python3 - "$1" <<'PY'
import sys, xml.etree.ElementTree as ET
p = f = s = 0
for tc in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    # Specs only: the report also lists the suite's own reporters ("html custom reporter").
    if not tc.get("name", "").startswith("OCI Distribution Conformance Tests "):
        continue
    status = tc.get("status", "")
    if status in ("skipped", "pending"):
        s += 1
    elif status == "passed" and tc.find("failure") is None and tc.find("error") is None:
        p += 1
    else:
        f += 1
print(p, f, s, p + f + s)
PY
}

# The union over junit reports: "passed-in-some-run failed-in-some-run specs", each spec keyed by its full
# name and how often that name occurred before it in the same report (two setup specs share a name).
junit_union() {
  python3 - "$@" <<'PY'
import sys, xml.etree.ElementTree as ET
passed, failed, seen = set(), set(), set()
for path in sys.argv[1:]:
    count = {}
    for tc in ET.parse(path).getroot().iter("testcase"):
        name = tc.get("name", "")
        if not name.startswith("OCI Distribution Conformance Tests "):
            continue
        count[name] = count.get(name, 0) + 1
        key = (name, count[name])
        seen.add(key)
        status = tc.get("status", "")
        if status in ("skipped", "pending"):
            continue
        if status == "passed" and tc.find("failure") is None and tc.find("error") is None:
            passed.add(key)
        else:
            failed.add(key)
print(len(passed), len(failed), len(seen))
for name, n in sorted(seen - passed):
    print("never passed: " + name + (" (#%d)" % n if n > 1 else ""), file=sys.stderr)
PY
}

# Prints the FAIL lines of a log (ginkgo's summary or registry-clients'), indented.
show_failures() { sed -n "$1" "$2" | sed -e 's/^ */    /' -e 's/OCI Distribution Conformance Tests //' | cut -c1-200; }

STATUS=0 FAILED=0
for mode in "${MODES[@]}"; do
  say "$SERVER on $mode: runs ${RUNS[*]}"
  if [ "$mode" = s3 ]; then
    S3_PORT=$(free_port)
    bash "$ROOT/scripts/s3.sh" start "$S3_PORT" "$BUCKET" >/dev/null || { S3_PORT=""; say "moto did not start"; STATUS=1; continue; }
  fi
  reports=()
  for run in "${RUNS[@]}"; do
    dir=$WORK/$mode-$run
    mkdir -p "$dir/report"
    label=$mode-$run
    if ! start_registry "$mode" "$dir" "$run"; then
      STATUS=1
      stop_registry
      continue
    fi
    BASE=http://127.0.0.1:$SERVER_PORT
    suite_env=(OCI_TEST_PULL=1 OCI_TEST_PUSH=1 OCI_TEST_CONTENT_DISCOVERY=1 OCI_TEST_CONTENT_MANAGEMENT=1
      OCI_AUTOMATIC_CROSSMOUNT=0)
    suite_args=()
    case $run in
    auto) suite_env=(OCI_TEST_PULL=1 OCI_TEST_PUSH=1 OCI_TEST_CONTENT_DISCOVERY=1 OCI_TEST_CONTENT_MANAGEMENT=1
      OCI_AUTOMATIC_CROSSMOUNT=1) ;;
    env)
      if ! seeded=$(seed_image "$dir"); then
        say "could not push the seed image for the env run"
        STATUS=1
        stop_registry
        continue
      fi
      read -r -a seed_vars <<<"$seeded"
      suite_env=(OCI_TEST_PULL=1 OCI_TEST_CONTENT_DISCOVERY=1 "${seed_vars[@]}")
      suite_args=(-ginkgo.skip 'listing references\) GET request to (existing|missing)')
      ;;
    esac
    (cd "$dir/report" && env OCI_ROOT_URL="$BASE" OCI_NAMESPACE=$NAMESPACE \
      OCI_CROSSMOUNT_NAMESPACE=conformance/cross OCI_HIDE_SKIPPED_WORKFLOWS=0 OCI_DELETE_MANIFEST_BEFORE_BLOBS=1 \
      OCI_REPORT_DIR="$dir/report" "${suite_env[@]}" timeout 900 "$OCI_TEST" -ginkgo.no-color "${suite_args[@]}" \
      >"$dir/oci.log" 2>&1)
    if [ -s "$dir/report/junit.xml" ] && read -r p f s n < <(junit_counts "$dir/report/junit.xml") && [ "$n" = "$TOTAL_SPECS" ]; then
      show_failures '/^Summarizing/,/^Ran /{/\[FAIL\]/p}' "$dir/oci.log"
      echo "oci-conformance-$label: $p passed, $f failed, $s skipped"
      [ "$f" -gt 0 ] && FAILED=1
      reports+=("$dir/report/junit.xml")
    else
      say "the OCI conformance suite did not finish with a report of $TOTAL_SPECS specs ($label); last lines:"
      tail -n 20 "$dir/oci.log" >&2
      STATUS=1
    fi
    if [ "$run" = from ]; then
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
    fi
    stop_registry
    if [ -n "${CONFORMANCE_REPORT:-}" ]; then
      keep=$CONFORMANCE_REPORT/$SERVER-$mode-$run
      mkdir -p "$keep" && cp -r "$dir/report/." "$dir"/*.log "$keep/" && say "reports kept in $keep"
    fi
  done
  stop_s3
  if [ "${#reports[@]}" -gt 0 ]; then
    read -r up uf _ < <(junit_union "${reports[@]}" 2>"$WORK/union-$mode.txt")
    sed 's/^/    /' "$WORK/union-$mode.txt"
    echo "oci-conformance-$mode: union $up of $TOTAL_SPECS passed, $uf failed in some run"
    [ "$uf" -gt 0 ] && FAILED=1
    [ "$up" -lt "$TOTAL_SPECS" ] && FAILED=1
  fi
done
[ "${CONFORMANCE_STRICT:-0}" = 1 ] && [ "$FAILED" = 1 ] && STATUS=1
exit "$STATUS"

#!/usr/bin/env bash
# An S3-protocol server (moto) on 127.0.0.1 for the registry's tests, through ../shared/conformance/s3-moto.sh.
# Usage: scripts/s3.sh start PORT [BUCKET...]   prints only the server's pid once it answers and the buckets exist
#        scripts/s3.sh stop PORT                 stops it, waits until it is gone, removes its pid and log files
#        scripts/s3.sh port                      prints a free TCP port on 127.0.0.1
# Credentials: any (tests use testing/testing), region us-east-1, path-style, plain HTTP. Data lives in memory only.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MOTO=${BERTH_SHARED:-$ROOT/../shared}/conformance/s3-moto.sh
C=/opt/conformance                  # where s3-moto.sh keeps its venv, pid and log files
V=${S3_VENV:-$C/s3venv}

die() { echo "s3.sh: $*" >&2; exit 1; }
answers() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$1/" 2>/dev/null; }
# A pid file holds the moto pid of a port; a stale file (process gone or not moto) counts as none.
pid_of() {
  local p
  p=$(cat "$C/moto-$1.pid" 2>/dev/null) || return 1
  [[ $p =~ ^[0-9]+$ ]] && grep -q moto_server "/proc/$p/cmdline" 2>/dev/null && echo "$p"
}

cmd=${1:-}; shift || true
case $cmd in
port)
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' ;;
start)
  port=${1:?usage: s3.sh start PORT [BUCKET...]}; shift
  [[ $port =~ ^[0-9]+$ ]] || die "bad port '$port'"
  [ -f "$MOTO" ] || die "$MOTO is missing (the shared conformance scripts belong beside the repository)"
  answers "$port" && die "127.0.0.1:$port is already in use"
  mkdir -p "$C"
  # The first start installs moto into the venv; parallel tests must not install it twice at once.
  exec 9>"$C/.s3venv.lock"
  [ -x "$V/bin/moto_server" ] || flock 9
  # Buckets are made here rather than by s3-moto.sh, after our own (longer) readiness wait: on a busy
  # 2-core machine moto can take longer to come up than s3-moto.sh waits, and its bucket step would then fail.
  if ! out=$(S3_VENV=$V bash "$MOTO" start "$port" 2>&1 9>&-); then
    bash "$MOTO" stop "$port" >/dev/null 2>&1 || true
    die "s3-moto.sh start $port failed: $(tail -c 600 <<<"$out")"
  fi
  exec 9>&-
  pid=$(tail -n 1 <<<"$out")
  [[ $pid =~ ^[0-9]+$ ]] || die "s3-moto.sh printed no pid: $(tail -c 600 <<<"$out")"
  for _ in $(seq 300); do answers "$port" && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if ! answers "$port"; then
    log=$(tail -c 800 "$C/moto-$port.log" 2>/dev/null || true)
    "$0" stop "$port"
    die "moto did not answer on 127.0.0.1:$port: $log"
  fi
  for b in "$@"; do
    # moto does not check signatures, so a plain CreateBucket is enough (and much faster than the aws CLI).
    curl -fsS -o /dev/null --max-time 10 -X PUT "http://127.0.0.1:$port/$b" ||
      { "$0" stop "$port"; die "could not create bucket '$b' on 127.0.0.1:$port"; }
  done
  echo "$pid" ;;
stop)
  port=${1:?usage: s3.sh stop PORT}
  pid=$(pid_of "$port" || true)
  [ -f "$MOTO" ] && bash "$MOTO" stop "$port" >/dev/null 2>&1 || true
  if [ -n "$pid" ]; then
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$C/moto-$port.pid" "$C/moto-$port.log" ;;
*)
  die "usage: s3.sh start PORT [BUCKET...] | stop PORT | port" ;;
esac

#!/usr/bin/env bash
# Installs what the registry's tests and conformance runs need, as root on Debian bookworm. Idempotent and
# quiet (prints only on failure); returns at once when everything is already there. Installs:
#  - Debian: chromium (headless page tests), skopeo, podman, docker-registry (distribution 2.8, the reference
#    registry of the pull/push tests), jq, curl, git, python3-venv;
#  - Go 1.22 and the Go libraries the OCI conformance suite and crane import, from Debian (bookworm-backports
#    where bookworm is too old; the source is added when missing). No Go module proxy is reachable here, so
#    Go builds run in GOPATH mode over /usr/share/gocode;
#  - the moto S3 server venv (/opt/conformance/s3venv, by starting ../shared/conformance/s3-moto.sh once);
#  - crane (/opt/conformance/bin/crane, by ../shared/conformance/build-crane.sh);
#  - with --conformance only (scripts/conformance.sh; the test suite does not need it): the OCI
#    distribution-spec v1.1.1 conformance suite as /opt/conformance/bin/oci-conformance.test.
#    Its source (and its HTTP client, bloodorangeio/reggie v0.6.1, which Debian lacks) is in no package
#    registry: it is taken from /opt/conformance/distribution-spec if present, else from bare git mirrors
#    named OWNER+NAME/repo under $OCI_SOURCE_MIRROR, else ../.mirror beside the repository, else /work/.mirror
#    (where the session tools keep them; CI's clone lives elsewhere). It is kept in /opt/conformance after.
set -euo pipefail
SUITE=0
[ "${1:-}" = --conformance ] && SUITE=1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${BERTH_SHARED:-$ROOT/../shared}/conformance
C=/opt/conformance
OCI_TEST=$C/bin/oci-conformance.test
CRANE=${CRANE:-$C/bin/crane}
V=${S3_VENV:-$C/s3venv}
MIRRORS=("$ROOT/../.mirror" /work/.mirror)
[ -n "${OCI_SOURCE_MIRROR:-}" ] && MIRRORS=("$OCI_SOURCE_MIRROR" "${MIRRORS[@]}")
DS_TAG=v1.1.1 DS_COMMIT=a139cc423184af6078077b9b7ee336eddbd03f8f
REGGIE_TAG=v0.6.1 REGGIE_COMMIT=a277a9357ad144a16a6dc34ea422b6f94c7c62b1
DEB_PKGS=(chromium skopeo podman docker-registry jq curl git python3-venv)
# bookworm's gomega (1.10) is too old for ginkgo v2; the rest of these exist in bookworm itself. crane's own
# sources (golang-github-google-go-containerregistry-dev) are installed by build-crane.sh, its way.
BPO_PKGS=(golang-1.22-go golang-github-onsi-ginkgo-v2-dev golang-gomega-dev)
GO_PKGS=(golang-github-google-uuid-dev golang-github-opencontainers-go-digest-dev golang-github-go-resty-resty-dev
  golang-github-mitchellh-mapstructure-dev golang-github-asaskevich-govalidator-dev golang-golang-x-net-dev)

missing_pkgs() {
  local want=("$@") have
  # dpkg-query fails when any name was never installed; the names it does know still come out.
  have=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${want[@]}" 2>/dev/null | awk '$2 == "installed" { print $1 }' || true)
  for p in "${want[@]}"; do grep -qx "$p" <<<"$have" || echo "$p"; done
}

mapfile -t missing < <(missing_pkgs "${DEB_PKGS[@]}" "${BPO_PKGS[@]}" "${GO_PKGS[@]}")
if [ ${#missing[@]} -eq 0 ] && [ -x "$V/bin/moto_server" ] && [ -x "$CRANE" ] &&
  { [ $SUITE = 0 ] || [ -x "$OCI_TEST" ]; }; then
  exit 0
fi

[ "$(id -u)" = 0 ] || { echo "registry-deps: must run as root" >&2; exit 1; }
mkdir -p "$C/bin"
exec 8>"$C/.registry-deps.lock"
flock 8 # two test runs starting at once must not run apt or go side by side
LOG=$C/registry-deps.log
: >"$LOG"
fail() { echo "registry-deps: $*" >&2; [ -s "$LOG" ] && { echo "--- last lines of $LOG:" >&2; tail -n 30 "$LOG" >&2; }; exit 1; }
run() { local what=$1; shift; "$@" >>"$LOG" 2>&1 || fail "$what failed"; }

# bookworm-backports, on the same mirror as the machine's bookworm source.
add_backports() {
  grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
  local uri
  uri=$(awk 'BEGIN { RS = ""; FS = "\n" }
    /(^|\n)Suites:[^\n]*bookworm([ \t]|$)/ { for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); split($i, u, /[ \t]+/); print u[1]; exit } }' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
  [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
  [ -n "$uri" ] || fail "found no bookworm apt source to take the backports mirror from"
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$uri" >/etc/apt/sources.list.d/bookworm-backports.sources
}

if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  add_backports
  run "apt-get update" apt-get update -qq
  # Backports first, so that nothing below pulls in bookworm's older gomega before ginkgo v2 needs the newer.
  mapfile -t bpo < <(missing_pkgs "${BPO_PKGS[@]}")
  if [ ${#bpo[@]} -gt 0 ]; then
    # pkg/release takes only what needs it from backports; -t would move unrelated dependencies (systemd…) too.
    apt-get install -y -qq "${bpo[@]/%//bookworm-backports}" >>"$LOG" 2>&1 ||
      run "apt-get install -t bookworm-backports ${bpo[*]}" apt-get install -y -qq -t bookworm-backports "${bpo[@]}"
  fi
  mapfile -t deb < <(missing_pkgs "${DEB_PKGS[@]}" "${GO_PKGS[@]}")
  [ ${#deb[@]} -eq 0 ] || run "apt-get install ${deb[*]}" apt-get install -y -qq "${deb[@]}"
fi
[ -x /usr/lib/go-1.22/bin/go ] || fail "golang-1.22-go is installed but /usr/lib/go-1.22/bin/go is missing"

if [ ! -x "$V/bin/moto_server" ]; then
  # s3-moto.sh installs its venv on first start; start it once on a free port and stop it again.
  port=$(bash "$ROOT/scripts/s3.sh" port)
  S3_VENV=$V run "moto venv install (s3-moto.sh start)" bash "$ROOT/scripts/s3.sh" start "$port"
  bash "$ROOT/scripts/s3.sh" stop "$port"
  [ -x "$V/bin/moto_server" ] || fail "moto was not installed into $V"
fi

[ -x "$CRANE" ] || run "build-crane.sh" bash "$SHARED/build-crane.sh" "$CRANE"

# Exports TAG of mirror OWNER+NAME into DEST after checking it is COMMIT.
export_tag() {
  local name=$1 tag=$2 commit=$3 dest=$4 git_dir="" m got tmp
  for m in "${MIRRORS[@]}"; do [ -d "$m/$name/repo" ] && { git_dir=$m/$name/repo; break; }; done
  [ -n "$git_dir" ] || fail "no source for $name $tag: put it in $dest, or a bare git mirror in one of ${MIRRORS[*]/%//$name/repo}"
  got=$(git --git-dir="$git_dir" rev-parse -q --verify "$tag^{commit}" 2>/dev/null) || fail "$git_dir has no tag $tag"
  [ "$got" = "$commit" ] || fail "$git_dir: tag $tag is $got, expected $commit"
  mkdir -p "$(dirname "$dest")"
  tmp=$(mktemp -d "$dest.tmp.XXXXXX") && chmod 755 "$tmp"
  git --git-dir="$git_dir" archive "$commit" | tar -x -C "$tmp" || { rm -rf "$tmp"; fail "git archive $name $tag"; }
  echo "$commit" >"$tmp/.source-commit"
  rm -rf "$dest"
  mv "$tmp" "$dest"
}

if [ $SUITE = 1 ] && [ ! -x "$OCI_TEST" ]; then
  src=$C/distribution-spec
  gopath=$C/gopath
  reggie=$gopath/src/github.com/bloodorangeio/reggie
  pkg=$gopath/src/github.com/opencontainers/distribution-spec/conformance
  if [ ! -f "$src/conformance/go.mod" ] || { [ -f "$src/.source-commit" ] && [ "$(cat "$src/.source-commit")" != "$DS_COMMIT" ]; }; then
    export_tag opencontainers+distribution-spec "$DS_TAG" "$DS_COMMIT" "$src"
  fi
  [ -f "$reggie/client.go" ] || export_tag bloodorangeio+reggie "$REGGIE_TAG" "$REGGIE_COMMIT" "$reggie"
  rm -rf "$pkg" && mkdir -p "$(dirname "$pkg")" && cp -a "$src/conformance" "$pkg"
  # GOPATH mode: Debian's -dev packages under /usr/share/gocode, plus reggie; Go's minimal module
  # compatibility maps the /v2 import paths (ginkgo/v2, resty/v2) onto them.
  (cd "$pkg" && run "go test -c (OCI conformance suite)" env PATH="/usr/lib/go-1.22/bin:$PATH" GO111MODULE=off \
    GOPATH="$gopath:/usr/share/gocode" GOCACHE=$C/gocache GOPROXY=off GOFLAGS= CGO_ENABLED=0 \
    go test -c -o "$OCI_TEST.tmp" -ldflags "-X github.com/opencontainers/distribution-spec/conformance.Version=$DS_TAG" .)
  mv -f "$OCI_TEST.tmp" "$OCI_TEST"
fi

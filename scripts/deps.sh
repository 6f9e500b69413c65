#!/usr/bin/env bash
# make deps: install the external tools the tests and `make conformance`
# use, at the versions they need, on Debian 12 (bookworm) or a later Debian.
# Idempotent: it reports what it finds and installs only what is missing or
# too old (apt-get as root; versitygw and local-kms with go install).
#
#   scripts/deps.sh           check, then install what is missing
#   scripts/deps.sh --check   check only; exit 1 if something is missing
#
# The least versions here are the ones internal/testutil (NeedTool) checks;
# a test there keeps the two in step.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

# osslsigncode: -TSA-certs/-TSA-key/-TSA-time came in 2.7 and -ignore-cdp in
# 2.8 (upstream NEWS.md); bookworm ships 2.5, bookworm-backports 2.9.
OSSLSIGNCODE_MIN=2.8
# versitygw: the version internal/s3test runs (VersityVersion there).
VERSITYGW_VERSION=$(sed -n 's/^const VersityVersion = "\(.*\)"$/\1/p' internal/s3test/s3test.go)
if [ -z "$VERSITYGW_VERSION" ]; then
  echo "make deps: cannot read VersityVersion from internal/s3test/s3test.go" >&2
  exit 2
fi
# local-kms: the KMS-compatible server internal/kmstest runs (Version there;
# a pseudo-version, the project tags no Go module releases).
LOCALKMS_VERSION=$(sed -n 's/^const Version = "\(.*\)"$/\1/p' internal/kmstest/kmstest.go)
if [ -z "$LOCALKMS_VERSION" ]; then
  echo "make deps: cannot read Version from internal/kmstest/kmstest.go" >&2
  exit 2
fi
BACKPORTS_SOURCE=/etc/apt/sources.list.d/bookworm-backports.sources

check_only=
case "${1:-}" in
  --check) check_only=1 ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

apt_pkgs=()       # Debian packages to install from the release's own suites
backports_pkgs=() # from bookworm-backports (osslsigncode)
problems=()       # what is missing or too old, for the summary

found() { printf '  %-14s %-10s %s\n' "$1" "$2" "$3"; }
lacking() {
  printf '  %-14s %-10s %s\n' "$1" "MISSING" "$2"
  problems+=("$1: $2")
}

# version_of OUTPUT: the first dotted number in a tool's version output.
version_of() { grep -oE '[0-9]+(\.[0-9]+)+' <<<"$1" | head -n 1 || true; }
# version_ge HAVE MIN
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]; }

codename=
if [ -r /etc/os-release ]; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
fi

# tool NAME PACKAGE VERSION-ARGS...: a tool apt installs, any version.
tool() {
  local name=$1 pkg=$2 path v
  shift 2
  if path=$(command -v "$name" 2>/dev/null) || { [ -x "/usr/sbin/$name" ] && path=/usr/sbin/$name; }; then
    v=
    if [ $# -gt 0 ]; then v=$(version_of "$("$path" "$@" 2>&1 || true)"); fi
    found "$name" "${v:-ok}" "$path"
  else
    lacking "$name" "not installed (Debian package $pkg)"
    apt_pkgs+=("$pkg")
  fi
}

check() {
  apt_pkgs=() backports_pkgs=() problems=() need_versitygw= need_localkms=
  echo "make deps: external tools for the tests and make conformance"
  tool openssl openssl version

  local path v
  if path=$(command -v osslsigncode 2>/dev/null); then
    v=$(version_of "$(osslsigncode --version 2>&1 || true)")
    if [ -n "$v" ] && version_ge "$v" "$OSSLSIGNCODE_MIN"; then
      found osslsigncode "$v" "$path"
    else
      printf '  %-14s %-10s %s\n' osslsigncode "${v:-?}" "$path: TOO OLD, need >= $OSSLSIGNCODE_MIN (-TSA-certs, -ignore-cdp)"
      problems+=("osslsigncode: ${v:-unknown version} at $path is too old, need >= $OSSLSIGNCODE_MIN")
      want_osslsigncode
    fi
  else
    lacking osslsigncode "not installed (need >= $OSSLSIGNCODE_MIN)"
    want_osslsigncode
  fi

  tool wixl wixl --version
  # The MSI's tests read its tables (msiinfo tables/export).
  tool msiinfo msitools --version
  # The completion scripts' tests run them in each shell.
  tool zsh zsh --version
  tool fish fish --version
  tool bsdiff bsdiff
  tool wrk wrk --version
  tool nginx nginx-light -v
  tool faketime faketime --version
  # The dashboard's browser tests (fleet/web, chromedp): headless Chromium.
  tool chromium chromium --version

  # PostgreSQL for the fleet store's suite (internal/pgtest runs initdb and
  # pg_ctl from here as the postgres user in a temporary directory).
  local pgbin
  pgbin=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$pgbin" ]; then
    found postgresql "$(basename "$(dirname "$(dirname "$pgbin")")")" "$(dirname "$pgbin")"
  else
    lacking postgresql "not installed (Debian package postgresql)"
    apt_pkgs+=(postgresql)
  fi

  if [ -d /usr/lib/python3/dist-packages/_pytest ]; then
    found python3-pytest "$(version_of "$(dpkg-query -W -f '${Version}' python3-pytest 2>/dev/null || true)")" /usr/lib/python3/dist-packages/pytest
  else
    lacking python3-pytest "not installed (Debian package python3-pytest)"
    apt_pkgs+=(python3-pytest)
  fi
  # make conformance runs the first python3 on PATH, or Debian's
  # (.ci/run puts it first when the other lacks these modules).
  local py mods='import sys, cryptography, requests, urllib3; print(sys.executable, "cryptography", cryptography.__version__, "requests", requests.__version__, "urllib3", urllib3.__version__)'
  local out pyfound=
  for py in python3 /usr/bin/python3; do
    if out=$("$py" -c "$mods" 2>/dev/null); then
      found python3 "$(version_of "$("$py" --version 2>&1)")" "$out"
      pyfound=1
      break
    fi
  done
  if [ -z "$pyfound" ]; then
    lacking python3 "no python3 imports cryptography, requests and urllib3 (Debian packages python3-cryptography python3-requests python3-urllib3)"
    apt_pkgs+=(python3 python3-cryptography python3-requests python3-urllib3)
  fi

  local gobin vgw=
  path=
  if command -v go >/dev/null 2>&1; then
    gobin=$(go env GOPATH)/bin
    if path=$(command -v versitygw 2>/dev/null) || { [ -x "$gobin/versitygw" ] && path=$gobin/versitygw; }; then
      vgw=$(go version -m "$path" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/versity/versitygw" {print $3}')
    fi
    if [ -n "$vgw" ] && version_ge "${vgw#v}" "${VERSITYGW_VERSION#v}"; then
      found versitygw "$vgw" "$path"
    elif [ -n "${path:-}" ]; then
      printf '  %-14s %-10s %s\n' versitygw "${vgw:-?}" "$path: TOO OLD, need >= $VERSITYGW_VERSION"
      problems+=("versitygw: ${vgw:-unknown version} at $path, need >= $VERSITYGW_VERSION")
      need_versitygw=1
    else
      lacking versitygw "not installed (go install github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION)"
      need_versitygw=1
    fi

    local lkms=
    path=
    if path=$(command -v local-kms 2>/dev/null) || { [ -x "$gobin/local-kms" ] && path=$gobin/local-kms; }; then
      lkms=$(go version -m "$path" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/nsmithuk/local-kms" {print $3}')
    fi
    if [ -n "$lkms" ] && version_ge "${lkms#v}" "${LOCALKMS_VERSION#v}"; then
      found local-kms "$lkms" "$path"
    elif [ -n "${path:-}" ]; then
      printf '  %-14s %-10s %s\n' local-kms "${lkms:-?}" "$path: TOO OLD, need >= $LOCALKMS_VERSION"
      problems+=("local-kms: ${lkms:-unknown version} at $path, need >= $LOCALKMS_VERSION")
      need_localkms=1
    else
      lacking local-kms "not installed (go install github.com/nsmithuk/local-kms@$LOCALKMS_VERSION)"
      need_localkms=1
    fi
  else
    lacking go "not on PATH: install Go 1.26 (go.dev/dl) first"
  fi
}

want_osslsigncode() {
  case "$codename" in
    bookworm) backports_pkgs+=(osslsigncode) ;;
    *) apt_pkgs+=(osslsigncode) ;;
  esac
}

# add_backports: a deb822 source for bookworm-backports, unless one exists.
add_backports() {
  if grep -qsE '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; then
    echo "make deps: bookworm-backports is already an apt source"
    return
  fi
  echo "make deps: adding $BACKPORTS_SOURCE (osslsigncode >= $OSSLSIGNCODE_MIN is only in bookworm-backports)"
  cat >"$BACKPORTS_SOURCE" <<'EOF'
# Added by bcupdate's make deps (scripts/deps.sh) for osslsigncode >= 2.8.
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

check
if [ ${#problems[@]} -eq 0 ]; then
  echo "make deps: everything is present; nothing to install"
  exit 0
fi
if [ -n "$check_only" ]; then
  printf 'make deps: missing or too old:\n' >&2
  printf '  %s\n' "${problems[@]}" >&2
  echo "make deps: run make deps (as root for apt-get) to install them" >&2
  exit 1
fi

if [ ${#apt_pkgs[@]} -gt 0 ] || [ ${#backports_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "make deps: not running as root, so apt-get cannot install what is missing. As root, run:" >&2
    [ ${#backports_pkgs[@]} -gt 0 ] && echo "  sudo make deps    # adds bookworm-backports for ${backports_pkgs[*]}" >&2
    [ ${#backports_pkgs[@]} -eq 0 ] && echo "  sudo make deps" >&2
    echo "or by hand:" >&2
    [ ${#backports_pkgs[@]} -gt 0 ] && echo "  (a deb822 source for bookworm-backports in $BACKPORTS_SOURCE)" >&2
    echo "  sudo apt-get update" >&2
    [ ${#apt_pkgs[@]} -gt 0 ] && echo "  sudo apt-get install -y ${apt_pkgs[*]}" >&2
    [ ${#backports_pkgs[@]} -gt 0 ] && echo "  sudo apt-get install -y -t bookworm-backports ${backports_pkgs[*]}" >&2
    exit 1
  fi
  [ ${#backports_pkgs[@]} -gt 0 ] && add_backports
  echo "make deps: apt-get update"
  apt-get update
  if [ ${#apt_pkgs[@]} -gt 0 ]; then
    echo "make deps: apt-get install -y ${apt_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${apt_pkgs[@]}"
  fi
  if [ ${#backports_pkgs[@]} -gt 0 ]; then
    echo "make deps: apt-get install -y -t bookworm-backports ${backports_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -t bookworm-backports "${backports_pkgs[@]}"
  fi
fi
if [ -n "$need_versitygw" ]; then
  # The S3 tests run against a real versitygw (about two minutes to build).
  echo "make deps: go install github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
  GOFLAGS= go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
fi
if [ -n "$need_localkms" ]; then
  # The AWS KMS key-encryption key's tests run against a real local-kms.
  echo "make deps: go install github.com/nsmithuk/local-kms@$LOCALKMS_VERSION"
  GOFLAGS= go install "github.com/nsmithuk/local-kms@$LOCALKMS_VERSION"
fi

echo
check
if [ ${#problems[@]} -gt 0 ]; then
  printf 'make deps: still missing or too old after installing:\n' >&2
  printf '  %s\n' "${problems[@]}" >&2
  echo "make deps: a tool earlier on PATH may hide the one installed (command -v NAME shows which runs)" >&2
  exit 1
fi
echo "make deps: everything is present"

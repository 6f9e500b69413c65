#!/usr/bin/env bash
# make release / make packages: every package of bcupdate into one folder,
# reproducibly (docs/operations.md, "Packages").
#
#   scripts/packages.sh [--out DIR] [--platform OS-ARCH]... [--only deb|msi]
#
#   linux-amd64, linux-arm64   bcagent, bcpublish and bcfleet .debs (nfpm)
#   windows-amd64              the bcagent MSI (wixl; packaging/wix),
#                              code-signed when SIGN_CERT and SIGN_KEY name a
#                              certificate chain and its key (osslsigncode)
#   SHA256SUMS                 of every file in DIR (default dist/)
#
# DIR must be new, empty, or a folder an earlier run made (it holds
# .bcupdate-packages): it is emptied first.
#
# VERSION: the version (default: git describe; packaging/version.sh makes
# the packages' versions of it); SOURCE_DATE_EPOCH: every
# timestamp in the packages (default: the last commit's time). Two runs on
# the same commit give the same bytes (scripts/release-check.sh checks it).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

# nfpm, pinned: run with go run so that the module itself does not grow.
NFPM_VERSION=v2.45.2

out=dist
platforms=()
only=
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?--out needs a DIR}; shift 2 ;;
    --platform) platforms+=("${2:?--platform needs OS-ARCH}"); shift 2 ;;
    --only) only=${2:?--only needs deb or msi}; shift 2 ;;
    *) echo "packages.sh: unknown argument $1 (usage: $0 [--out DIR] [--platform OS-ARCH]... [--only deb|msi])" >&2; exit 2 ;;
  esac
done
case "$only" in ""|deb|msi) ;; *) echo "packages.sh: --only $only: want deb or msi" >&2; exit 2 ;; esac
[ ${#platforms[@]} -gt 0 ] || platforms=(linux-amd64 linux-arm64 windows-amd64)
for p in "${platforms[@]}"; do
  case "$p" in linux-amd64|linux-arm64|windows-amd64) ;; *) echo "packages.sh: --platform $p: want linux-amd64, linux-arm64 or windows-amd64" >&2; exit 2 ;; esac
done

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH
# The .debs' Debian version and the MSI's ProductVersion
# (packaging/version.sh): a build after a tag sorts after the tag and
# before the next one in both, so apt and msiexec upgrade to it.
versions=$(bash packaging/version.sh "$VERSION")
read -r debversion msiversion <<<"$versions"

# --out is emptied first, so it must be new, empty, or a folder this script
# made (it holds the marker file, which SHA256SUMS leaves out): never a
# folder of someone else's files.
marker=.bcupdate-packages
if [ -e "$out" ] || [ -L "$out" ]; then
  if [ ! -d "$out" ]; then
    echo "packages.sh: --out $out exists and is not a folder" >&2
    exit 1
  fi
  if [ -f "$out/$marker" ]; then
    rm -rf "$out"
  elif [ -n "$(ls -A -- "$out")" ]; then
    echo "packages.sh: --out $out is not empty and packages.sh did not make it (no $marker in it): give a new or empty folder" >&2
    exit 1
  fi
fi

ldflags="-s -w -buildid= -X main.version=$VERSION"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
out=$(cd "$out" && pwd)
echo "made by scripts/packages.sh: its next run with --out here empties this folder" >"$out/$marker"

# Man pages and completion scripts come from the programs' own command
# trees (bcagent man, bcagent completion SHELL), run on this machine in a
# clean environment (no BCAGENT_* variable changes a default).
echo "packages: man pages and completion scripts ($VERSION)"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$work/host/" ./cmd/bcagent ./cmd/bcpublish ./cmd/bcfleet
mkdir -p "$work/share/man" "$work/share/completion"
for prog in bcagent bcpublish bcfleet; do
  env -i PATH="$PATH" SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" "$work/host/$prog" man >"$work/share/man/$prog.1"
  gzip -n -9 "$work/share/man/$prog.1"
  for sh in bash zsh fish powershell; do
    env -i PATH="$PATH" "$work/host/$prog" completion "$sh" >"$work/share/completion/$prog.$sh"
  done
done

for platform in "${platforms[@]}"; do
  goos=${platform%-*} goarch=${platform#*-}
  stage="$work/$platform"
  case "$goos" in
    linux)
      [ "$only" = msi ] && continue
      echo "packages: $platform .debs"
      CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch go build -trimpath -ldflags "$ldflags" -o "$stage/" ./cmd/bcagent ./cmd/bcpublish ./cmd/bcfleet
      cp -r "$work/share/man" "$work/share/completion" packaging/deb "$stage/"
      for prog in bcagent bcpublish bcfleet; do
        (cd "$stage" && ARCH=$goarch VERSION=$debversion \
          GOFLAGS= go run "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION" package \
          --config "deb/$prog.yaml" --packager deb --target "$out/" >/dev/null)
      done
      ;;
    windows)
      [ "$only" = deb ] && continue
      echo "packages: $platform MSI"
      CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch go build -trimpath -ldflags "$ldflags" -o "$stage/" ./cmd/bcagent
      bash packaging/wix/build-msi.sh "$stage/bcagent.exe" "$msiversion" "$out/bcagent_${debversion}_windows-amd64.msi"
      ;;
  esac
done

(cd "$out" && find . -maxdepth 1 -type f ! -name SHA256SUMS ! -name "$marker" -printf '%f\n' | LC_ALL=C sort | xargs -r sha256sum >SHA256SUMS)
echo "packages: $out"
sed 's/^/  /' "$out/SHA256SUMS"

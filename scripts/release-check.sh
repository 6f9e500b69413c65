#!/usr/bin/env bash
# make release-check: build every package twice (scripts/packages.sh, all
# platforms) and require the same bytes: a release is reproducible from
# its commit.
set -euo pipefail
cd "$(dirname "$0")/.."
a=$(mktemp -d) b=$(mktemp -d)
trap 'rm -rf "$a" "$b"' EXIT
bash scripts/packages.sh --out "$a" "$@"
bash scripts/packages.sh --out "$b" "$@" >/dev/null
if ! diff -r "$a" "$b" >/dev/null; then
  echo "release-check: two builds of the same commit differ:" >&2
  diff "$a/SHA256SUMS" "$b/SHA256SUMS" >&2 || true
  exit 1
fi
echo "release-check: two builds are byte for byte the same ($(grep -c . "$a/SHA256SUMS") files)"

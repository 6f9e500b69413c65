#!/usr/bin/env bash
# The bcagent MSI from bcagent.wxs with wixl (Debian's msitools),
# reproducibly, and code-signed when SIGN_CERT and SIGN_KEY are set.
#
#   packaging/wix/build-msi.sh BCAGENT.EXE MSI-VERSION OUT.msi
#
# MSI-VERSION is numeric (1.2.3; Windows Installer compares the first
# three fields for upgrades): packaging/version.sh makes it of the
# release's version, 1.2.3000 for v1.2.3 and 1.2.3004 for four commits
# after it. SOURCE_DATE_EPOCH (required) is every time in
# the MSI. wixl 0.101 stamps the summary information with the time of the
# build and a random package code, and its cabinet with the file's mtime,
# so: the file's mtime is set to SOURCE_DATE_EPOCH, wixl runs under
# faketime at that instant, and msibuild writes the summary information
# again with a package code derived from the version and the binary. The
# product code is derived from the MSI version: each ProductVersion, so each
# commit after a tag, has its own (a major upgrade), and two MSIs of one
# ProductVersion are one product to Windows Installer, never two installed
# side by side; the upgrade code in bcagent.wxs never changes.
#
# SIGN_CERT (certificate chain, PEM) and SIGN_KEY (its key): osslsigncode
# signs the MSI (Authenticode, SHA-256) with its signing time at
# SOURCE_DATE_EPOCH; SIGN_TSA (a timestamp server URL) adds an RFC 3161
# timestamp (then the bytes differ from build to build).
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 BCAGENT.EXE MSI-VERSION OUT.msi" >&2
  exit 2
fi
exe=$1 msiversion=$2 out=$3
if ! [[ $msiversion =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,5}$ ]]; then
  echo "build-msi.sh: MSI version $msiversion: want MAJOR.MINOR.BUILD (at most 255.255.65535)" >&2
  exit 2
fi
: "${SOURCE_DATE_EPOCH:?build-msi.sh: set SOURCE_DATE_EPOCH (scripts/packages.sh does)}"
for tool in wixl msibuild msiinfo faketime; do
  if ! command -v "$tool" >/dev/null; then
    echo "build-msi.sh: $tool is missing (make deps installs it: Debian packages msitools, wixl, faketime)" >&2
    exit 1
  fi
done
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# guid NAME: a GUID from the sha256 of NAME (stable, unique per NAME).
guid() {
  local h
  h=$(printf '%s' "$1" | sha256sum | cut -c1-32 | tr a-f A-F)
  echo "${h:0:8}-${h:8:4}-${h:12:4}-${h:16:4}-${h:20:12}"
}
exehash=$(sha256sum "$exe" | cut -c1-64)
product=$(guid "bcagent-msi-product-$msiversion")
package=$(guid "bcagent-msi-package-$msiversion-$exehash")

cp "$here/bcagent.wxs" "$work/"
cp "$exe" "$work/bcagent.exe"
touch -d "@$SOURCE_DATE_EPOCH" "$work/bcagent.exe"
when=$(date -u -d "@$SOURCE_DATE_EPOCH" '+%Y-%m-%d %H:%M:%S')
(
  cd "$work"
  # (wixl prints GLib warnings about what it ignores; its exit status says
  # whether it built.)
  if ! TZ=UTC faketime -f "$when" wixl -a x64 -D "Version=$msiversion" -D "ProductCode=$product" \
      -D "PackageCode=$package" -D Exe=bcagent.exe -o bcagent.msi bcagent.wxs 2>wixl.log; then
    cat wixl.log >&2
    exit 1
  fi
  # The event source's message file is REG_EXPAND_SZ ("#%" in the
  # Registry table), as InstallAsEventCreate writes it; wixl 0.101 drops
  # the mark of Type="expandable".
  msiinfo export bcagent.msi Registry >Registry.idt
  grep -q $'\tEventMessageFile\t%SystemRoot%' Registry.idt || { echo "build-msi.sh: no EventMessageFile row in the MSI's Registry table" >&2; exit 1; }
  sed -i $'s/\tEventMessageFile\t%SystemRoot%/\tEventMessageFile\t#%%SystemRoot%/' Registry.idt
  TZ=UTC faketime -f "$when" msibuild bcagent.msi -i Registry.idt
  TZ=UTC faketime -f "$when" msibuild bcagent.msi \
    -s "BeckmanConnect update agent (bcupdate) $msiversion" "BeckmanConnect" "x64;1033" "{$package}"
)
if [ -n "${SIGN_CERT:-}" ] || [ -n "${SIGN_KEY:-}" ]; then
  : "${SIGN_CERT:?build-msi.sh: SIGN_KEY is set but SIGN_CERT is not}" "${SIGN_KEY:?build-msi.sh: SIGN_CERT is set but SIGN_KEY is not}"
  args=(sign -certs "$SIGN_CERT" -key "$SIGN_KEY" -h sha256 -n "BeckmanConnect update agent"
        -i https://github.com/beckmanconnect/bcupdate -time "$SOURCE_DATE_EPOCH")
  [ -n "${SIGN_TSA:-}" ] && args+=(-ts "$SIGN_TSA")
  osslsigncode "${args[@]}" -in "$work/bcagent.msi" -out "$work/signed.msi" >"$work/sign.log" 2>&1 || { cat "$work/sign.log" >&2; exit 1; }
  mv "$work/signed.msi" "$work/bcagent.msi"
fi
mv "$work/bcagent.msi" "$out"

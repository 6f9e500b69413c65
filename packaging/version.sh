#!/usr/bin/env bash
# The packages' versions from a bcupdate version (git describe --tags
# --always --dirty, or VERSION), printed as "DEBVERSION MSIVERSION"
# (scripts/packages.sh; docs/operations.md, "Package versions"):
#
#   packaging/version.sh VERSION
#
#   VERSION                     Debian version          MSI ProductVersion
#   v1.2.0                      1.2.0                   1.2.0
#   v1.2.1                      1.2.1                   1.2.1000
#   v1.2.1-3-gabc1234           1.2.1+3.gabc1234        1.2.1003
#   v1.2.1-3-gabc1234-dirty     1.2.1+3.gabc1234.dirty  1.2.1003
#   v1.2.1-dirty                1.2.1+0.dirty           1.2.1000
#   v1.3.0-rc1                  1.3.0~rc1               1.3.0
#   abc1234 (no tag at all)     0.0.0+N.gabc1234        0.0.N
#
# N is the number of commits: after the tag (git describe's), or for an
# untagged tree every commit up to abc1234 (git rev-list --count, run in
# the current folder). A Debian version sorts a build after a tag after
# the tag and before the next one (+ sorts after the end of a version, ~
# before it), so apt upgrades to it. An MSI ProductVersion is
# MAJOR.MINOR.BUILD (at most 255.255.65535; Windows Installer ignores a
# fourth field): BUILD is PATCH*1000+N, so a build after a tag gets a
# higher ProductVersion than the tag and a lower one than the next patch,
# which is why PATCH is at most 65 and N at most 999 (535 for patch 65).
# An untagged tree is 0.0.N. The version is a function of the commit
# alone: two builds of one commit agree.
set -euo pipefail
if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 VERSION" >&2
  exit 2
fi
given=$1
v=${given#v}
dirty=
if [[ $v == *-dirty ]]; then
  dirty=.dirty
  v=${v%-dirty}
fi
n=0 hash=
if [[ $v =~ ^(.+)-([0-9]+)-g([0-9a-f]+)$ ]]; then
  v=${BASH_REMATCH[1]} n=$((10#${BASH_REMATCH[2]})) hash=${BASH_REMATCH[3]}
fi

if [[ $v =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)(.*)$ ]]; then
  major=$((10#${BASH_REMATCH[1]})) minor=$((10#${BASH_REMATCH[2]})) patch=$((10#${BASH_REMATCH[3]}))
  # A pre-release (v1.3.0-rc1) sorts before its release: ~ in Debian.
  deb=${v//-/\~}
  if [ "$major" -gt 255 ] || [ "$minor" -gt 255 ] || [ "$patch" -gt 65 ]; then
    echo "version.sh: $given: an MSI ProductVersion is MAJOR.MINOR.(PATCH*1000+COMMITS): MAJOR and MINOR at most 255, PATCH at most 65" >&2
    exit 1
  fi
  if [ "$n" -gt 999 ] || [ $((patch * 1000 + n)) -gt 65535 ]; then
    echo "version.sh: $given: $n commits after the tag: an MSI ProductVersion is MAJOR.MINOR.(PATCH*1000+COMMITS), COMMITS at most 999 and the sum at most 65535: tag a new version" >&2
    exit 1
  fi
  msi="$major.$minor.$((patch * 1000 + n))"
  if [ "$n" -gt 0 ] || [ -n "$dirty" ]; then
    deb="$deb+$n${hash:+.g$hash}$dirty"
  fi
elif [[ $v =~ ^[0-9a-f]{4,40}$ ]] && [ -z "$hash" ]; then
  # No tag at all: git describe --always gives the abbreviated hash.
  hash=$v
  n=$(git rev-list --count "$hash" 2>/dev/null) || {
    echo "version.sh: $given: no tag, and $hash is not a commit of this repository (git rev-list --count)" >&2
    exit 1
  }
  if [ "$n" -gt 65535 ]; then
    echo "version.sh: $given: $n commits and no tag: an MSI ProductVersion's build field is at most 65535: tag a version" >&2
    exit 1
  fi
  deb="0.0.0+$n.g$hash$dirty"
  msi="0.0.$n"
else
  echo "version.sh: $given: want a version tag's git describe (v1.2.0, v1.2.0-3-gabc1234, …) or an untagged commit's (abc1234): set VERSION" >&2
  exit 1
fi
if ! [[ $deb =~ ^[0-9][A-Za-z0-9.+~]*$ ]]; then
  echo "version.sh: $given: $deb is not a Debian version (digits, letters, . + ~ and - only)" >&2
  exit 1
fi
echo "$deb $msi"

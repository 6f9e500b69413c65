// Package packaging holds the definitions of bcupdate's packages: the
// systemd unit (systemd/), the .debs of bcagent, bcpublish and bcfleet
// (deb/, built with nfpm by scripts/packages.sh), the bcagent MSI (wix/,
// built with wixl) and their versions (version.sh). It has no Go code of its
// own: its tests build the packages and install them (docs/operations.md,
// "Packages").
package packaging

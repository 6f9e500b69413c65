package repo

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// ErrBadPath marks a target path or name that is not allowed.
var ErrBadPath = errors.New("bad target path")

// Well-known target paths.
const (
	DevicePolicyPath = "policy/devices.json"
	// CRLPrefix is where revocation lists are published: trust/crl/<name>.crl.
	CRLPrefix       = "trust/crl/"
	SignatureSuffix = ".p7s"
	// MaxTargetPathLen bounds a target path.
	MaxTargetPathLen = 512
)

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$`)
	platformRE = regexp.MustCompile(`^[a-z0-9]{1,16}-[a-z0-9]{1,16}$`)
	segmentRE  = regexp.MustCompile(`^[A-Za-z0-9_+~@-][A-Za-z0-9._+~@-]*$`)
)

// ValidateTargetPath checks a TUF target path: relative, '/'-separated, no
// empty, "." or ".." segments, no backslashes, no control characters, no
// segment starting with '.', at most MaxTargetPathLen bytes. The publisher
// refuses such paths and the agent refuses them if they appear in metadata.
func ValidateTargetPath(p string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrBadPath, p, why) }
	switch {
	case p == "":
		return bad("empty")
	case len(p) > MaxTargetPathLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxTargetPathLen))
	case strings.ContainsRune(p, '\\'):
		return bad("contains a backslash")
	case strings.HasPrefix(p, "/"):
		return bad("absolute path")
	case len(p) >= 2 && p[1] == ':':
		return bad("drive letter")
	}
	for _, seg := range strings.Split(p, "/") {
		switch {
		case seg == "":
			return bad("empty segment")
		case seg == "." || seg == "..":
			return bad("contains " + seg)
		case !segmentRE.MatchString(seg):
			return bad(fmt.Sprintf("segment %q: only letters, digits and . _ + ~ @ - are allowed, not first '.'", seg))
		}
	}
	return nil
}

// ValidateName checks a component or channel name: lowercase letters,
// digits and '-', starting and ending with a letter or digit.
func ValidateName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%s name %q: use lowercase letters, digits and '-' (at most 64)", kind, name)
	}
	return nil
}

// ValidatePlatform checks an OS-ARCH platform such as windows-amd64.
func ValidatePlatform(p string) error {
	if !platformRE.MatchString(p) {
		return fmt.Errorf("platform %q: want OS-ARCH such as windows-amd64 or linux-amd64", p)
	}
	return nil
}

// ValidateFileName checks an artifact's file name (one path segment).
func ValidateFileName(name string) error {
	if strings.ContainsAny(name, "/\\") {
		return fmt.Errorf("%w: file name %q contains a path separator", ErrBadPath, name)
	}
	return ValidateTargetPath(name)
}

// ArtifactPath is <component>/<os>-<arch>/<version>/<file>.
func ArtifactPath(component, platform, version, file string) string {
	return path.Join(component, platform, version, file)
}

// ChannelPath is <component>/<os>-<arch>/channels/<channel>.json.
func ChannelPath(component, platform, channel string) string {
	return path.Join(component, platform, "channels", channel+".json")
}

// CRLPath is the target path of a published CRL.
func CRLPath(name string) string { return CRLPrefix + name + ".crl" }

// SignaturePath is the detached signature's target path for an artifact.
func SignaturePath(artifact string) string { return artifact + SignatureSuffix }

// ConsistentName is the name a target is stored under with consistent
// snapshots: <dir>/<sha256>.<file>.
func ConsistentName(targetPath, sha256hex string) string {
	dir, file := path.Split(targetPath)
	return dir + sha256hex + "." + file
}

// ParseArtifactPath splits an artifact path into its parts and validates them.
func ParseArtifactPath(p string) (component, platform, version, file string, err error) {
	if err = ValidateTargetPath(p); err != nil {
		return
	}
	parts := strings.Split(p, "/")
	if len(parts) != 4 {
		err = fmt.Errorf("%w %q: want <component>/<os>-<arch>/<version>/<file>", ErrBadPath, p)
		return
	}
	component, platform, version, file = parts[0], parts[1], parts[2], parts[3]
	if err = ValidateName("component", component); err != nil {
		return
	}
	if err = ValidatePlatform(platform); err != nil {
		return
	}
	if _, err = ParseVersion(version); err != nil {
		err = fmt.Errorf("version %w", err)
	}
	return
}

package repo

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a parsed semantic version (semver.org 2.0.0).
type Version struct {
	Major, Minor, Patch uint64
	Pre                 []string
	Build               string
	raw                 string
}

func (v Version) String() string { return v.raw }

// VersionForm is the form ParseVersion wants, in the words errors use.
const VersionForm = "MAJOR.MINOR.PATCH[-PRE]"

// VersionError is a string that is not a semantic version. Its message
// quotes the string and says what to write instead; a caller adds what the
// string is ("--version %w", "version %w").
type VersionError struct {
	Value string
	// Hint says what is wrong and the form to write, with the fixed
	// version where there is one.
	Hint string
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("%q is not a semantic version: %s", e.Value, e.Hint)
}

// ParseVersion parses MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], without a "v".
// Its error is a *VersionError.
func ParseVersion(s string) (Version, error) {
	v, hint := parseVersion(s)
	if hint == "" {
		return v, nil
	}
	switch t := strings.TrimSpace(s); {
	case t != s:
		hint = "remove the spaces"
		if _, h := parseVersion(t); h == "" {
			hint += ", as " + t
		}
	case len(s) > 1 && (s[0] == 'v' || s[0] == 'V') && s[1] >= '0' && s[1] <= '9':
		if _, h := parseVersion(s[1:]); h == "" {
			hint = fmt.Sprintf("write it without the %q, as %s", s[:1], s[1:])
		} else {
			hint = fmt.Sprintf("write it as %s without the %q, such as %s", VersionForm, s[:1], versionExample(s[1:]))
		}
	}
	return Version{}, &VersionError{Value: s, Hint: hint}
}

// parseVersion is ParseVersion, with what is wrong as a hint ("" when
// nothing is).
func parseVersion(s string) (Version, string) {
	v := Version{raw: s}
	form := func(why string) string {
		return fmt.Sprintf("%s; write %s, such as %s", why, VersionForm, versionExample(s))
	}
	if s == "" {
		return Version{}, form("it is empty")
	}
	if len(s) > 128 {
		return Version{}, "it is longer than 128 characters"
	}
	rest := s
	if i := strings.IndexByte(rest, '+'); i >= 0 {
		v.Build = rest[i+1:]
		rest = rest[:i]
		if !validIdents(v.Build, false) {
			return Version{}, `the build metadata after "+" must be dot-separated letters, digits and hyphens, such as ` + versionExample(rest) + "+build.5"
		}
	}
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		pre := rest[i+1:]
		rest = rest[:i]
		if !validIdents(pre, true) {
			return Version{}, `the pre-release after "-" must be dot-separated letters, digits and hyphens (numbers without leading zeros), such as ` + versionExample(rest) + "-rc.1"
		}
		v.Pre = strings.Split(pre, ".")
	}
	parts := strings.Split(rest, ".")
	var nums []uint64
	for _, p := range parts {
		if p == "" {
			return Version{}, form("a number is missing")
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return Version{}, form(fmt.Sprintf("%q is not a number", p))
		}
		if len(p) > 1 && p[0] == '0' {
			return Version{}, fmt.Sprintf("numbers have no leading zeros; write %s", versionExample(s))
		}
		nums = append(nums, n)
	}
	if len(nums) != 3 {
		have := map[int]string{1: "one number", 2: "two numbers"}[len(nums)]
		if have == "" {
			have = fmt.Sprintf("%d numbers", len(nums))
		}
		return Version{}, form("it has " + have + ", not three")
	}
	v.Major, v.Minor, v.Patch = nums[0], nums[1], nums[2]
	return v, ""
}

// versionExample is a version of s's form: its leading numbers (without
// leading zeros), padded or cut to three, and its pre-release, or 1.0.0.
func versionExample(s string) string {
	rest, pre := s, ""
	if i := strings.IndexByte(rest, '+'); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		rest, pre = rest[:i], rest[i:]
		if !validIdents(pre[1:], true) {
			pre = ""
		}
	}
	var nums []string
	for _, p := range strings.Split(rest, ".") {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil || len(nums) == 3 {
			break
		}
		nums = append(nums, strconv.FormatUint(n, 10))
	}
	if len(nums) == 0 {
		return "1.0.0"
	}
	for len(nums) < 3 {
		nums = append(nums, "0")
	}
	return strings.Join(nums, ".") + pre
}

func validIdents(s string, numericNoLeadingZero bool) bool {
	if s == "" {
		return false
	}
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return false
		}
		numeric := true
		for _, c := range id {
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				numeric = false
			default:
				return false
			}
		}
		if numeric && numericNoLeadingZero && len(id) > 1 && id[0] == '0' {
			return false
		}
	}
	return true
}

// Compare returns -1, 0 or +1; build metadata is ignored, as semver says.
func (v Version) Compare(o Version) int {
	for _, d := range [][2]uint64{{v.Major, o.Major}, {v.Minor, o.Minor}, {v.Patch, o.Patch}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(v.Pre) == 0 && len(o.Pre) == 0:
		return 0
	case len(v.Pre) == 0:
		return 1
	case len(o.Pre) == 0:
		return -1
	}
	for i := 0; i < len(v.Pre) && i < len(o.Pre); i++ {
		if c := compareIdent(v.Pre[i], o.Pre[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(v.Pre) < len(o.Pre):
		return -1
	case len(v.Pre) > len(o.Pre):
		return 1
	}
	return 0
}

func compareIdent(a, b string) int {
	an, aerr := strconv.ParseUint(a, 10, 64)
	bn, berr := strconv.ParseUint(b, 10, 64)
	switch {
	case aerr == nil && berr == nil:
		switch {
		case an < bn:
			return -1
		case an > bn:
			return 1
		}
		return 0
	case aerr == nil:
		return -1
	case berr == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// CompareVersions compares two version strings; an unparsable one sorts first.
func CompareVersions(a, b string) int {
	va, errA := ParseVersion(a)
	vb, errB := ParseVersion(b)
	switch {
	case errA != nil && errB != nil:
		return strings.Compare(a, b)
	case errA != nil:
		return -1
	case errB != nil:
		return 1
	}
	return va.Compare(vb)
}

package repo

import (
	"errors"
	"strings"
	"testing"
)

var targetPathCases = []struct {
	path string
	ok   bool
}{
	{"notification-client/windows-amd64/1.0.0/nc.tar.gz", true},
	{"notification-client/windows-amd64/1.0.0/nc.tar.gz.p7s", true},
	{"policy/devices.json", true},
	{"trust/crl/example-ca.crl", true},
	{"", false},
	{"/etc/passwd", false},
	{"a/../b", false},
	{"../a", false},
	{"a/./b", false},
	{"a//b", false},
	{"a/b/", false},
	{`a\b`, false},
	{`..\..\windows\system32`, false},
	{"C:/windows", false},
	{"a/.hidden", false},
	{"a/b\x00c", false},
	{"a/b\nc", false},
	{"a/b c", false},
	{strings.Repeat("a", MaxTargetPathLen+1), false},
}

func TestValidateTargetPath(t *testing.T) {
	for _, tc := range targetPathCases {
		err := ValidateTargetPath(tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateTargetPath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
	}
}

// FuzzValidateTargetPath: whatever passes must be a clean relative path
// that cannot leave the directory it is joined to.
func FuzzValidateTargetPath(f *testing.F) {
	for _, tc := range targetPathCases {
		f.Add(tc.path)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if ValidateTargetPath(p) != nil {
			return
		}
		if strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || strings.Contains(p, "..") && hasDotDotSegment(p) {
			t.Fatalf("accepted unsafe path %q", p)
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, ".") {
				t.Fatalf("accepted bad segment in %q", p)
			}
			for _, c := range seg {
				if c < 0x21 || c > 0x7e {
					t.Fatalf("accepted control or non-ASCII character in %q", p)
				}
			}
		}
	})
}

func hasDotDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return true
		}
	}
	return false
}

func TestNamesAndVersions(t *testing.T) {
	for _, n := range []string{"notification-client", "bcagent", "a1"} {
		if ValidateName("component", n) != nil {
			t.Errorf("rejected %q", n)
		}
	}
	for _, n := range []string{"", "-a", "a-", "Upper", "a_b", "a/b", strings.Repeat("a", 65)} {
		if ValidateName("component", n) == nil {
			t.Errorf("accepted %q", n)
		}
	}
	order := []string{"0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "1.10.0", "2.0.0"}
	for i := 0; i+1 < len(order); i++ {
		if CompareVersions(order[i], order[i+1]) != -1 || CompareVersions(order[i+1], order[i]) != 1 {
			t.Errorf("%s should sort before %s", order[i], order[i+1])
		}
	}
	if CompareVersions("1.0.0+build.1", "1.0.0+build.2") != 0 {
		t.Error("build metadata must not affect order")
	}
	for _, v := range []string{"1.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0-01", "1.0.0+", "1..0", "1.0.0 "} {
		if _, err := ParseVersion(v); err == nil {
			t.Errorf("accepted version %q", v)
		}
	}
}

// A string that is not a semantic version says what to write instead.
func TestParseVersionSaysWhatToWrite(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"v1.3.0", `"v1.3.0" is not a semantic version: write it without the "v", as 1.3.0`},
		{"V1.3", `"V1.3" is not a semantic version: write it as MAJOR.MINOR.PATCH[-PRE] without the "V", such as 1.3.0`},
		{"1.3", `"1.3" is not a semantic version: it has two numbers, not three; write MAJOR.MINOR.PATCH[-PRE], such as 1.3.0`},
		{"1", `"1" is not a semantic version: it has one number, not three; write MAJOR.MINOR.PATCH[-PRE], such as 1.0.0`},
		{"1.3.0.1", `"1.3.0.1" is not a semantic version: it has 4 numbers, not three; write MAJOR.MINOR.PATCH[-PRE], such as 1.3.0`},
		{"01.2.3", `"01.2.3" is not a semantic version: numbers have no leading zeros; write 1.2.3`},
		{"1.2.x", `"1.2.x" is not a semantic version: "x" is not a number; write MAJOR.MINOR.PATCH[-PRE], such as 1.2.0`},
		{"1..0", `"1..0" is not a semantic version: a number is missing; write MAJOR.MINOR.PATCH[-PRE], such as 1.0.0`},
		{"1.2.3-", `"1.2.3-" is not a semantic version: the pre-release after "-" must be dot-separated letters, digits and hyphens (numbers without leading zeros), such as 1.2.3-rc.1`},
		{"1.2.3+", `"1.2.3+" is not a semantic version: the build metadata after "+" must be dot-separated letters, digits and hyphens, such as 1.2.3+build.5`},
		{"1.0.0 ", `"1.0.0 " is not a semantic version: remove the spaces, as 1.0.0`},
		{"", `"" is not a semantic version: it is empty; write MAJOR.MINOR.PATCH[-PRE], such as 1.0.0`},
	} {
		_, err := ParseVersion(tc.in)
		var ve *VersionError
		if !errors.As(err, &ve) || ve.Value != tc.in || err.Error() != tc.want {
			t.Errorf("ParseVersion(%q) = %v\nwant %s", tc.in, err, tc.want)
		}
	}
}

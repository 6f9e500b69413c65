package repo

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/beckmanconnect/bcupdate/internal/textsafe"
)

// Install kinds and code-signing kinds of a release.
const (
	InstallArchive   = "archive"
	InstallFile      = "file"
	InstallSelf      = "self"
	InstallInstaller = "installer"

	CodesignCMS          = "cms"
	CodesignAuthenticode = "authenticode"
)

// Consent values of a feature.
const (
	ConsentRequired   = "required"
	ConsentPHIDevices = "phi-devices"
	ConsentNone       = "none"
)

// Release is the `bc` custom metadata of an artifact target.
type Release struct {
	Component       string    `json:"component"`
	Version         string    `json:"version"`
	Platform        string    `json:"platform"`
	Install         string    `json:"install"`
	Codesign        string    `json:"codesign"`
	Features        []Feature `json:"features,omitempty"`
	MinAgentVersion string    `json:"min_agent_version,omitempty"`
	HealthCheck     []string  `json:"health_check,omitempty"`
	// Deltas are bsdiff patches from earlier releases to this one.
	Deltas []Delta `json:"deltas,omitempty"`
	// Installer is the command an "installer" release runs; "{file}" is
	// replaced by the installer's path.
	Installer []string `json:"installer,omitempty"`
	Released  string   `json:"released"`
	// Yanked withdraws a published release: agents never install it and
	// warn where it is installed.
	Yanked     bool   `json:"yanked,omitempty"`
	YankReason string `json:"yank_reason,omitempty"`
	// Gate is the publisher's code-signed statement of Features (gate.go):
	// agents activate no feature of a release without it.
	Gate *Gate `json:"gate,omitempty"`
}

// Delta links a release to a bsdiff patch (its own TUF target) that turns
// the artifact of an earlier version into this one.
type Delta struct {
	From         string `json:"from"`
	BaseSHA256   string `json:"base_sha256"`
	Patch        string `json:"patch"`
	ResultSHA256 string `json:"result_sha256"`
}

// Commands in release metadata come from TUF metadata, which the targets
// key alone can change; they must only ever run code-signed bytes. So a
// health check runs a program inside the release's own (code-signed)
// files, and an installer runs the (code-signed) installer itself, with
// msiexec or sh as the only interpreters, and plain flags as arguments.
var (
	flagRE     = regexp.MustCompile(`^(/[A-Za-z][A-Za-z0-9:_.=-]*|--?[A-Za-z][A-Za-z0-9_.=-]*)$`)
	argRE      = regexp.MustCompile(`^[A-Za-z0-9_.=:/+-]*$`)
	programRE  = regexp.MustCompile(`^[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*$`)
	installers = [][]string{{"{file}"}, {"msiexec", "/i", "{file}"}, {"sh", "{file}"}, {"/bin/sh", "{file}"}}
)

// printable reports whether s is valid UTF-8 without control, bidi or other
// non-printing characters (newlines and tabs allowed when multiline); the
// one definition is textsafe.Check.
func printable(s string, multiline bool) bool {
	return textsafe.Check(s, multiline) == nil
}

// ValidateInstaller checks an installer command: the installer itself, or
// msiexec /i or sh on it, then flags only.
func ValidateInstaller(argv []string) error {
	if len(argv) == 0 {
		return errors.New("install kind installer needs an installer command")
	}
	for _, prefix := range installers {
		if len(argv) < len(prefix) || !slices.Equal(argv[:len(prefix)], prefix) {
			continue
		}
		for _, a := range argv[len(prefix):] {
			if !flagRE.MatchString(a) {
				return fmt.Errorf("installer argument %q: only flags such as /qn or --quiet are allowed", a)
			}
		}
		return nil
	}
	return fmt.Errorf("installer %q: want {file} [FLAGS], msiexec /i {file} [FLAGS] or sh {file} [FLAGS]: only the code-signed installer may run", strings.Join(argv, " "))
}

// ValidateHealthCheck checks a health check: a program inside the release
// (a relative path without ..), then plain arguments.
func ValidateHealthCheck(argv []string) error {
	prog := argv[0]
	if !programRE.MatchString(prog) || strings.Contains("/"+prog+"/", "/../") || strings.Contains("/"+prog+"/", "/./") {
		return fmt.Errorf("health check %q: the program must be a path inside the release, such as bin/notification-client", prog)
	}
	for _, a := range argv[1:] {
		if !argRE.MatchString(a) {
			return fmt.Errorf("health check argument %q: only letters, digits and _ . = : / + - are allowed", a)
		}
	}
	return nil
}

// Feature is a capability a release turns on.
type Feature struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Consent     string `json:"consent"`
}

type customEnvelope struct {
	BC *Release `json:"bc"`
}

// Validate checks a release's fields.
func (r *Release) Validate() error {
	if err := ValidateName("component", r.Component); err != nil {
		return err
	}
	if _, err := ParseVersion(r.Version); err != nil {
		return fmt.Errorf("version %w", err)
	}
	if err := ValidatePlatform(r.Platform); err != nil {
		return err
	}
	if !slices.Contains([]string{InstallArchive, InstallFile, InstallSelf, InstallInstaller}, r.Install) {
		return fmt.Errorf("install kind %q: want archive, file, self or installer", r.Install)
	}
	if !slices.Contains([]string{CodesignCMS, CodesignAuthenticode}, r.Codesign) {
		return fmt.Errorf("codesign kind %q: want cms or authenticode", r.Codesign)
	}
	if !printable(r.YankReason, false) {
		return errors.New("yank reason contains control characters")
	}
	if r.Install == InstallInstaller {
		if err := ValidateInstaller(r.Installer); err != nil {
			return err
		}
	} else if len(r.Installer) > 0 {
		return fmt.Errorf("an installer command is only for install kind installer")
	}
	if len(r.HealthCheck) > 0 {
		if err := ValidateHealthCheck(r.HealthCheck); err != nil {
			return err
		}
	}
	if r.MinAgentVersion != "" {
		if _, err := ParseVersion(r.MinAgentVersion); err != nil {
			return fmt.Errorf("min_agent_version %w", err)
		}
	}
	seen := map[string]bool{}
	for _, f := range r.Features {
		if err := ValidateName("feature", f.ID); err != nil {
			return err
		}
		if seen[f.ID] {
			return fmt.Errorf("feature %q listed twice", f.ID)
		}
		seen[f.ID] = true
		if !slices.Contains([]string{ConsentRequired, ConsentPHIDevices, ConsentNone}, f.Consent) {
			return fmt.Errorf("feature %q: consent %q: want required, phi-devices or none", f.ID, f.Consent)
		}
		if f.Consent != ConsentNone && (strings.TrimSpace(f.Title) == "" || strings.TrimSpace(f.Description) == "") {
			return fmt.Errorf("feature %q needs a title and a full description: a person must read what they authorize", f.ID)
		}
		// What a person authorizes is shown at a terminal: no escape
		// sequences that could hide or rewrite it.
		if !printable(f.Title, false) || !printable(f.Description, true) {
			return fmt.Errorf("feature %q: the title or description contains control characters", f.ID)
		}
	}
	return nil
}

// Custom encodes the release as a TUF target's custom field.
func (r *Release) Custom() (*json.RawMessage, error) {
	b, err := json.Marshal(customEnvelope{BC: r})
	if err != nil {
		return nil, err
	}
	// Kept in canonical form, the form signatures cover: signing and
	// verifying a bin then copies it instead of re-encoding it.
	var c bytes.Buffer
	if canonicalRaw(&c, b) && !hasControl(c.Bytes()) {
		b = c.Bytes()
	}
	raw := json.RawMessage(b)
	return &raw, nil
}

// hasControl says whether b holds a byte JSON must escape inside a string
// (canonical JSON does not escape them, so such a form is not JSON).
func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}

// ParseRelease reads the `bc` custom metadata of a target, strictly.
func ParseRelease(custom *json.RawMessage) (*Release, error) {
	if custom == nil {
		return nil, errors.New("target has no custom metadata")
	}
	var env customEnvelope
	if err := decodeStrict(*custom, &env); err != nil {
		return nil, fmt.Errorf("custom metadata: %w", err)
	}
	if env.BC == nil {
		return nil, errors.New(`custom metadata has no "bc" object`)
	}
	if err := env.BC.Validate(); err != nil {
		return nil, fmt.Errorf("custom metadata: %w", err)
	}
	return env.BC, nil
}

// Pointer is a channel pointer: the artifact path a channel points at.
type Pointer struct {
	Release string `json:"release"`
	// Percent, if set (1-99), limits the release to that share of devices
	// (see InRollout); absent means every device.
	Percent int `json:"percent,omitempty"`
}

// InRollout says whether a device takes a release rolled out to percent of
// devices: the first two bytes of sha256(device id | component | version),
// as a big-endian number mod 100, are below percent. Deterministic, so a
// device never flaps in and out.
func InRollout(deviceID, component, version string, percent int) bool {
	if percent <= 0 || percent >= 100 {
		return percent >= 100 || percent == 0
	}
	sum := sha256.Sum256([]byte(deviceID + "|" + component + "|" + version))
	return int(binary.BigEndian.Uint16(sum[:2]))%100 < percent
}

// MaxPointerSize bounds a channel pointer file.
const MaxPointerSize = 64 << 10

// ParsePointer reads a channel pointer and validates the path it names.
func ParsePointer(data []byte) (*Pointer, error) {
	if len(data) > MaxPointerSize {
		return nil, fmt.Errorf("channel pointer is larger than %d bytes", MaxPointerSize)
	}
	var p Pointer
	if err := decodeStrict(data, &p); err != nil {
		return nil, fmt.Errorf("channel pointer: %w", err)
	}
	if _, _, _, _, err := ParseArtifactPath(p.Release); err != nil {
		return nil, fmt.Errorf("channel pointer: %w", err)
	}
	if p.Percent < 0 || p.Percent > 100 {
		return nil, fmt.Errorf("channel pointer: percent %d is not 0-100", p.Percent)
	}
	return &p, nil
}

// DevicePolicy is policy/devices.json.
type DevicePolicy struct {
	PHIDeviceClasses []string `json:"phi_device_classes"`
	// Version orders code-signed policies: an agent never accepts one with
	// a lower version than the last it accepted (gate.go).
	Version int64 `json:"version,omitempty"`
}

// ParseDevicePolicy reads policy/devices.json strictly.
func ParseDevicePolicy(data []byte) (*DevicePolicy, error) {
	var p DevicePolicy
	if err := decodeStrict(data, &p); err != nil {
		return nil, fmt.Errorf("device policy: %w", err)
	}
	if p.PHIDeviceClasses == nil {
		return nil, errors.New(`device policy: "phi_device_classes" is missing`)
	}
	seen := map[string]bool{}
	for _, c := range p.PHIDeviceClasses {
		if strings.TrimSpace(c) == "" || len(c) > 128 {
			return nil, fmt.Errorf("device policy: device class %q must be 1 to 128 characters", c)
		}
		if seen[NormalizeModel(c)] {
			return nil, fmt.Errorf("device policy: device class %q listed twice (classes are compared ignoring case, spacing and Unicode form)", c)
		}
		seen[NormalizeModel(c)] = true
	}
	if p.Version < 0 {
		return nil, fmt.Errorf("device policy: version %d must not be negative", p.Version)
	}
	return &p, nil
}

// DefaultPHIDeviceClasses seeds policy/devices.json: the instrument PCs the
// product sheet names as holding personal health information.
var DefaultPHIDeviceClasses = []string{
	"Navios EX", "DxFLEx", "Data Innovations Instrument Manager", "AQUIOS CL", "CellMek SPS", "Navios",
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

// ReleaseIndex is the target <component>/<os>-<arch>/releases.json: every
// version published for a component and platform, and its artifact path.
// With hashed bins, releases cannot be listed without fetching every bin;
// the index lets bcagent pin find a version and bcpublish refuse a second
// artifact for a published version, at the cost of one small target.
type ReleaseIndex struct {
	Releases map[string]string `json:"releases"`
}

// MaxReleaseIndexSize bounds a release index (about 10,000 releases).
const MaxReleaseIndexSize = 1 << 20

// ReleasesPath is <component>/<os>-<arch>/releases.json.
func ReleasesPath(component, platform string) string {
	return path.Join(component, platform, "releases.json")
}

// ParseReleaseIndex reads a release index strictly: every entry must be a
// version of component for platform, naming an artifact path of exactly
// that component, platform and version.
func ParseReleaseIndex(data []byte, component, platform string) (*ReleaseIndex, error) {
	if len(data) > MaxReleaseIndexSize {
		return nil, fmt.Errorf("release index is larger than %d bytes", MaxReleaseIndexSize)
	}
	var ix ReleaseIndex
	if err := decodeStrict(data, &ix); err != nil {
		return nil, fmt.Errorf("release index: %w", err)
	}
	if ix.Releases == nil {
		ix.Releases = map[string]string{}
	}
	for v, p := range ix.Releases {
		c, pl, pv, _, err := ParseArtifactPath(p)
		if err != nil {
			return nil, fmt.Errorf("release index: %w", err)
		}
		if c != component || pl != platform || pv != v {
			return nil, fmt.Errorf("release index of %s %s lists %s as %s", component, platform, v, p)
		}
	}
	return &ix, nil
}

// Marshal gives the index's file content.
func (ix *ReleaseIndex) Marshal() []byte {
	b, _ := json.Marshal(ix) // a map of strings always marshals
	return append(b, '\n')
}

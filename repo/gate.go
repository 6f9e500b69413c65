package repo

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// The consent gate's inputs (which features a release turns on and what
// consent each needs, and which device classes hold PHI) decide whether a
// person is asked before file transfer turns on. TUF metadata alone is
// signed by the targets key only, so a thief of that one key could declare
// a gated feature as ungated. Each of these inputs is therefore also
// covered by the publisher's code signature:
//
//   - a release that declares features carries a gate manifest: the
//     publisher's statement of the component, version, platform, artifact
//     sha256 and the exact features (ID, consent, title, description),
//     signed with the code-signing key as detached CMS. Agents require the
//     manifest to verify against the pinned roots and publishers and to
//     match the `bc` metadata exactly.
//   - the device policy is signed the same way (policy/devices.json.p7s)
//     and carries a version that only goes up.
//
// Neither key alone can then lower the consent a feature needs, declare a
// gated feature ungated, remove a PHI device class, or reword a feature
// while keeping a grant (a grant is bound to the text's sha256, and the
// text is in the signed manifest).

// gateManifestType is the _type of a gate manifest.
const gateManifestType = "bcupdate-gate"

// MaxGateManifestSize bounds a gate manifest (feature texts are at most
// 64 KiB each).
const MaxGateManifestSize = 256 << 10

// MaxGateSignatureSize bounds its CMS signature.
const MaxGateSignatureSize = 64 << 10

// GateManifest is what the publisher code-signs for a release with features.
type GateManifest struct {
	Type           string    `json:"_type"`
	Component      string    `json:"component"`
	Version        string    `json:"version"`
	Platform       string    `json:"platform"`
	ArtifactSHA256 string    `json:"artifact_sha256"`
	Features       []Feature `json:"features"`
}

// Gate is the signed manifest as carried in the `bc` metadata: the exact
// signed bytes and the detached CMS signature, both base64.
type Gate struct {
	Manifest  string `json:"manifest"`
	Signature string `json:"signature"`
}

// NewGateManifest is the manifest for a release and its artifact's sha256.
func NewGateManifest(r *Release, artifactSHA256 string) ([]byte, error) {
	m := GateManifest{Type: gateManifestType, Component: r.Component, Version: r.Version, Platform: r.Platform,
		ArtifactSHA256: artifactSHA256, Features: r.Features}
	if m.Features == nil {
		m.Features = []Feature{}
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func (m *GateManifest) validate() error {
	if m.Type != gateManifestType {
		return fmt.Errorf("gate manifest: _type %q, want %q", m.Type, gateManifestType)
	}
	rel := Release{Component: m.Component, Version: m.Version, Platform: m.Platform,
		Install: InstallFile, Codesign: CodesignCMS, Features: m.Features}
	if err := rel.Validate(); err != nil {
		return fmt.Errorf("gate manifest: %w", err)
	}
	if len(m.ArtifactSHA256) != 64 {
		return fmt.Errorf("gate manifest: artifact_sha256 %q is not a sha256", m.ArtifactSHA256)
	}
	return nil
}

// ParseGateManifest reads a gate manifest strictly.
func ParseGateManifest(data []byte) (*GateManifest, error) {
	if len(data) > MaxGateManifestSize {
		return nil, fmt.Errorf("gate manifest is larger than %d bytes", MaxGateManifestSize)
	}
	var m GateManifest
	if err := decodeStrict(data, &m); err != nil {
		return nil, fmt.Errorf("gate manifest: %w", err)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Match says whether the manifest states exactly what the release's
// metadata declares, for the artifact with that sha256.
func (m *GateManifest) Match(r *Release, artifactSHA256 string) error {
	switch {
	case m.Component != r.Component || m.Version != r.Version || m.Platform != r.Platform:
		return fmt.Errorf("the code-signed gate manifest is for %s %s %s, the metadata says %s %s %s",
			m.Component, m.Version, m.Platform, r.Component, r.Version, r.Platform)
	case m.ArtifactSHA256 != artifactSHA256:
		return fmt.Errorf("the code-signed gate manifest is for artifact sha256 %s, the metadata's artifact is %s", m.ArtifactSHA256, artifactSHA256)
	case !slices.Equal(m.Features, r.Features):
		return fmt.Errorf("the features in the metadata (%s) differ from the code-signed gate manifest (%s)", describeFeatures(r.Features), describeFeatures(m.Features))
	}
	return nil
}

func describeFeatures(fs []Feature) string {
	if len(fs) == 0 {
		return "none"
	}
	s := ""
	for i, f := range fs {
		if i > 0 {
			s += ", "
		}
		s += f.ID + ":" + f.Consent
	}
	return s
}

// NewGate encodes a signed manifest for the `bc` metadata.
func NewGate(manifest, signature []byte) *Gate {
	return &Gate{Manifest: base64.StdEncoding.EncodeToString(manifest), Signature: base64.StdEncoding.EncodeToString(signature)}
}

// Decode returns the manifest bytes and the signature, bounded.
func (g *Gate) Decode() (manifest, signature []byte, err error) {
	if g == nil {
		return nil, nil, errors.New("no gate manifest")
	}
	if base64.StdEncoding.DecodedLen(len(g.Manifest)) > MaxGateManifestSize || base64.StdEncoding.DecodedLen(len(g.Signature)) > MaxGateSignatureSize {
		return nil, nil, errors.New("gate manifest or signature too large")
	}
	if manifest, err = base64.StdEncoding.DecodeString(g.Manifest); err != nil {
		return nil, nil, fmt.Errorf("gate manifest: %w", err)
	}
	if signature, err = base64.StdEncoding.DecodeString(g.Signature); err != nil {
		return nil, nil, fmt.Errorf("gate signature: %w", err)
	}
	return manifest, signature, nil
}

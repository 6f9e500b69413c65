package repo

// The offline bundle's statement (issue 18): what `bcpublish bundle create`
// signs and `bcagent import` checks before it trusts anything else in a
// bundle. It lives here, beside the metadata it describes, because both the
// publisher (which writes it) and the agent (which reads it) need it and
// neither may import the other.
//
// The statement is not TUF metadata and can never pass for it: its _type
// is "bcbundle-statement", which go-tuf refuses as any role, and a
// signature over it is a signature over other bytes than any role's. It is
// signed by a threshold of the root's *targets* keys (the offline keys
// release engineers hold), never by the timestamp key, so whoever holds
// only the online keys cannot extend a bundle's life. What it grants is
// narrow: for the import path only, it replaces the expiry of timestamp,
// snapshot and targets (and bins) by its own window, which is bounded
// (MaxBundleValidity) and starts when the bundle was made; versions,
// signatures, thresholds, hashes and the root's own expiry are checked as
// online.

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Bundle format constants.
const (
	// BundleStatementType is the statement's _type.
	BundleStatementType = "bcbundle-statement"
	// BundleFormat is the version of the bundle format this code writes
	// and reads.
	BundleFormat = 1
	// BundleStatementName is the bundle's first entry: the signed
	// statement, which is also its manifest.
	BundleStatementName = "bundle.json"
	// BundleExt is the file name extension of a bundle (the drop folder
	// imports only these).
	BundleExt = ".bcbundle"
	// MaxBundleStatementSize bounds the statement (its entry list grows
	// with the bundle).
	MaxBundleStatementSize = 4 << 20
	// MaxBundleEntries bounds the entries a bundle may hold.
	MaxBundleEntries = 4096
	// DefaultBundleValidity and MaxBundleValidity are how long a bundle
	// stays importable after it was made: the offline window.
	DefaultBundleValidity = 30 * 24 * time.Hour
	MaxBundleValidity     = 90 * 24 * time.Hour
	// BundleClockSkew is how far in the future a bundle's creation time
	// may lie for the PC's clock.
	BundleClockSkew = time.Hour
)

// BundleMeta names one metadata file of the bundle exactly.
type BundleMeta struct {
	Version int64  `json:"version"`
	SHA256  string `json:"sha256"`
}

// BundleRelease is one release a bundle carries. Channel is set when the
// bundle carries the channel pointer that names it (an agent on that
// channel follows the pointer as online); otherwise the release is offered
// by version.
type BundleRelease struct {
	Component string `json:"component"`
	Platform  string `json:"platform"`
	Version   string `json:"version"`
	Path      string `json:"path"`
	Channel   string `json:"channel,omitempty"`
}

// BundleEntry is one file of the bundle after the statement, in order:
// "metadata/<file>" or "targets/<consistent name>".
type BundleEntry struct {
	Name   string `json:"name"`
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
}

// BundleStatement is the signed part of bundle.json.
type BundleStatement struct {
	Type    string `json:"_type"`
	Format  int    `json:"format"`
	Created string `json:"created"` // RFC 3339, UTC, whole seconds
	Expires string `json:"expires"`
	// Root is the newest root in the bundle; the chain up to it is in
	// the entries as metadata/N.root.json.
	Root      BundleMeta `json:"root"`
	Timestamp BundleMeta `json:"timestamp"`
	Snapshot  BundleMeta `json:"snapshot"`
	Targets   BundleMeta `json:"targets"`
	// Delegated are the hashed bins in the bundle, by role name.
	Delegated map[string]BundleMeta `json:"delegated,omitempty"`
	Releases  []BundleRelease       `json:"releases"`
	Entries   []BundleEntry         `json:"entries"`
}

// SignedBundleStatement is bundle.json: the statement and its signatures,
// TUF's envelope shape.
type SignedBundleStatement struct {
	Signed     BundleStatement      `json:"signed"`
	Signatures []metadata.Signature `json:"signatures"`
}

// CreatedTime and ExpiresTime parse the statement's times.
func (s *BundleStatement) CreatedTime() (time.Time, error) {
	return parseBundleTime("created", s.Created)
}
func (s *BundleStatement) ExpiresTime() (time.Time, error) {
	return parseBundleTime("expires", s.Expires)
}

func parseBundleTime(field, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, v)
	if err != nil || !strings.HasSuffix(v, "Z") {
		return time.Time{}, fmt.Errorf("bundle statement: %s %q is not an RFC 3339 UTC time", field, v)
	}
	return t, nil
}

// BundleTime formats a statement time.
func BundleTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

// SHA256Hex is the hex sha256 of data.
func SHA256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// SignBundleStatement signs st with each signer (the targets keys).
func SignBundleStatement(st BundleStatement, signers []signature.Signer) ([]byte, error) {
	payload, err := cjson.EncodeCanonical(st)
	if err != nil {
		return nil, err
	}
	out := SignedBundleStatement{Signed: st}
	for _, s := range signers {
		sig, err := s.SignMessage(bytes.NewReader(payload))
		if err != nil {
			return nil, fmt.Errorf("sign the bundle statement: %w", err)
		}
		_, id, err := tufKey(s)
		if err != nil {
			return nil, err
		}
		out.Signatures = append(out.Signatures, metadata.Signature{KeyID: id, Signature: sig})
	}
	return json.MarshalIndent(out, "", " ")
}

// ParseBundleStatement parses bundle.json strictly (unknown fields are
// refused); it does not verify it.
func ParseBundleStatement(data []byte) (*SignedBundleStatement, error) {
	if len(data) > MaxBundleStatementSize {
		return nil, fmt.Errorf("bundle statement is larger than %d bytes", MaxBundleStatementSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s SignedBundleStatement
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("bundle statement: %v", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("bundle statement: data after the JSON object")
	}
	if s.Signed.Type != BundleStatementType {
		return nil, fmt.Errorf("bundle statement: _type is %q, not %q", s.Signed.Type, BundleStatementType)
	}
	if s.Signed.Format != BundleFormat {
		return nil, fmt.Errorf("bundle statement: format %d, this agent reads format %d", s.Signed.Format, BundleFormat)
	}
	return &s, nil
}

// VerifyBundleStatement checks that a threshold of root's targets keys
// signed the statement (distinct keys; each key counts once).
func VerifyBundleStatement(root *metadata.Metadata[metadata.RootType], s *SignedBundleStatement) error {
	role, ok := root.Signed.Roles[RoleTargets]
	if !ok || role.Threshold < 1 {
		return fmt.Errorf("the trusted root has no targets role")
	}
	payload, err := cjson.EncodeCanonical(s.Signed)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	valid := 0
	for _, id := range role.KeyIDs {
		key, ok := root.Signed.Keys[id]
		if !ok {
			continue
		}
		v, fp, err := tufVerifier(key)
		if err != nil || seen[fp] {
			continue
		}
		for _, sig := range s.Signatures {
			if sig.KeyID != id {
				continue
			}
			if v.VerifySignature(bytes.NewReader(sig.Signature), bytes.NewReader(payload)) == nil {
				seen[fp] = true
				valid++
				break
			}
		}
	}
	if valid < role.Threshold {
		return fmt.Errorf("signed by %d of the root's targets keys, %d needed", valid, role.Threshold)
	}
	return nil
}

// tufVerifier is a verifier for a TUF key, as go-tuf makes it, and the
// fingerprint of the key itself (so one key listed twice counts once).
func tufVerifier(key *metadata.Key) (signature.Verifier, string, error) {
	pub, err := key.ToPublicKey()
	if err != nil {
		return nil, "", err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, "", err
	}
	fp := SHA256Hex(der)
	hash := crypto.Hash(0)
	if key.Type != metadata.KeyTypeEd25519 {
		hash = crypto.SHA256
		if key.Scheme == metadata.KeySchemeECDSA_SHA2_P384 {
			hash = crypto.SHA384
		}
	}
	if key.Type == metadata.KeyTypeRSASSA_PSS_SHA256 {
		rk, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, "", fmt.Errorf("not an RSA key")
		}
		v, err := signature.LoadRSAPSSVerifier(rk, hash, &rsa.PSSOptions{Hash: crypto.SHA256})
		return v, fp, err
	}
	v, err := signature.LoadVerifier(pub, hash)
	return v, fp, err
}

// ValidateBundleEntryName checks an entry name: "metadata/<file>" with
// one safe segment, or "targets/<target path>" (ValidateTargetPath).
func ValidateBundleEntryName(name string) error {
	switch {
	case strings.HasPrefix(name, "metadata/"):
		f := strings.TrimPrefix(name, "metadata/")
		if strings.Contains(f, "/") || !strings.HasSuffix(f, ".json") {
			return fmt.Errorf("%w %q: not a metadata file name", ErrBadPath, name)
		}
		return ValidateTargetPath(f)
	case strings.HasPrefix(name, "targets/"):
		return ValidateTargetPath(strings.TrimPrefix(name, "targets/"))
	}
	return fmt.Errorf("%w %q: a bundle holds only metadata/ and targets/", ErrBadPath, name)
}

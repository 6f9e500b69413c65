package repo

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// parseTargets parses targets metadata (a bin or targets.json) into
// go-tuf's types. go-tuf's own parser decodes every file five times over
// (into maps, to keep unrecognized fields, at each level) and takes ~14 ms
// for a 78 KB bin; a bin holds exactly the fields below, which one strict
// decoding reads in ~2 ms. Anything else (an unknown field at any level)
// falls back to go-tuf's parser, so the result is always what go-tuf would
// give. Parsing is not trusting: callers verify signatures over the
// canonical form of what was parsed, as before.
func parseTargets(data []byte) (*metadata.Metadata[metadata.TargetsType], error) {
	if m, err := fastTargets(data); err == nil {
		return m, nil
	}
	return metadata.Targets().FromBytes(data)
}

type fastTargetFile struct {
	Length int64             `json:"length"`
	Hashes map[string]string `json:"hashes"`
	Custom *json.RawMessage  `json:"custom,omitempty"`
}

type fastSignature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

type fastTargetsFile struct {
	Signatures []fastSignature `json:"signatures"`
	Signed     struct {
		Type        string                     `json:"_type"`
		SpecVersion string                     `json:"spec_version"`
		Version     int64                      `json:"version"`
		Expires     time.Time                  `json:"expires"`
		Targets     map[string]*fastTargetFile `json:"targets"`
		Delegations *json.RawMessage           `json:"delegations,omitempty"`
	} `json:"signed"`
}

var errNotFast = errors.New("not in the fast-path shape")

func fastTargets(data []byte) (*metadata.Metadata[metadata.TargetsType], error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f fastTargetsFile
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errNotFast // trailing data: let go-tuf say what is wrong
	}
	if f.Signed.Type != metadata.TARGETS {
		return nil, errNotFast
	}
	m := &metadata.Metadata[metadata.TargetsType]{
		Signed: metadata.TargetsType{
			Type:        f.Signed.Type,
			SpecVersion: f.Signed.SpecVersion,
			Version:     f.Signed.Version,
			Expires:     f.Signed.Expires,
			Targets:     make(map[string]*metadata.TargetFiles, len(f.Signed.Targets)),
		},
		Signatures: make([]metadata.Signature, 0, len(f.Signatures)),
	}
	if f.Signed.Targets == nil {
		m.Signed.Targets = nil
	}
	seen := map[string]bool{}
	for _, s := range f.Signatures {
		if seen[s.KeyID] {
			return nil, errNotFast
		}
		seen[s.KeyID] = true
		sig, err := hex.DecodeString(s.Sig)
		if err != nil {
			return nil, errNotFast
		}
		m.Signatures = append(m.Signatures, metadata.Signature{KeyID: s.KeyID, Signature: sig})
	}
	for path, tf := range f.Signed.Targets {
		if tf == nil || len(tf.Hashes) == 0 {
			return nil, errNotFast
		}
		hashes := make(metadata.Hashes, len(tf.Hashes))
		for alg, h := range tf.Hashes {
			b, err := hex.DecodeString(h)
			if err != nil {
				return nil, errNotFast
			}
			hashes[alg] = b
		}
		m.Signed.Targets[path] = &metadata.TargetFiles{Length: tf.Length, Hashes: hashes, Custom: tf.Custom, Path: path}
	}
	if f.Signed.Delegations != nil && !bytes.Equal(bytes.TrimSpace(*f.Signed.Delegations), []byte("null")) {
		var d metadata.Delegations
		if err := json.Unmarshal(*f.Signed.Delegations, &d); err != nil {
			return nil, fmt.Errorf("delegations: %w", err)
		}
		m.Signed.Delegations = &d
	}
	return m, nil
}

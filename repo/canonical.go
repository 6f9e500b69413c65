package repo

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Signatures cover the canonical JSON of a role's signed part. go-tuf
// computes it (cjson.EncodeCanonical) by marshalling the struct, decoding
// that into maps and encoding it again: 8 ms for a 78 KB bin, twice per bin
// a publish touches (verify, sign), most of a release add's time in a large
// repository. canonicalTargets writes the same bytes straight from the
// struct for the shape bins have (no delegations, no unrecognized fields,
// valid UTF-8), and leaves anything else to cjson; a test and a fuzz
// target hold it to cjson's output byte for byte.
func canonicalTargets(t *metadata.TargetsType) ([]byte, error) {
	if b, ok := fastCanonicalTargets(t); ok {
		return b, nil
	}
	return cjson.EncodeCanonical(t)
}

func fastCanonicalTargets(t *metadata.TargetsType) ([]byte, bool) {
	if len(t.UnrecognizedFields) != 0 || t.Delegations != nil || t.Targets == nil || !utf8.ValidString(t.Type) || !utf8.ValidString(t.SpecVersion) {
		return nil, false
	}
	exp, err := t.Expires.MarshalJSON()
	if err != nil {
		return nil, false
	}
	var b bytes.Buffer
	b.Grow(256 * (len(t.Targets) + 1))
	b.WriteString(`{"_type":`)
	canonicalString(&b, t.Type)
	b.WriteString(`,"expires":`)
	b.Write(exp) // RFC 3339: digits, letters, ':', '-', '.', '+'; nothing to escape
	b.WriteString(`,"spec_version":`)
	canonicalString(&b, t.SpecVersion)
	b.WriteString(`,"targets":{`)
	for i, p := range slices.Sorted(maps.Keys(t.Targets)) {
		tf := t.Targets[p]
		if tf == nil || len(tf.UnrecognizedFields) != 0 || !utf8.ValidString(p) {
			return nil, false
		}
		if i > 0 {
			b.WriteByte(',')
		}
		canonicalString(&b, p)
		b.WriteString(`:{`)
		if tf.Custom != nil {
			b.WriteString(`"custom":`)
			if !canonicalRaw(&b, *tf.Custom) {
				return nil, false
			}
			b.WriteByte(',')
		}
		b.WriteString(`"hashes":{`)
		for j, a := range slices.Sorted(maps.Keys(tf.Hashes)) {
			if !utf8.ValidString(a) {
				return nil, false
			}
			if j > 0 {
				b.WriteByte(',')
			}
			canonicalString(&b, a)
			b.WriteString(`:"`)
			b.WriteString(hex.EncodeToString(tf.Hashes[a]))
			b.WriteByte('"')
		}
		b.WriteString(`},"length":`)
		b.WriteString(strconv.FormatInt(tf.Length, 10))
		b.WriteByte('}')
	}
	b.WriteString(`},"version":`)
	b.WriteString(strconv.FormatInt(t.Version, 10))
	b.WriteByte('}')
	return b.Bytes(), true
}

// canonicalString writes s as cjson does: only '\\' and '"' escaped.
func canonicalString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for {
		i := strings.IndexAny(s, `\"`)
		if i < 0 {
			break
		}
		b.WriteString(s[:i])
		b.WriteByte('\\')
		b.WriteByte(s[i])
		s = s[i+1:]
	}
	b.WriteString(s)
	b.WriteByte('"')
}

// canonicalRaw writes a JSON value (a target's custom field) canonically,
// decoding it as cjson does (numbers kept as written, integers only).
func canonicalRaw(b *bytes.Buffer, raw []byte) bool {
	if isCanonical(raw) {
		b.Write(raw)
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		return false // more than one value, or trailing bytes: let cjson judge
	}
	return canonicalValue(b, v)
}

func canonicalValue(b *bytes.Buffer, v any) bool {
	switch v := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case string:
		canonicalString(b, v)
	case json.Number:
		if _, err := v.Int64(); err != nil {
			return false // cjson refuses it; let cjson say so
		}
		b.WriteString(v.String())
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if !canonicalValue(b, e) {
				return false
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := slices.Sorted(maps.Keys(v))
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			canonicalString(b, k)
			b.WriteByte(':')
			if !canonicalValue(b, v[k]) {
				return false
			}
		}
		b.WriteByte('}')
	default:
		return false
	}
	return true
}

// signTargets is go-tuf's Metadata.Sign with the payload from
// canonicalTargets.
func signTargets(md *metadata.Metadata[metadata.TargetsType], s signature.Signer) error {
	payload, err := canonicalTargets(&md.Signed)
	if err != nil {
		return err
	}
	sb, err := s.SignMessage(bytes.NewReader(payload))
	if err != nil {
		return &metadata.ErrUnsignedMetadata{Msg: "problem signing metadata"}
	}
	_, id, err := tufKey(s)
	if err != nil {
		return err
	}
	md.Signatures = append(md.Signatures, metadata.Signature{KeyID: id, Signature: sb})
	return nil
}

// verifyBin is go-tuf's VerifyDelegate for a hashed bin delegated by
// targets.json's succinct roles, with the payload computed once by
// canonicalTargets; any other delegation goes to go-tuf. A test holds the
// two to the same verdicts.
func verifyBin(delegator *metadata.Metadata[metadata.TargetsType], name string, bin *metadata.Metadata[metadata.TargetsType]) error {
	d := delegator.Signed.Delegations
	if d == nil || d.Roles != nil || d.SuccinctRoles == nil {
		return delegator.VerifyDelegate(name, bin)
	}
	keyIDs, threshold := d.SuccinctRoles.KeyIDs, d.SuccinctRoles.Threshold
	if len(keyIDs) == 0 {
		return &metadata.ErrValue{Msg: fmt.Sprintf("no delegation found for %s", name)}
	}
	if threshold < 1 {
		return &metadata.ErrValue{Msg: fmt.Sprintf("insufficient threshold (%d) configured for %s", threshold, name)}
	}
	payload, err := canonicalTargets(&bin.Signed)
	if err != nil {
		return err
	}
	// Counted by public key, not key ID, as go-tuf does.
	signing := map[[32]byte]bool{}
	for _, id := range keyIDs {
		key, ok := d.Keys[id]
		if !ok {
			return &metadata.ErrValue{Msg: fmt.Sprintf("key with ID %s not found in %s keyids", id, name)}
		}
		pub, err := key.ToPublicKey()
		if err != nil {
			return err
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return err
		}
		hash := crypto.Hash(0)
		if key.Type != metadata.KeyTypeEd25519 {
			hash = crypto.SHA256
			if key.Scheme == metadata.KeySchemeECDSA_SHA2_P384 {
				hash = crypto.SHA384
			}
		}
		var v signature.Verifier
		if key.Type == metadata.KeyTypeRSASSA_PSS_SHA256 {
			rsaPub, ok := pub.(*rsa.PublicKey)
			if !ok {
				return &metadata.ErrType{Msg: "failed to convert public key to RSA PSS key"}
			}
			v, err = signature.LoadRSAPSSVerifier(rsaPub, hash, &rsa.PSSOptions{Hash: crypto.SHA256})
		} else {
			v, err = signature.LoadVerifier(pub, hash)
		}
		if err != nil {
			return err
		}
		var sig metadata.Signature
		for _, s := range bin.Signatures {
			if s.KeyID == id {
				sig = s
			}
		}
		if v.VerifySignature(bytes.NewReader(sig.Signature), bytes.NewReader(payload)) == nil {
			signing[sha256.Sum256(der)] = true
		}
	}
	if len(signing) < threshold {
		return &metadata.ErrUnsignedMetadata{Msg: fmt.Sprintf("Verifying %s failed, not enough signatures, got %d, want %d", name, len(signing), threshold)}
	}
	return nil
}

// isCanonical says, conservatively, whether raw (a valid JSON value) is
// already in cjson's canonical form, so that it can be copied: no
// whitespace between tokens, strings without escapes and in valid UTF-8,
// integers that fit int64, object keys in strictly increasing order.
// Anything else (escapes, floats, other orders) takes the full path.
func isCanonical(raw []byte) bool {
	c := canonScanner{b: raw}
	return c.value() && c.i == len(raw)
}

type canonScanner struct {
	b []byte
	i int
}

func (c *canonScanner) value() bool {
	if c.i >= len(c.b) {
		return false
	}
	switch ch := c.b[c.i]; {
	case ch == '{':
		c.i++
		var last string
		for first := true; ; first = false {
			if c.i < len(c.b) && c.b[c.i] == '}' {
				c.i++
				return true
			}
			if !first {
				if c.i >= len(c.b) || c.b[c.i] != ',' {
					return false
				}
				c.i++
			}
			key, ok := c.str()
			if !ok || (!first && key <= last) {
				return false
			}
			last = key
			if c.i >= len(c.b) || c.b[c.i] != ':' {
				return false
			}
			c.i++
			if !c.value() {
				return false
			}
			if c.i < len(c.b) && c.b[c.i] == '}' {
				c.i++
				return true
			}
		}
	case ch == '[':
		c.i++
		if c.i < len(c.b) && c.b[c.i] == ']' {
			c.i++
			return true
		}
		for {
			if !c.value() {
				return false
			}
			if c.i >= len(c.b) {
				return false
			}
			switch c.b[c.i] {
			case ']':
				c.i++
				return true
			case ',':
				c.i++
			default:
				return false
			}
		}
	case ch == '"':
		_, ok := c.str()
		return ok
	case ch == '-' || (ch >= '0' && ch <= '9'):
		// JSON's grammar: -?(0|[1-9][0-9]*), and no fraction or exponent.
		j := c.i
		if c.b[j] == '-' {
			j++
		}
		digits := j
		for j < len(c.b) && c.b[j] >= '0' && c.b[j] <= '9' {
			j++
		}
		if j == digits || (c.b[digits] == '0' && j > digits+1) {
			return false
		}
		if _, err := strconv.ParseInt(string(c.b[c.i:j]), 10, 64); err != nil {
			return false
		}
		c.i = j
		return true
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(c.b[c.i:], []byte(lit)) {
				c.i += len(lit)
				return true
			}
		}
		return false
	}
}

// str reads a string with no escapes, in valid UTF-8, with no control
// characters.
func (c *canonScanner) str() (string, bool) {
	if c.i >= len(c.b) || c.b[c.i] != '"' {
		return "", false
	}
	end := bytes.IndexByte(c.b[c.i+1:], '"')
	if end < 0 {
		return "", false
	}
	s := c.b[c.i+1 : c.i+1+end]
	if bytes.IndexByte(s, '\\') >= 0 || hasControl(s) || !utf8.Valid(s) {
		return "", false
	}
	c.i += end + 2
	return string(s), true
}

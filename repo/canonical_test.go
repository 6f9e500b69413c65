package repo

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// sameCanonical checks canonicalTargets against cjson, byte for byte (or
// both refusing).
func sameCanonical(t *testing.T, name string, tt *metadata.TargetsType) {
	t.Helper()
	want, werr := cjson.EncodeCanonical(tt)
	got, gerr := canonicalTargets(tt)
	if (werr == nil) != (gerr == nil) || !bytes.Equal(want, got) {
		t.Fatalf("%s: canonical form differs from cjson's:\ncjson: %s (%v)\nours:  %s (%v)", name, want, werr, got, gerr)
	}
}

func targetsWith(path string, custom *json.RawMessage, length int64, expires time.Time) *metadata.TargetsType {
	m := metadata.Targets(expires)
	m.Signed.Version = length%1000 + 1
	tf := metadata.TargetFile()
	tf.Path, tf.Length, tf.Custom = path, length, custom
	tf.Hashes = metadata.Hashes{"sha256": bytes.Repeat([]byte{0xab}, 32), "sha512": []byte{1, 2, 3}}
	m.Signed.Targets[path] = tf
	m.Signed.Targets[path+".p7s"] = &metadata.TargetFiles{Length: 3, Hashes: metadata.Hashes{"sha256": []byte{9}}, Path: path + ".p7s"}
	return &m.Signed
}

func raw(s string) *json.RawMessage { r := json.RawMessage(s); return &r }

func TestCanonicalTargetsMatchesCJSON(t *testing.T) {
	exp := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := map[string]*metadata.TargetsType{
		"empty":          &metadata.Targets(exp).Signed,
		"plain":          targetsWith("nc/windows-amd64/1.0.0/nc.zip", nil, 1234, exp),
		"release custom": targetsWith("nc/linux-amd64/1.0.0/nc.tar.gz", raw(`{"bc":{"component":"nc","version":"1.0.0","features":[{"id":"phi","text":"Transfers <files> & \"notes\" \\ é ✓ \u2028"}],"yanked":false,"n":-0,"big":9007199254740993,"none":null}}`), 7, exp),
		"spaced custom":  targetsWith("a/b/1/x", raw(" {\n \"b\" : [ 1 , 2 ] ,\t\"a\" : { } } \n"), 1, exp),
		"escapes":        targetsWith("a/b/1/x", raw(`{"s":"\u003c\u0000\n\t\"\\\/"}`), 1, exp),
		"dup keys":       targetsWith("a/b/1/x", raw(`{"k":1,"k":2}`), 1, exp),
		"bad utf8":       targetsWith("a/b/1/x", raw("{\"s\":\"\xff\xfe ok\"}"), 1, exp),
		"bad utf8 path":  targetsWith("a/b/1/\xffx", nil, 1, exp),
		"unicode path":   targetsWith("naïve/ü/1.0.0/ü x.bin", nil, 1, exp),
		"quote path":     targetsWith(`a/b/1/"q"\x`, nil, 1, exp),
		"float custom":   targetsWith("a/b/1/x", raw(`{"f":1.5}`), 1, exp),
		"exp custom":     targetsWith("a/b/1/x", raw(`{"f":1e3}`), 1, exp),
		"trailing":       targetsWith("a/b/1/x", raw(`{"f":1} x`), 1, exp),
		"two values":     targetsWith("a/b/1/x", raw(`{} {}`), 1, exp),
		"null custom":    targetsWith("a/b/1/x", raw(`null`), 1, exp),
		"empty custom":   targetsWith("a/b/1/x", raw(``), 1, exp),
		"nanos, offset":  targetsWith("a/b/1/x", nil, 1, time.Date(2027, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))),
		"negative":       targetsWith("a/b/1/x", nil, -5, exp),
		"canonical":      targetsWith("a/b/1/x", raw(`{"a":[1,-2,0,true,null,"é"],"b":{"c":{}},"d":-0}`), 1, exp),
		"unsorted":       targetsWith("a/b/1/x", raw(`{"b":1,"a":2}`), 1, exp),
		"overflow":       targetsWith("a/b/1/x", raw(`{"n":99999999999999999999}`), 1, exp),
		"leading zero":   targetsWith("a/b/1/x", raw(`{"n":01}`), 1, exp),
		"html escaped":   targetsWith("a/b/1/x", raw(`{"t":"\u003cb\u003e"}`), 1, exp),
	}
	withUnknown := targetsWith("a/b/1/x", nil, 1, exp)
	withUnknown.UnrecognizedFields = map[string]any{"x-extra": []any{1.0, "two"}}
	cases["unrecognized"] = withUnknown
	tfUnknown := targetsWith("a/b/1/x", nil, 1, exp)
	tfUnknown.Targets["a/b/1/x"].UnrecognizedFields = map[string]any{"x": "y"}
	cases["unrecognized in target"] = tfUnknown
	nilTargets := &metadata.Targets(exp).Signed
	nilTargets.Targets = nil
	cases["nil targets"] = nilTargets
	withBins := &metadata.Targets(exp).Signed
	withBins.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}, SuccinctRoles: &metadata.SuccinctRoles{KeyIDs: []string{"ab"}, Threshold: 1, BitLength: 4, NamePrefix: "bins"}}
	cases["delegations"] = withBins
	for name, tt := range cases {
		sameCanonical(t, name, tt)
	}
	if _, ok := fastCanonicalTargets(cases["release custom"]); !ok {
		t.Fatal("a bin's usual shape did not take the fast path")
	}
	// Release metadata is stored canonical, so signing copies it.
	rel := &Release{Component: "nc", Version: "1.0.0", Platform: "linux-amd64", Install: InstallArchive, Codesign: CodesignCMS,
		Released: "2026-11-26T10:00:00Z", Features: []Feature{{ID: "phi", Title: "PHI file transfer", Description: "Transfers <files> & notes", Consent: "phi-devices"}}}
	c, err := rel.Custom()
	if err != nil || !isCanonical(*c) {
		t.Fatalf("release custom metadata is not stored canonical: %s %v", *c, err)
	}
	if back, err := ParseRelease(c); err != nil || back.Features[0].Description != rel.Features[0].Description {
		t.Fatalf("canonical custom metadata does not parse back: %+v %v", back, err)
	}
}

func FuzzCanonicalTargets(f *testing.F) {
	f.Add("nc/linux-amd64/1.0.0/nc.tar.gz", `{"bc":{"component":"nc","features":[{"id":"x","text":"<&>"}]}}`, int64(10), int64(1800000000))
	f.Add("a/\"b\"/\\/\xff", `{"a":[1,"\u00e9",null,true,{"z":{},"a":[]}]}`, int64(-1), int64(0))
	f.Add("x", `1.5`, int64(0), int64(-62135596800))
	f.Fuzz(func(t *testing.T, path, custom string, length, unix int64) {
		var c *json.RawMessage
		if custom != "" {
			c = raw(custom)
		}
		sameCanonical(t, "fuzz", targetsWith(path, c, length, time.Unix(unix, 0).UTC()))
	})
}

// verifyBin gives go-tuf's VerifyDelegate verdict on every case.
func TestVerifyBinMatchesGoTUF(t *testing.T) {
	type signer struct {
		s   signature.Signer
		key *metadata.Key
		id  string
	}
	newSigner := func(ecdsaKey bool) signer {
		var s signature.Signer
		var pub any
		if ecdsaKey {
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			s, _ = signature.LoadECDSASignerVerifier(k, crypto.SHA256)
			pub = k.Public()
		} else {
			pk, k, _ := ed25519.GenerateKey(rand.Reader)
			s, _ = signature.LoadED25519SignerVerifier(k)
			pub = pk
		}
		key, err := metadata.KeyFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := key.ID()
		return signer{s, key, id}
	}
	a, b, c := newSigner(false), newSigner(true), newSigner(false)
	exp := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	delegator := func(threshold int, ss ...signer) *metadata.Metadata[metadata.TargetsType] {
		m := metadata.Targets(exp)
		d := &metadata.Delegations{Keys: map[string]*metadata.Key{}, SuccinctRoles: &metadata.SuccinctRoles{Threshold: threshold, BitLength: 4, NamePrefix: "bins"}}
		for _, s := range ss {
			d.Keys[s.id] = s.key
			d.SuccinctRoles.KeyIDs = append(d.SuccinctRoles.KeyIDs, s.id)
		}
		m.Signed.Delegations = d
		return m
	}
	bin := func(signedBy ...signer) *metadata.Metadata[metadata.TargetsType] {
		m := metadata.Targets(exp)
		m.Signed.Targets = targetsWith("nc/linux-amd64/1.0.0/nc.tar.gz", raw(`{"bc":{"component":"nc"}}`), 5, exp).Targets
		for _, s := range signedBy {
			if err := signTargets(m, s.s); err != nil {
				t.Fatal(err)
			}
		}
		return m
	}
	tampered := bin(a)
	tampered.Signed.Targets["nc/linux-amd64/1.0.0/nc.tar.gz"].Length++
	dup := bin(a)
	dup.Signatures = append(dup.Signatures, dup.Signatures[0])
	missingKey := delegator(1, a)
	missingKey.Signed.Delegations.SuccinctRoles.KeyIDs = append(missingKey.Signed.Delegations.SuccinctRoles.KeyIDs, "00ff")
	cases := []struct {
		name      string
		delegator *metadata.Metadata[metadata.TargetsType]
		bin       *metadata.Metadata[metadata.TargetsType]
		ok        bool
	}{
		{"ed25519", delegator(1, a), bin(a), true},
		{"ecdsa", delegator(1, b), bin(b), true},
		{"other key", delegator(1, a), bin(c), false},
		{"unsigned", delegator(1, a), bin(), false},
		{"tampered", delegator(1, a), tampered, false},
		{"threshold 2 of 1", delegator(2, a, b), bin(a), false},
		{"threshold 2 of 2", delegator(2, a, b), bin(a, b), true},
		{"duplicate signature", delegator(2, a, b), dup, false},
		{"threshold 0", delegator(0, a), bin(a), false},
		{"no keys", delegator(1), bin(a), false},
		{"key missing", missingKey, bin(a), false},
	}
	for _, tc := range cases {
		want := tc.delegator.VerifyDelegate("bins-3", tc.bin)
		got := verifyBin(tc.delegator, "bins-3", tc.bin)
		if (want == nil) != tc.ok || (got == nil) != tc.ok {
			t.Errorf("%s: go-tuf says %v, verifyBin says %v, want ok=%v", tc.name, want, got, tc.ok)
		}
	}
	// A go-tuf signature verifies with verifyBin and the other way round.
	m := bin()
	if _, err := m.Sign(a.s); err != nil {
		t.Fatal(err)
	}
	if err := verifyBin(delegator(1, a), "bins-3", m); err != nil {
		t.Fatalf("a signature made by go-tuf: %v", err)
	}
}

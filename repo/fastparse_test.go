package repo

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// sameAsGoTUF checks that parseTargets gives what go-tuf's parser gives:
// the same canonical signed bytes (what signatures cover), the same file
// when written again, and the same target paths.
func sameAsGoTUF(t *testing.T, name string, data []byte) {
	t.Helper()
	want, werr := metadata.Targets().FromBytes(data)
	got, gerr := parseTargets(data)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%s: go-tuf says %v, parseTargets says %v", name, werr, gerr)
	}
	if werr != nil {
		return
	}
	wc, err := cjson.EncodeCanonical(want.Signed)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := cjson.EncodeCanonical(got.Signed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(wc, gc) {
		t.Fatalf("%s: canonical forms differ:\n%s\n%s", name, wc, gc)
	}
	wb, _ := want.ToBytes(false)
	gb, _ := got.ToBytes(false)
	if !bytes.Equal(wb, gb) {
		t.Fatalf("%s: re-written files differ:\n%s\n%s", name, wb, gb)
	}
	for p, tf := range got.Signed.Targets {
		if tf.Path != p || want.Signed.Targets[p].Path != p {
			t.Fatalf("%s: target %s has path %q", name, p, tf.Path)
		}
	}
}

func TestParseTargetsMatchesGoTUF(t *testing.T) {
	m := metadata.Targets(time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC))
	m.Signed.Version = 7
	custom := json.RawMessage(`{"bc": {"component": "nc", "features": [{"id": "x", "text": "<b>&amp; é \u2028 \"q\" \\ \n"}], "n": 3, "ok": true, "none": null}}`)
	for i, p := range []string{"a/b/1.0.0/x.zip", "a/b/1.0.0/x.zip.p7s", "naïve/ü/1.0.0/ü.bin", "a/b/1.0.1/x y.zip"} {
		tf := metadata.TargetFile()
		tf.Path, tf.Length = p, int64(1000+i)
		tf.Hashes = metadata.Hashes{"sha256": bytes.Repeat([]byte{byte(i + 1)}, 32)}
		if i%2 == 0 {
			c := custom
			tf.Custom = &c
		}
		m.Signed.Targets[p] = tf
	}
	m.Signatures = []metadata.Signature{{KeyID: strings.Repeat("ab", 32), Signature: bytes.Repeat([]byte{7}, 64)}, {KeyID: strings.Repeat("cd", 32), Signature: []byte{1, 2}}}
	for _, pretty := range []bool{false, true} {
		data, err := m.ToBytes(pretty)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fastTargets(data); err != nil {
			t.Fatalf("the fast path refused what go-tuf writes (pretty=%v): %v", pretty, err)
		}
		sameAsGoTUF(t, "written by go-tuf", data)
	}
	// Succinct hashed-bin delegations, as in targets.json of a bins repository.
	withBins := metadata.Targets(time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC))
	withBins.Signed.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}, SuccinctRoles: &metadata.SuccinctRoles{
		KeyIDs: []string{strings.Repeat("ab", 32)}, Threshold: 1, BitLength: 9, NamePrefix: "bins",
	}}
	data, _ := withBins.ToBytes(false)
	if _, err := fastTargets(data); err != nil {
		t.Fatalf("the fast path refused delegations: %v", err)
	}
	sameAsGoTUF(t, "with delegations", data)

	base, _ := m.ToBytes(false)
	// Everything else goes to go-tuf's parser: unknown fields at each level
	// (kept as go-tuf keeps them), bad values, other types, trailing data.
	for name, edit := range map[string]func(string) string{
		"unknown top-level field": func(s string) string { return strings.Replace(s, `{"signatures"`, `{"x-extra":1,"signatures"`, 1) },
		"unknown signed field":    func(s string) string { return strings.Replace(s, `"_type"`, `"x-extra":[1,2],"_type"`, 1) },
		"unknown target field":    func(s string) string { return strings.Replace(s, `"length":1000`, `"x-extra":{},"length":1000`, 1) },
		"unknown signature field": func(s string) string { return strings.Replace(s, `"keyid"`, `"x-extra":"y","keyid"`, 1) },
		"empty hashes": func(s string) string {
			return strings.Replace(s, `"hashes":{"sha256":"0101010101010101010101010101010101010101010101010101010101010101"}`, `"hashes":{}`, 1)
		},
		"odd hex": func(s string) string { return strings.Replace(s, `"sig":"0102"`, `"sig":"010"`, 1) },
		"not hex": func(s string) string { return strings.Replace(s, `"sig":"0102"`, `"sig":"zz"`, 1) },
		"duplicate signature": func(s string) string {
			return strings.Replace(s, strings.Repeat("cd", 32), strings.Repeat("ab", 32), 1)
		},
		"other type":    func(s string) string { return strings.Replace(s, `"_type":"targets"`, `"_type":"snapshot"`, 1) },
		"bad expiry":    func(s string) string { return strings.Replace(s, `2027-01-02T03:04:05Z`, `tomorrow`, 1) },
		"float version": func(s string) string { return strings.Replace(s, `"version":7`, `"version":7.5`, 1) },
		"trailing data": func(s string) string { return s + `{}` },
		"not an object": func(string) string { return `[1,2]` },
		"truncated":     func(s string) string { return s[:len(s)/2] },
	} {
		edited := edit(string(base))
		if edited == string(base) {
			t.Fatalf("%s: the edit changed nothing", name)
		}
		sameAsGoTUF(t, name, []byte(edited))
	}
}

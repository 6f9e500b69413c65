package repo

import (
	"strings"
	"testing"
)

func TestGateManifest(t *testing.T) {
	f := Feature{ID: "phi-file-transfer", Title: "File transfer", Description: "Files may hold PHI.", Consent: ConsentPHIDevices}
	rel := &Release{Component: "notification-client", Version: "1.2.0", Platform: "linux-amd64", Features: []Feature{f}}
	sha := strings.Repeat("ab", 32)
	m, err := NewGateManifest(rel, sha)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseGateManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := parsed.Match(rel, sha); err != nil {
		t.Fatalf("a manifest must match its own release: %v", err)
	}
	lower := f
	lower.Consent = ConsentNone
	reworded := f
	reworded.Description += " Now friendlier."
	mismatches := []struct {
		name   string
		mutate func(r *Release) string
		want   string
	}{
		{"consent lowered", func(r *Release) string { r.Features = []Feature{lower}; return sha }, "differ from the code-signed"},
		{"feature dropped from the manifest's view", func(r *Release) string { r.Features = nil; return sha }, "differ"},
		{"text reworded", func(r *Release) string { r.Features = []Feature{reworded}; return sha }, "differ"},
		{"another version", func(r *Release) string { r.Version = "1.3.0"; return sha }, "is for notification-client 1.2.0"},
		{"another platform", func(r *Release) string { r.Platform = "windows-amd64"; return sha }, "is for"},
		{"another artifact", func(r *Release) string { return strings.Repeat("cd", 32) }, "artifact sha256"},
	}
	for _, tc := range mismatches {
		t.Run(tc.name, func(t *testing.T) {
			r := *rel
			s := tc.mutate(&r)
			if err := parsed.Match(&r, s); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Match = %v, want %q", err, tc.want)
			}
		})
	}
	bad := []struct{ name, data string }{
		{"unknown field", `{"_type":"bcupdate-gate","component":"a","version":"1.0.0","platform":"linux-amd64","artifact_sha256":"` + sha + `","features":[],"extra":1}`},
		{"wrong type", `{"_type":"other","component":"a","version":"1.0.0","platform":"linux-amd64","artifact_sha256":"` + sha + `","features":[]}`},
		{"bad sha", `{"_type":"bcupdate-gate","component":"a","version":"1.0.0","platform":"linux-amd64","artifact_sha256":"x","features":[]}`},
		{"bad consent", `{"_type":"bcupdate-gate","component":"a","version":"1.0.0","platform":"linux-amd64","artifact_sha256":"` + sha + `","features":[{"id":"f","title":"t","description":"d","consent":"maybe"}]}`},
		{"trailing data", `{"_type":"bcupdate-gate","component":"a","version":"1.0.0","platform":"linux-amd64","artifact_sha256":"` + sha + `","features":[]} {}`},
		{"too large", `{"_type":"` + strings.Repeat("x", MaxGateManifestSize) + `"}`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseGateManifest([]byte(tc.data)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	g := NewGate(m, []byte("sig"))
	gm, gs, err := g.Decode()
	if err != nil || string(gm) != string(m) || string(gs) != "sig" {
		t.Fatalf("Decode: %v", err)
	}
	if _, _, err := (&Gate{Manifest: "!!", Signature: ""}).Decode(); err == nil {
		t.Fatal("bad base64 accepted")
	}
	var nilGate *Gate
	if _, _, err := nilGate.Decode(); err == nil {
		t.Fatal("nil gate decoded")
	}
}

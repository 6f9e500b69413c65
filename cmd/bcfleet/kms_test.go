package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet/wire"
	"github.com/beckmanconnect/bcupdate/internal/kmstest"
)

// An operator with the KEK in AWS KMS (a real local-kms): serve seals
// the enrollee under it; devices list --email and device show, each a
// process of its own, open it again and find and read the enrollee.
func TestOperatorKMS(t *testing.T) {
	srv := kmstest.Start(t)
	kmstest.Env(t)
	arn := srv.Key(t)
	srv.Alias(t, "bcfleet", arn)
	kek := srv.URI("alias/bcfleet")
	db := "sqlite:" + filepath.Join(t.TempDir(), "fleet.db")
	code, out, errs := bcfleet(t, "token", "create", "--db", db, "--site", "lab-1")
	if code != 0 {
		t.Fatalf("token create: %d %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	url := serve(t, db, kek)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	body, _ := json.Marshal(wire.EnrollRequest{Token: lines[len(lines)-1], PublicKey: pub, Enrollee: wire.Enrollee{Email: "ann.lee@hospital.example", Name: "Ann Lee"},
		Instrument: wire.Instrument{Model: "Navios EX", ID: "INST-4711", Serial: "SN-4711"}, AgentVersion: "1.0.0", Time: time.Now()})
	status, resp := postSigned(t, url+wire.EnrollPath, body, map[string]string{wire.SignatureHeader: wire.SignEnroll(priv, body)})
	if status != 200 {
		t.Fatalf("enroll: %d %s", status, resp)
	}
	var er wire.EnrollResponse
	json.Unmarshal([]byte(resp), &er)
	code, out, errs = bcfleet(t, "devices", "list", "--db", db, "--kek", kek, "--email", "Ann.Lee@hospital.example")
	if code != 0 || !strings.Contains(out, er.DeviceID) {
		t.Fatalf("devices list --email with a KMS KEK: %d %s %s", code, out, errs)
	}
	code, out, errs = bcfleet(t, "device", "show", er.DeviceID, "--db", db, "--kek", srv.URI(arn))
	if code != 0 || !strings.Contains(out, "ann.lee@hospital.example") {
		t.Fatalf("device show with a KMS KEK: %d %s %s", code, out, errs)
	}
	for _, tc := range []struct {
		kek  string
		code int
		want string
	}{
		{"awskms:///alias/bcfleet?endpoint=http://kms.example", 2, "plain http only on loopback"},
		{srv.URI("alias/none"), 1, "KMS key alias/none not found"},
	} {
		code, _, errs := bcfleet(t, "device", "show", er.DeviceID, "--db", db, "--kek", tc.kek)
		if code != tc.code || !strings.Contains(errs, tc.want) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("--kek %s: %d %q, want %d and one line %q", tc.kek, code, errs, tc.code, tc.want)
		}
	}
}

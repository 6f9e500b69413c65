package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet/wire"
	"github.com/beckmanconnect/bcupdate/internal/clitest"
	"github.com/beckmanconnect/bcupdate/internal/fleettest"
)

// bcfleet runs the program in process and returns its exit code and
// output.
func bcfleet(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"bcfleet"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpConventions(t *testing.T) {
	t.Chdir(t.TempDir())
	clitest.CheckHelp(t, newApp(io.Discard, io.Discard), func(args ...string) (int, string, string) {
		return bcfleet(t, args...)
	})
}

// syncBuffer is a bytes.Buffer safe to read while serve writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve starts bcfleet serve on a free loopback port until the test ends
// and returns its URL.
func serve(t *testing.T, db, kek string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := &syncBuffer{}, &syncBuffer{}
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"bcfleet", "serve", "--db", db, "--kek", kek, "--addr", "127.0.0.1:0"}, out, errb)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("bcfleet serve ended with %d: %s", code, errb.String())
		}
	})
	re := regexp.MustCompile(`serving devices at (http://127\.0\.0\.1:\d+)`)
	for range 500 {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case code := <-done:
			t.Fatalf("bcfleet serve ended with %d: %s", code, errb.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("bcfleet serve did not start: %s %s", out.String(), errb.String())
	return ""
}

func postSigned(t *testing.T, url string, body []byte, h map[string]string) (int, string) {
	t.Helper()
	code, b := fleettest.Post(t, url, body, h)
	return code, string(b)
}

// The operator's whole day: a key, a token, a server, a device that
// enrolls and reports, then list, show (in the access log), rollout,
// revoke (its next report is refused), and the access log's check.
func TestOperatorFlow(t *testing.T) {
	dir := t.TempDir()
	kek := filepath.Join(dir, "kek")
	db := "sqlite:" + filepath.Join(dir, "fleet.db")
	if code, _, errs := bcfleet(t, "kek", "generate", kek); code != 0 {
		t.Fatalf("kek generate: %d %s", code, errs)
	}
	if fi, _ := os.Stat(kek); fi.Mode().Perm() != 0o600 {
		t.Fatalf("the key-encryption key's mode is %v", fi.Mode())
	}
	if code, _, errs := bcfleet(t, "kek", "generate", kek); code != 2 || !strings.Contains(errs, "exists") {
		t.Fatalf("kek generate over a key: %d %s", code, errs)
	}
	code, out, errs := bcfleet(t, "token", "create", "--db", db, "--site", "lab-1", "--expires", "7d", "--uses", "2")
	if code != 0 {
		t.Fatalf("token create: %d %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := lines[len(lines)-1]
	if !strings.HasPrefix(token, "bcf_") || strings.Contains(token, " ") {
		t.Fatalf("token create's last line is %q, want the token alone", token)
	}
	for _, bad := range [][]string{
		{"token", "create", "--db", db, "--site", "lab-1", "--expires", "100d"},
		{"token", "create", "--db", db, "--site", "Lab 1"},
		{"token", "create", "--db", db, "--site", "lab-1", "--uses", "0"},
		{"token", "create", "--db", "mysql://x", "--site", "lab-1"},
	} {
		if code, _, errs := bcfleet(t, bad...); code != 2 || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("%v: exit %d, %q; want 2 and one line", bad, code, errs)
		}
	}

	url := serve(t, db, "file://"+kek)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	body, _ := json.Marshal(wire.EnrollRequest{Token: token, PublicKey: pub, Enrollee: wire.Enrollee{Email: "ann.lee@hospital.example", Name: "Ann Lee"},
		Instrument: wire.Instrument{Model: "Navios EX", ID: "INST-4711", Serial: "SN-4711"}, AgentVersion: "1.0.0", Time: time.Now()})
	status, resp := postSigned(t, url+wire.EnrollPath, body, map[string]string{wire.SignatureHeader: wire.SignEnroll(priv, body)})
	if status != 200 {
		t.Fatalf("enroll: %d %s", status, resp)
	}
	var er wire.EnrollResponse
	json.Unmarshal([]byte(resp), &er)
	report := func(counter uint64, c wire.Component) (int, string) {
		body, _ := json.Marshal(wire.Report{DeviceID: er.DeviceID, Counter: counter, Time: time.Now(), Digest: "d", AgentVersion: "1.0.0",
			PollInterval: "1m", Components: []wire.Component{c}, TUF: &wire.TUF{RootVersion: 1, TimestampVersion: 3}})
		return postSigned(t, url+wire.ReportPath, body, map[string]string{wire.DeviceHeader: er.DeviceID, wire.SignatureHeader: wire.SignReport(priv, body)})
	}
	if status, resp := report(1, wire.Component{Name: "notification-client", Installed: "1.1.0", Channel: "stable", State: "up-to-date"}); status != 200 {
		t.Fatalf("report: %d %s", status, resp)
	}

	code, out, errs = bcfleet(t, "devices", "list", "--db", db, "--json")
	if code != 0 || !strings.Contains(out, er.DeviceID) || !strings.Contains(out, `"online": true`) || strings.Contains(out, "ann.lee") {
		t.Fatalf("devices list --json: %d %s %s", code, out, errs)
	}
	code, out, _ = bcfleet(t, "devices", "list", "--db", db, "--offline")
	if code != 0 || strings.Contains(out, er.DeviceID) {
		t.Fatalf("devices list --offline lists an online device: %s", out)
	}
	code, out, _ = bcfleet(t, "devices", "list", "--db", db, "--kek", "file://"+kek, "--email", "Ann.Lee@hospital.example")
	if code != 0 || !strings.Contains(out, er.DeviceID) {
		t.Fatalf("devices list --email: %d %s", code, out)
	}
	for _, f := range []struct {
		args   []string
		listed bool
	}{
		{[]string{"--component", "notification-client"}, true},
		{[]string{"--component", "notification-client", "--version", "1.1.0"}, true},
		{[]string{"--component", "notification-client", "--version", "1.0.0"}, false},
		{[]string{"--component", "notification-client", "--state", "up-to-date"}, true},
		{[]string{"--component", "notification-client", "--state", "failed"}, false},
		{[]string{"--component", "bcagent"}, false},
		{[]string{"--site", "lab-1"}, true},
		{[]string{"--site", "lab-2"}, false},
	} {
		code, out, errs := bcfleet(t, append([]string{"devices", "list", "--db", db, "--json"}, f.args...)...)
		if code != 0 || strings.Contains(out, er.DeviceID) != f.listed {
			t.Errorf("devices list %v: %d, listed %v, want %v (%s)", f.args, code, strings.Contains(out, er.DeviceID), f.listed, errs)
		}
	}
	code, out, errs = bcfleet(t, "device", "show", er.DeviceID, "--db", db, "--kek", "file://"+kek)
	if code != 0 || !strings.Contains(out, "ann.lee@hospital.example") || !strings.Contains(out, "INST-4711") {
		t.Fatalf("device show: %d %s %s", code, out, errs)
	}
	code, out, errs = bcfleet(t, "rollout", "status", "notification-client", "1.1.0", "--db", db, "--json")
	var rs struct{ Targeted, Installed int }
	if json.Unmarshal([]byte(out), &rs); code != 0 || rs.Targeted != 1 || rs.Installed != 1 {
		t.Fatalf("rollout status: %d %s %s", code, out, errs)
	}
	if code, out, errs := bcfleet(t, "device", "revoke", er.DeviceID, "--db", db, "--json"); code != 0 || !strings.Contains(out, `"revoked": "`+er.DeviceID+`"`) {
		t.Fatalf("device revoke --json: %d %s %s", code, out, errs)
	}
	if status, resp := report(2, wire.Component{Name: "notification-client", Installed: "1.1.0", Channel: "stable", State: "up-to-date"}); status != 410 || !strings.Contains(resp, "revoked") {
		t.Fatalf("a revoked device's report: %d %s", status, resp)
	}
	code, out, errs = bcfleet(t, "access", "list", "--db", db, "--json")
	for _, action := range []string{"token.create", "devices.find-by-email", "device.show", "device.revoke"} {
		if code != 0 || !strings.Contains(out, action) {
			t.Errorf("access list lacks %s: %d %s %s", action, code, out, errs)
		}
	}
	if code, out, errs := bcfleet(t, "access", "verify", "--db", db); code != 0 || !strings.Contains(out, "verified: 4 entries") {
		t.Fatalf("access verify: %d %s %s", code, out, errs)
	}
	if code, out, errs := bcfleet(t, "access", "verify", "--db", db, "--json"); code != 0 || !strings.Contains(out, `"verified": true`) || !strings.Contains(out, `"entries": 4`) {
		t.Fatalf("access verify --json: %d %s %s", code, out, errs)
	}
	code, out, _ = bcfleet(t, "token", "list", "--db", db, "--json")
	var toks []struct{ ID string }
	if json.Unmarshal([]byte(out), &toks); code != 0 || len(toks) != 1 {
		t.Fatalf("token list --json: %d %s", code, out)
	}
	if code, out, errs := bcfleet(t, "token", "revoke", toks[0].ID, "--db", db, "--json"); code != 0 || !strings.Contains(out, `"revoked": "`+toks[0].ID+`"`) {
		t.Fatalf("token revoke --json: %d %s %s", code, out, errs)
	}
	if code, _, errs := bcfleet(t, "token", "revoke", "tok-nope", "--db", db, "--json"); code != 2 || !strings.Contains(errs, "no token") {
		t.Fatalf("token revoke of no token: %d %s", code, errs)
	}
	// Metrics count what was received and rejected.
	mresp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{`bcfleet_reports_received_total`, `reason="revoked"`, "bcfleet_devices_online ", `bcfleet_devices_enrolled_total 1`, `bcfleet_store_seconds_count{op="save_report"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestServeRefusals(t *testing.T) {
	dir := t.TempDir()
	kek := filepath.Join(dir, "kek")
	bcfleet(t, "kek", "generate", kek)
	db := "sqlite:" + filepath.Join(dir, "fleet.db")
	open := filepath.Join(dir, "secret")
	if err := os.WriteFile(open, []byte("s3cret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr", "0.0.0.0:0"}, "plain http is served only on loopback"},
		{[]string{"--addr", "127.0.0.1:0", "--tls-cert", "x.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--addr", "127.0.0.1:0", "--oidc-client-id", "x"}, "--oidc-client-id needs --oidc-issuer"},
		{[]string{"--addr", "127.0.0.1:0", "--oidc-issuer", "http://sso.example", "--oidc-client-id", "x"}, "plain http only on loopback"},
		{[]string{"--addr", "127.0.0.1:0", "--public-url", "https://fleet.example"}, "they need --oidc-issuer"},
		{[]string{"--addr", "127.0.0.1:0", "--oidc-issuer", "http://127.0.0.1:1", "--oidc-client-id", "x", "--public-url", "http://fleet.example"}, "--public-url \"http://fleet.example\": want the https://HOST[:PORT]"},
		{[]string{"--addr", "127.0.0.1:0", "--oidc-issuer", "http://127.0.0.1:1", "--oidc-client-id", "x", "--public-url", "https://fleet.example/dashboard"}, "with no path"},
		{[]string{"--addr", "127.0.0.1:0", "--oidc-issuer", "http://127.0.0.1:1", "--oidc-client-id", "x", "--oidc-client-secret-file", filepath.Join(dir, "nosecret")}, "--oidc-client-secret-file " + filepath.Join(dir, "nosecret")},
		{[]string{"--addr", "127.0.0.1:0", "--oidc-issuer", "http://127.0.0.1:1", "--oidc-client-id", "x", "--oidc-client-secret-file", open}, "is readable by others (mode 0644): chmod 600 it"},
	} {
		args := append([]string{"serve", "--db", db, "--kek", "file://" + kek}, tc.args...)
		if code, _, errs := bcfleet(t, args...); code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: %d %s, want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
	if code, _, errs := bcfleet(t, "serve", "--db", db, "--kek", "file://"+filepath.Join(dir, "nokek")); code == 0 || !strings.Contains(errs, "nokek") {
		t.Errorf("a missing KEK: %d %s", code, errs)
	}
}

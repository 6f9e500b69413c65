package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/sqlstore"
	"github.com/beckmanconnect/bcupdate/publisher"
)

// fleetEnv is a real fleet service (SQLite) that the test can take down.
type fleetEnv struct {
	store fleet.Store
	kek   fleet.KEK
	srv   *httptest.Server
	down  atomic.Bool
	seen  atomic.Int64 // report requests that reached the service
	// loseRotation: a key rotation is taken but its answer is lost (504);
	// noRotation: the service (or a proxy) refuses /v1/rotate (404).
	loseRotation, noRotation atomic.Bool
}

func newFleetEnv(t *testing.T) *fleetEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(dir, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fleet.GenerateKEK(filepath.Join(dir, "kek"))
	kek, err := fleet.OpenKEK(filepath.Join(dir, "kek"))
	if err != nil {
		t.Fatal(err)
	}
	e := &fleetEnv{store: st, kek: kek}
	h := (&fleet.Server{Store: st, KEK: kek}).Handler()
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.down.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/v1/report" {
			e.seen.Add(1)
		}
		if r.URL.Path == "/v1/rotate" && e.noRotation.Load() {
			http.Error(w, `{"error":"not found","reason":"malformed"}`, http.StatusNotFound)
			return
		}
		if r.URL.Path == "/v1/rotate" && e.loseRotation.Load() {
			h.ServeHTTP(httptest.NewRecorder(), r)
			http.Error(w, "gateway timeout", http.StatusGatewayTimeout)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *fleetEnv) token(t *testing.T) string {
	t.Helper()
	secret, _, err := fleet.CreateToken(context.Background(), e.store, "test", "lab-1", time.Hour, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func (e *fleetEnv) device(t *testing.T, id string) *fleet.Device {
	t.Helper()
	d, err := e.store.Device(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The device side end to end: enroll, reports (full, then heartbeats),
// the service away (a queued report goes later, in order), a report that
// carries no personal data, key rotation by re-enrolling, and a revoked
// device that stops reporting (exit 3).
func TestFleetReporting(t *testing.T) {
	fx := newFixture(t)
	fx.publish("1.0.0")
	srv := httptest.NewServer(publisher.Handler(fx.store, nil))
	defer srv.Close()
	state := filepath.Join(fx.dir, "agent")
	if code, _, errs := bcagent(t, "--state", state, "init", "--repo-url", srv.URL, "--root", filepath.Join(fx.store.Dir, "metadata", "1.root.json"),
		"--trust", fx.pki.TrustDir, "--component", "notification-client", "--device-id", "INST-1", "--device-model", "DxH 900", "--platform", "linux-amd64"); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	fe := newFleetEnv(t)
	enroll := func(token string) (int, string, string) {
		return bcagent(t, "--state", state, "enroll", "--fleet", fe.srv.URL, "--token", token, "--email", "ann.lee@hospital.example",
			"--name", "Ann Lee", "--instrument-model", "DxH 900", "--instrument-id", "4711", "--serial", "SN-4711")
	}
	if code, _, errs := enroll("bcf_wrong"); code != 2 || !strings.Contains(errs, "refused the enrollment") {
		t.Fatalf("enroll with a bad token: %d %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(state, "fleet.json")); !os.IsNotExist(err) {
		t.Fatal("a refused enrollment left fleet.json")
	}
	if code, _, errs := bcagent(t, "--state", state, "enroll", "--fleet", "http://fleet.example.com", "--token", "x", "--email", "a@b.example",
		"--name", "n", "--instrument-model", "m", "--instrument-id", "i", "--serial", "s"); code != 2 || !strings.Contains(errs, "plain http is allowed only to loopback") {
		t.Fatalf("enroll over plain http: %d %s", code, errs)
	}
	code, out, errs := enroll(fe.token(t))
	if code != 0 || !strings.Contains(out, "enrolled as device dev-") {
		t.Fatalf("enroll: %d %s %s", code, out, errs)
	}
	var fs struct {
		DeviceID string `json:"device_id"`
	}
	data, _ := os.ReadFile(filepath.Join(state, "fleet.json"))
	json.Unmarshal(data, &fs)
	if fi, err := os.Stat(filepath.Join(state, "fleet.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("fleet.key: %v %v", fi, err)
	}
	var cfg struct {
		AllowedHosts []string `json:"allowed_hosts"`
	}
	data, _ = os.ReadFile(filepath.Join(state, "config.json"))
	json.Unmarshal(data, &cfg)
	if len(cfg.AllowedHosts) != 1 || !strings.Contains(fe.srv.URL, cfg.AllowedHosts[0]) {
		t.Fatalf("the fleet host did not join allowed_hosts: %v", cfg.AllowedHosts)
	}

	// A service cycle: check, stage, apply, then the report.
	if code, _, errs := bcagent(t, "--state", state, "run", "--cycles", "1"); code != 0 {
		t.Fatalf("run: %d %s", code, errs)
	}
	d := fe.device(t, fs.DeviceID)
	if len(d.State.Components) != 1 || d.State.Components[0].Name != "notification-client" || d.State.Components[0].State == "" ||
		d.State.TUF.RootVersion != 1 || d.State.Audit.Seq == 0 || d.State.AgentVersion == "" {
		t.Fatalf("the service has %+v", d.State)
	}
	// The channel pointer the agent verified: 1.0.0 for every device (no
	// percent in the pointer).
	if c := d.State.Components[0]; c.ChannelRelease != "1.0.0" || c.RolloutPercent != 100 {
		t.Fatalf("the channel pointer as reported: %q at %d%%", c.ChannelRelease, c.RolloutPercent)
	}
	first := d.State.Counter
	// Nothing changed: a heartbeat.
	if code, out, errs := bcagent(t, "--state", state, "report"); code != 0 || !strings.Contains(out, "heartbeat") {
		t.Fatalf("report: %d %s %s", code, out, errs)
	}
	if d = fe.device(t, fs.DeviceID); d.State.Counter <= first {
		t.Fatalf("the heartbeat's counter %d is not above %d", d.State.Counter, first)
	}
	// The service is away while the state changes: the report waits.
	fe.down.Store(true)
	if code, _, errs := bcagent(t, "--state", state, "pin", "--component", "notification-client", "--version", "1.0.0"); code != 0 {
		t.Fatal(errs)
	}
	if code, _, errs := bcagent(t, "--state", state, "report"); code != 1 || !strings.Contains(errs, "503") {
		t.Fatalf("report with the service away: %d %s", code, errs)
	}
	_, out, _ = bcagent(t, "--state", state, "status")
	if !strings.Contains(out, "fleet "+fe.srv.URL) || !strings.Contains(out, "1 report(s) queued") || !strings.Contains(out, "last attempt failed") {
		t.Fatalf("status with a queued report: %s", out)
	}
	// An update never waits for the fleet: check works with it away.
	if code, _, errs := bcagent(t, "--state", state, "check"); code != 0 {
		t.Fatalf("check with the fleet away: %s", errs)
	}
	fe.down.Store(false)
	before := fe.seen.Load()
	if code, out, errs := bcagent(t, "--state", state, "report"); code != 0 || !strings.Contains(out, "sent 2 report(s)") {
		t.Fatalf("report after the service is back: %d %s %s", code, out, errs)
	}
	if fe.seen.Load()-before != 2 {
		t.Fatalf("%d requests for a queued and a new report", fe.seen.Load()-before)
	}
	if d = fe.device(t, fs.DeviceID); d.State.Components[0].Pinned != "1.0.0" {
		t.Fatalf("the pin did not reach the service: %+v", d.State.Components[0])
	}
	// A pinned component follows no channel: no pointer is reported.
	if c := d.State.Components[0]; c.ChannelRelease != "" || c.RolloutPercent != 0 {
		t.Fatalf("a pinned component reports the channel pointer %q at %d%%", c.ChannelRelease, c.RolloutPercent)
	}
	_, out, _ = bcagent(t, "--state", state, "status", "--json")
	var st struct {
		Fleet struct {
			DeviceID     string     `json:"device_id"`
			URL          string     `json:"url"`
			LastAccepted *time.Time `json:"last_report_accepted"`
			Queued       int        `json:"queued"`
		} `json:"fleet"`
	}
	json.Unmarshal([]byte(out), &st)
	if st.Fleet.DeviceID != fs.DeviceID || st.Fleet.URL != fe.srv.URL || st.Fleet.LastAccepted == nil || st.Fleet.Queued != 0 {
		t.Fatalf("status --json fleet: %s", out)
	}
	// No personal data in what the device sent: the stored state (what
	// the reports said) holds neither the enrollee nor a path.
	stored, _ := json.Marshal(d.State)
	for _, s := range []string{"ann.lee", "Ann Lee", state} {
		if strings.Contains(string(stored), s) {
			t.Errorf("a report carried %q: %s", s, stored)
		}
	}

	// Key rotation: enrolling again makes a new key; the old device ID
	// is retired.
	oldKey, _ := os.ReadFile(filepath.Join(state, "fleet.key"))
	if code, _, errs := enroll(fe.token(t)); code != 0 {
		t.Fatalf("re-enroll: %s", errs)
	}
	newKey, _ := os.ReadFile(filepath.Join(state, "fleet.key"))
	data, _ = os.ReadFile(filepath.Join(state, "fleet.json"))
	var fs2 struct {
		DeviceID string `json:"device_id"`
	}
	json.Unmarshal(data, &fs2)
	if string(oldKey) == string(newKey) || fs2.DeviceID == fs.DeviceID || fe.device(t, fs.DeviceID).Revoked == nil || fe.device(t, fs2.DeviceID).Replaces != fs.DeviceID {
		t.Fatal("re-enrollment did not rotate the key and retire the old device")
	}
	if code, _, errs := bcagent(t, "--state", state, "report"); code != 0 {
		t.Fatalf("report with the new key: %s", errs)
	}

	// Key rotation without a token: same device ID, a new key. With the
	// service away it is not finished, and the next report finishes it
	// first.
	keyBefore, _ := os.ReadFile(filepath.Join(state, "fleet.key"))
	fe.down.Store(true)
	if code, _, errs := bcagent(t, "--state", state, "rotate-key"); code != 1 || !strings.Contains(errs, "key rotation not finished") {
		t.Fatalf("rotate-key with the service away: %d %s", code, errs)
	}
	if k, _ := os.ReadFile(filepath.Join(state, "fleet.key")); string(k) != string(keyBefore) {
		t.Fatal("an unfinished rotation replaced the key")
	}
	pendingKey, err := os.ReadFile(filepath.Join(state, "fleet.key.new"))
	if err != nil {
		t.Fatalf("the new key is not kept for the retry: %v", err)
	}
	fe.down.Store(false)
	if code, _, errs := bcagent(t, "--state", state, "report"); code != 0 {
		t.Fatalf("report after an unfinished rotation: %d %s", code, errs)
	}
	if k, _ := os.ReadFile(filepath.Join(state, "fleet.key")); string(k) != string(pendingKey) {
		t.Fatal("the report did not finish the rotation")
	}
	if code, out, errs := bcagent(t, "--state", state, "rotate-key"); code != 0 || !strings.Contains(out, "has a new key") {
		t.Fatalf("rotate-key: %d %s %s", code, out, errs)
	}
	if k, _ := os.ReadFile(filepath.Join(state, "fleet.key")); string(k) == string(pendingKey) {
		t.Fatal("rotate-key did not change the key")
	}
	if d := fe.device(t, fs2.DeviceID); d.Revoked != nil {
		t.Fatal("rotation revoked the device")
	}
	if code, _, errs := bcagent(t, "--state", state, "report"); code != 0 {
		t.Fatalf("report with the rotated key: %s", errs)
	}
	if _, err := os.Stat(filepath.Join(state, "fleet.key.new")); !os.IsNotExist(err) {
		t.Fatalf("fleet.key.new left after rotation: %v", err)
	}

	// The service takes a rotation but its answer is lost, and sending
	// it again is refused: the agent keeps both keys, and the next
	// report, refused with the old key, goes with the new one, which the
	// agent then keeps. Enrolling meanwhile is refused (it would lose
	// the new key) unless --new-device.
	fe.loseRotation.Store(true)
	if code, _, errs := bcagent(t, "--state", state, "rotate-key"); code != 1 || !strings.Contains(errs, "not finished") {
		t.Fatalf("rotate-key with the answer lost: %d %s", code, errs)
	}
	fe.loseRotation.Store(false)
	taken, _ := os.ReadFile(filepath.Join(state, "fleet.key.new"))
	if code, _, errs := enroll(fe.token(t)); code != 2 || !strings.Contains(errs, "key rotation of device") {
		t.Fatalf("enroll during an unfinished rotation: %d %s", code, errs)
	}
	fe.noRotation.Store(true)
	if code, _, errs := bcagent(t, "--state", state, "report"); code != 0 {
		t.Fatalf("report after a lost rotation answer: %d %s", code, errs)
	}
	fe.noRotation.Store(false)
	if k, _ := os.ReadFile(filepath.Join(state, "fleet.key")); string(k) != string(taken) {
		t.Fatal("the agent did not take up the key the service holds")
	}
	if code, _, errs := bcagent(t, "--state", state, "report"); code != 0 {
		t.Fatalf("report with the key the service holds: %d %s", code, errs)
	}

	// Revoked: told so, exit 3, stops reporting; updating goes on.
	if err := fleet.RevokeDevice(context.Background(), fe.store, "test", fs2.DeviceID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := bcagent(t, "--state", state, "report"); code != 3 || !strings.Contains(errs, "revoked this device") {
		t.Fatalf("a revoked device's report: %d %s", code, errs)
	}
	before = fe.seen.Load()
	if code, _, errs := bcagent(t, "--state", state, "run", "--cycles", "1"); code != 0 {
		t.Fatalf("run on a revoked device: %d %s", code, errs)
	}
	if fe.seen.Load() != before {
		t.Fatal("a revoked device still reports")
	}
	if code, out, _ := bcagent(t, "--state", state, "status"); code != 1 || !strings.Contains(out, "REVOKED") {
		t.Fatalf("status of a revoked device: %d %s", code, out)
	}
	// Enrolled afresh (--new-device): a new device ID that replaces
	// nothing; reporting resumes.
	code, out, errs = bcagent(t, "--state", state, "enroll", "--new-device", "--fleet", fe.srv.URL, "--token", fe.token(t), "--email", "ann.lee@hospital.example",
		"--name", "Ann Lee", "--instrument-model", "DxH 900", "--instrument-id", "4711", "--serial", "SN-4711", "--json")
	var fs3 struct {
		DeviceID string `json:"device_id"`
	}
	if json.Unmarshal([]byte(out), &fs3); code != 0 || fs3.DeviceID == "" || fs3.DeviceID == fs2.DeviceID || fe.device(t, fs3.DeviceID).Replaces != "" {
		t.Fatalf("enroll --new-device: %d %s %s", code, out, errs)
	}
	if code, _, errs := bcagent(t, "--state", state, "report"); code != 0 {
		t.Fatalf("report after enrolling afresh: %d %s", code, errs)
	}
}

// rewriteAudit rewrites the agent's audit log as a local attacker who can
// write the state directory would: entry 1 says something else, every
// line after it is re-chained, extra forged entries are appended, and the
// head is rewritten to match, so the log verifies on the PC.
func rewriteAudit(t *testing.T, state string, edit bool, extra int) {
	t.Helper()
	type line struct {
		Seq   int64           `json:"seq"`
		Prev  string          `json:"prev"`
		Entry json.RawMessage `json:"entry"`
	}
	data, err := os.ReadFile(filepath.Join(state, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []line
	for _, raw := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var l line
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	if edit {
		lines[0].Entry = json.RawMessage(`{"time":"2026-01-01T00:00:00Z","event":"config-changed","by":"nobody","detail":"rewritten"}`)
	}
	for i := 0; i < extra; i++ {
		lines = append(lines, line{Seq: int64(len(lines) + 1), Entry: json.RawMessage(`{"time":"2026-01-01T00:00:00Z","event":"config-changed","by":"nobody","detail":"forged"}`)})
	}
	var out strings.Builder
	prev := ""
	for _, l := range lines {
		l.Prev = prev
		b, _ := json.Marshal(l)
		sum := sha256.Sum256(b)
		prev = hex.EncodeToString(sum[:])
		out.Write(b)
		out.WriteByte('\n')
	}
	if err := os.WriteFile(filepath.Join(state, "audit.jsonl"), []byte(out.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	head, _ := json.Marshal(map[string]any{"seq": len(lines), "hash": prev})
	if err := os.WriteFile(filepath.Join(state, "audit.jsonl.head"), head, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestFleetSeesARewrittenLog: a log rewritten on the PC and grown past
// the head the service had verifies on the PC, but the next report
// vouches for the old head with another hash and the service flags the
// device. An honest growth is not flagged, and the service asks for (and
// gets) what a device with a forgetful fleet.json did not vouch for.
func TestFleetSeesARewrittenLog(t *testing.T) {
	fx := newFixture(t)
	fx.publish("1.0.0")
	srv := httptest.NewServer(publisher.Handler(fx.store, nil))
	defer srv.Close()
	state := filepath.Join(fx.dir, "agent")
	if code, _, errs := bcagent(t, "--state", state, "init", "--repo-url", srv.URL, "--root", filepath.Join(fx.store.Dir, "metadata", "1.root.json"),
		"--trust", fx.pki.TrustDir, "--component", "notification-client", "--device-id", "INST-1", "--device-model", "DxH 900", "--platform", "linux-amd64"); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	fe := newFleetEnv(t)
	if code, _, errs := bcagent(t, "--state", state, "enroll", "--fleet", fe.srv.URL, "--token", fe.token(t), "--email", "ann.lee@hospital.example",
		"--name", "Ann Lee", "--instrument-model", "DxH 900", "--instrument-id", "4711", "--serial", "SN-4711"); code != 0 {
		t.Fatalf("enroll: %s", errs)
	}
	var fs struct {
		DeviceID string `json:"device_id"`
	}
	data, _ := os.ReadFile(filepath.Join(state, "fleet.json"))
	json.Unmarshal(data, &fs)
	report := func(step string) *fleet.Device {
		t.Helper()
		if code, _, errs := bcagent(t, "--state", state, "report"); code != 0 {
			t.Fatalf("%s: report: %d %s", step, code, errs)
		}
		return fe.device(t, fs.DeviceID)
	}
	if code, _, errs := bcagent(t, "--state", state, "run", "--cycles", "1"); code != 0 {
		t.Fatalf("run: %s", errs)
	}
	d := fe.device(t, fs.DeviceID)
	if d.State.Audit.Seq == 0 || len(d.State.Flags) != 0 {
		t.Fatalf("after the first cycle: audit %+v, flags %v", d.State.Audit, d.State.Flags)
	}

	// Honest growth (entries appended, nothing before them changed).
	rewriteAudit(t, state, false, 2)
	d2 := report("honest growth")
	if d2.State.Audit.Seq != d.State.Audit.Seq+2 || len(d2.State.Flags) != 0 || len(d2.State.Unvouched) != 0 {
		t.Fatalf("after honest growth: audit %+v, flags %v, unvouched %v", d2.State.Audit, d2.State.Flags, d2.State.Unvouched)
	}

	// fleet.json forgets what was reported: the service asks, and the
	// agent vouches at once, in the same run.
	var raw map[string]any
	data, _ = os.ReadFile(filepath.Join(state, "fleet.json"))
	json.Unmarshal(data, &raw)
	delete(raw, "reported")
	data, _ = json.Marshal(raw)
	os.WriteFile(filepath.Join(state, "fleet.json"), data, 0o600)
	rewriteAudit(t, state, false, 1)
	d3 := report("a forgetful fleet.json")
	if len(d3.State.Flags) != 0 || len(d3.State.Unvouched) != 0 || d3.State.Audit.Seq != d2.State.Audit.Seq+1 {
		t.Fatalf("after a vouch asked for: audit %+v, flags %v, unvouched %v", d3.State.Audit, d3.State.Flags, d3.State.Unvouched)
	}

	// A rollback by hand is counted as such in the rollout, not as a
	// failed install.
	expect(t, 0, nil, "--state", state, "apply")
	fx.publish("1.1.0")
	expect(t, 0, nil, "--state", state, "stage")
	expect(t, 0, []string{"installed 1.1.0"}, "--state", state, "apply")
	expect(t, 0, []string{"rolled back to 1.0.0"}, "--state", state, "rollback", "--component", "notification-client")
	rb := report("rolled back by hand")
	if r := fleet.Rollout([]fleet.Device{*rb}, "notification-client", "1.1.0", time.Now()); r.RolledBack != 1 || r.Failed != 0 {
		t.Fatalf("a rollback by hand counts as %+v", r)
	}
	d3 = rb

	// The rewrite: the log verifies on the PC …
	rewriteAudit(t, state, true, 3)
	if code, _, errs := bcagent(t, "--state", state, "audit", "verify"); code != 0 {
		t.Fatalf("the rewritten log should verify on the PC (the attacker rewrote the head too): %d %s", code, errs)
	}
	// … and the service sees it.
	d4 := report("rewritten")
	want := fmt.Sprintf("audit log forked: entry %d has another hash", d3.State.Audit.Seq)
	if len(d4.State.Flags) != 1 || !strings.Contains(d4.State.Flags[0], want) {
		t.Fatalf("after a rewrite: flags %v, want %q", d4.State.Flags, want)
	}
}

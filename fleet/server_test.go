package fleet_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet"
	"github.com/beckmanconnect/bcupdate/fleet/sqlstore"
	"github.com/beckmanconnect/bcupdate/fleet/wire"
	"github.com/beckmanconnect/bcupdate/internal/fleettest"
)

type env struct {
	store fleet.Store
	kek   fleet.KEK
	srv   *httptest.Server
	fs    *fleet.Server
	rej   map[string]int
	keys  map[string]ed25519.PrivateKey
	now   time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlstore.Open(ctx, "sqlite:"+filepath.Join(dir, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := fleet.GenerateKEK(filepath.Join(dir, "kek")); err != nil {
		t.Fatal(err)
	}
	kek, err := fleet.OpenKEK(filepath.Join(dir, "kek"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{store: st, kek: kek, rej: map[string]int{}, keys: map[string]ed25519.PrivateKey{}, now: time.Now().UTC()}
	e.fs = &fleet.Server{Store: st, KEK: kek, Now: func() time.Time { return e.now }, Rejected: func(r string) { e.rej[r]++ }}
	e.srv = httptest.NewServer(e.fs.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) token(t *testing.T, site string, uses int, life time.Duration) string {
	t.Helper()
	secret, _, err := fleet.CreateToken(context.Background(), e.store, "test", site, life, uses, e.now)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func post(t *testing.T, url string, body []byte, headers map[string]string) (int, []byte) {
	t.Helper()
	return fleettest.Post(t, url, body, headers)
}

func enrollBody(t *testing.T, token, email string, pub ed25519.PublicKey) []byte {
	t.Helper()
	body, _ := json.Marshal(wire.EnrollRequest{Token: token, PublicKey: pub, Enrollee: wire.Enrollee{Email: email, Name: "Ann Lee"},
		Instrument: wire.Instrument{Model: "Navios EX", ID: "INST-0042", Serial: "SN123"}, AgentVersion: "1.0.0", Time: time.Now()})
	return body
}

// enroll enrolls a new device with a fresh key and token; it returns its ID.
func (e *env) enroll(t *testing.T, email string) string {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	body := enrollBody(t, e.token(t, "lab-1", 1, time.Hour), email, pub)
	code, resp := post(t, e.srv.URL+wire.EnrollPath, body, map[string]string{wire.SignatureHeader: wire.SignEnroll(priv, body)})
	if code != 200 {
		t.Fatalf("enroll: %d %s", code, resp)
	}
	var er wire.EnrollResponse
	json.Unmarshal(resp, &er)
	e.keys[er.DeviceID] = priv
	return er.DeviceID
}

func (e *env) report(t *testing.T, id string, r wire.Report) (int, string) {
	t.Helper()
	r.DeviceID = id
	body, _ := json.Marshal(r)
	key, ok := e.keys[id]
	if !ok { // a device this test did not enroll: some key
		_, key, _ = ed25519.GenerateKey(rand.Reader)
	}
	code, resp := post(t, e.srv.URL+wire.ReportPath, body, map[string]string{wire.DeviceHeader: id, wire.SignatureHeader: wire.SignReport(key, body)})
	return code, string(resp)
}

func full(counter uint64, installed string) wire.Report {
	return wire.Report{Counter: counter, Time: time.Now(), Digest: "d-" + installed, AgentVersion: "1.0.0", PollInterval: "1h",
		Components: []wire.Component{{Name: "notification-client", Installed: installed, Channel: "stable", State: "up-to-date"}},
		TUF:        &wire.TUF{RootVersion: 1, TimestampVersion: int64(counter)},
		Audit:      &wire.LogHead{Seq: int64(counter), Hash: "a" + installed}, Consent: &wire.LogHead{Seq: 1, Hash: "c1"}}
}

func TestEnroll(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.enroll(t, "ann.lee@hospital.example")
	d, err := e.store.Device(ctx, id)
	if err != nil || d.Site != "lab-1" || d.Instrument.Serial != "SN123" {
		t.Fatalf("device %+v %v", d, err)
	}
	if bytes.Contains(d.Sealed, []byte("ann.lee")) || bytes.Contains(d.Sealed, []byte("Ann Lee")) {
		t.Fatal("the enrollee is stored in plaintext")
	}
	det, err := fleet.ShowDevice(ctx, e.store, e.kek, "test", id, time.Now())
	if err != nil || det.Enrollee.Email != "ann.lee@hospital.example" {
		t.Fatalf("show: %+v %v", det, err)
	}
	if ds, _ := e.store.Devices(ctx, fleet.DeviceFilter{EmailHash: fleet.EmailHash(e.kek, "ANN.LEE@hospital.example")}); len(ds) != 1 {
		t.Fatalf("lookup by email: %d devices", len(ds))
	}

	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	tok := e.token(t, "lab-1", 1, time.Hour)
	body := enrollBody(t, tok, "bob@hospital.example", pub)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	expired := e.token(t, "lab-1", 5, time.Minute)
	e.now = e.now.Add(2 * time.Minute)
	for _, tc := range []struct {
		name   string
		body   []byte
		sig    string
		status int
		reason string
	}{
		{"signed by another key", body, wire.SignEnroll(otherPriv, body), 401, wire.ReasonBadSignature},
		{"not signed", body, "", 401, wire.ReasonBadSignature},
		{"an unknown token", enrollBody(t, "bcf_nope", "bob@hospital.example", pub), "", 403, wire.ReasonBadToken},
		{"an expired token", enrollBody(t, expired, "bob@hospital.example", pub), "", 403, wire.ReasonBadToken},
		{"not an email", enrollBody(t, tok, "bob", pub), "", 400, wire.ReasonMalformed},
		{"unknown fields", []byte(`{"token":"x","public_key":"` + strings.Repeat("A", 43) + `=","surprise":1}`), "", 400, wire.ReasonMalformed},
		{"too large", bytes.Repeat([]byte(" "), wire.MaxBody+1), "", 413, wire.ReasonTooLarge},
	} {
		sig := tc.sig
		if sig == "" && tc.reason != wire.ReasonBadSignature {
			sig = wire.SignEnroll(priv, tc.body)
		}
		code, resp := post(t, e.srv.URL+wire.EnrollPath, tc.body, map[string]string{wire.SignatureHeader: sig})
		var er wire.ErrorResponse
		json.Unmarshal(resp, &er)
		if code != tc.status || er.Reason != tc.reason || er.Error == "" {
			t.Errorf("%s: %d %s, want %d %s", tc.name, code, resp, tc.status, tc.reason)
		}
	}
	if ds, _ := e.store.Devices(ctx, fleet.DeviceFilter{}); len(ds) != 1 {
		t.Fatalf("refused enrollments stored devices: %d", len(ds))
	}
	// The token was not used by the refusals: it still enrolls, once.
	code, _ := post(t, e.srv.URL+wire.EnrollPath, body, map[string]string{wire.SignatureHeader: wire.SignEnroll(priv, body)})
	if code != 200 {
		t.Fatalf("enroll with the token: %d", code)
	}
	pub2, priv2, _ := ed25519.GenerateKey(rand.Reader)
	again := enrollBody(t, tok, "carl@hospital.example", pub2)
	if code, resp := post(t, e.srv.URL+wire.EnrollPath, again, map[string]string{wire.SignatureHeader: wire.SignEnroll(priv2, again)}); code != 403 {
		t.Fatalf("a used-up token: %d %s", code, resp)
	}
}

// TestReplaces: re-enrollment retires the old device only for the holder
// of its key, and a refused enrollment uses up no token.
func TestReplaces(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	victim := e.enroll(t, "ann.lee@hospital.example")
	other := e.enroll(t, "bob@hospital.example")
	enrollReplacing := func(tok, replaces string, oldKey ed25519.PrivateKey) (int, wire.ErrorResponse, string) {
		t.Helper()
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		var req wire.EnrollRequest
		json.Unmarshal(enrollBody(t, tok, "mal@hospital.example", pub), &req)
		req.Replaces = replaces
		body, _ := json.Marshal(req)
		h := map[string]string{wire.SignatureHeader: wire.SignEnroll(priv, body)}
		if oldKey != nil {
			h[wire.ReplacesSignatureHeader] = wire.SignReplace(oldKey, body)
		}
		code, resp := post(t, e.srv.URL+wire.EnrollPath, body, h)
		var er wire.ErrorResponse
		json.Unmarshal(resp, &er)
		var ok wire.EnrollResponse
		json.Unmarshal(resp, &ok)
		return code, er, ok.DeviceID
	}
	tok := e.token(t, "lab-1", 1, time.Hour)
	for _, tc := range []struct {
		name   string
		oldKey ed25519.PrivateKey
		status int
	}{
		{"a token alone", nil, 401},
		{"signed by another device of the site", e.keys[other], 401},
	} {
		code, er, _ := enrollReplacing(tok, victim, tc.oldKey)
		if code != tc.status || er.Reason != wire.ReasonBadSignature || !strings.Contains(er.Error, "not signed by that device's key") {
			t.Fatalf("%s: %d %+v", tc.name, code, er)
		}
		if d, _ := e.store.Device(ctx, victim); d.Revoked != nil {
			t.Fatalf("%s: the victim was revoked", tc.name)
		}
	}
	if code, er, _ := enrollReplacing(tok, "dev-none", nil); code != 400 || !strings.Contains(er.Error, "no such device") {
		t.Fatalf("replacing no device: %d %+v", code, er)
	}
	otherSite := e.token(t, "lab-2", 1, time.Hour)
	if code, er, _ := enrollReplacing(otherSite, victim, e.keys[victim]); code != 400 || !strings.Contains(er.Error, "not of the token's site") {
		t.Fatalf("replacing a device of another site: %d %+v", code, er)
	}
	// None of the refusals took the one-use tokens.
	if code, er, _ := enrollReplacing(otherSite, "", nil); code != 200 {
		t.Fatalf("the lab-2 token after a refusal: %d %+v", code, er)
	}
	if code, resp := e.report(t, victim, full(7, "1.0.0")); code != 200 {
		t.Fatalf("the victim reports: %d %s", code, resp)
	}
	code, er, id := enrollReplacing(tok, victim, e.keys[victim])
	if code != 200 {
		t.Fatalf("re-enrollment signed by the old key: %d %+v", code, er)
	}
	old, _ := e.store.Device(ctx, victim)
	now, _ := e.store.Device(ctx, id)
	if old.Revoked == nil || now.Replaces != victim || now.Revoked != nil {
		t.Fatalf("after re-enrollment: old revoked %v, new %+v", old.Revoked, now)
	}
	// The same PC keeps its logs' history: its next head must tie to
	// the old one.
	if now.State.Audit.Hash != old.State.Audit.Hash || now.State.Audit.Seq != 7 || now.State.Consent.Hash != old.State.Consent.Hash {
		t.Fatalf("log heads not carried over: %+v, had %+v", now.State.Audit, old.State.Audit)
	}
	if d, _ := e.store.Device(ctx, other); d.Revoked != nil {
		t.Fatal("another device was revoked")
	}
}

// TestVouch: a full report whose log head cannot be tied to the one the
// service had is asked to vouch for it; a device that never does, while
// it keeps reporting, is flagged after a day.
func TestVouch(t *testing.T) {
	e := newEnv(t)
	id := e.enroll(t, "ann.lee@hospital.example")
	if code, resp := e.report(t, id, full(5, "1.0.0")); code != 200 || strings.Contains(resp, "vouch") {
		t.Fatalf("first report: %d %s", code, resp)
	}
	r := full(9, "1.0.0") // audit head 9, nothing said of entry 5
	code, resp := e.report(t, id, r)
	if code != 200 || !strings.Contains(resp, `"vouch":{"audit":[5]}`) {
		t.Fatalf("a head not tied to the last: %d %s", code, resp)
	}
	// It vouches with the hash it reported before: resolved, no flag.
	r = full(10, "1.0.0")
	r.Audit.Seq, r.Audit.Hash = 9, "a1.0.0"
	r.Audit.At = []wire.LogPoint{{Seq: 5, Hash: "a1.0.0"}}
	if code, resp := e.report(t, id, r); code != 200 || strings.Contains(resp, "vouch") {
		t.Fatalf("vouched: %d %s", code, resp)
	}
	d, _ := e.store.Device(context.Background(), id)
	if len(d.State.Unvouched) != 0 || len(d.State.Flags) != 0 {
		t.Fatalf("after vouching: unvouched %v, flags %v", d.State.Unvouched, d.State.Flags)
	}
	// Grown again, never vouched: flagged once a day has passed while
	// the device kept reporting.
	if code, resp := e.report(t, id, full(20, "1.0.0")); code != 200 || !strings.Contains(resp, `"vouch":{"audit":[9]}`) {
		t.Fatalf("grown again: %d %s", code, resp)
	}
	e.now = e.now.Add(25 * time.Hour)
	if code, resp := e.report(t, id, wire.Report{Counter: 21, Time: e.now, Heartbeat: true, Digest: "d-1.0.0"}); code != 200 {
		t.Fatalf("heartbeat: %d %s", code, resp)
	}
	d, _ = e.store.Device(context.Background(), id)
	flags := strings.Join(d.Flags(e.now), "; ")
	if !strings.Contains(flags, "audit log: the device has not vouched for entry 9") {
		t.Fatalf("flags %q", flags)
	}
	// The log goes back below the entry owed: flagged as such, and the
	// service stops asking for what the log no longer has.
	r = full(22, "1.0.0")
	r.Audit.Seq, r.Audit.Hash = 3, "a-short"
	if code, resp := e.report(t, id, r); code != 200 || strings.Contains(resp, "vouch") {
		t.Fatalf("a shorter log: %d %s", code, resp)
	}
	d, _ = e.store.Device(context.Background(), id)
	if len(d.State.Unvouched) != 0 || !strings.Contains(strings.Join(d.State.Flags, ";"), "audit log went backwards") {
		t.Fatalf("after a shorter log: unvouched %v, flags %v", d.State.Unvouched, d.State.Flags)
	}
}

// TestRotate: a key rotation needs both keys; sent again it changes
// nothing; the retired key can neither report nor rotate again.
func TestRotate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.enroll(t, "ann.lee@hospital.example")
	old := e.keys[id]
	newPub, newPriv, _ := ed25519.GenerateKey(rand.Reader)
	_, thief, _ := ed25519.GenerateKey(rand.Reader)
	rotation := func(dev string, oldPub, pub ed25519.PublicKey, at time.Time) []byte {
		b, _ := json.Marshal(wire.RotateRequest{DeviceID: dev, OldPublicKey: oldPub, PublicKey: pub, Time: at})
		return b
	}
	send := func(body []byte, oldKey, newKey ed25519.PrivateKey) (int, wire.ErrorResponse) {
		t.Helper()
		h := map[string]string{}
		if oldKey != nil {
			h[wire.SignatureHeader] = wire.SignRotate(oldKey, body)
		}
		if newKey != nil {
			h[wire.NewKeySignatureHeader] = wire.SignRotate(newKey, body)
		}
		code, resp := post(t, e.srv.URL+wire.RotatePath, body, h)
		var er wire.ErrorResponse
		json.Unmarshal(resp, &er)
		return code, er
	}
	good := rotation(id, old.Public().(ed25519.PublicKey), newPub, e.now)
	for _, tc := range []struct {
		name         string
		body         []byte
		oldKey, newK ed25519.PrivateKey
		status       int
		reason       string
	}{
		{"no new key signature", good, old, nil, 401, wire.ReasonBadSignature},
		{"no old key signature", good, nil, newPriv, 401, wire.ReasonBadSignature},
		{"a thief's key named as old", rotation(id, thief.Public().(ed25519.PublicKey), newPub, e.now), thief, newPriv, 401, wire.ReasonBadSignature},
		{"an unknown device", rotation("dev-nope", old.Public().(ed25519.PublicKey), newPub, e.now), old, newPriv, 401, wire.ReasonUnknown},
		{"a day off", rotation(id, old.Public().(ed25519.PublicKey), newPub, e.now.Add(-25*time.Hour)), old, newPriv, 400, wire.ReasonMalformed},
		{"the same key", rotation(id, old.Public().(ed25519.PublicKey), old.Public().(ed25519.PublicKey), e.now), old, old, 400, wire.ReasonMalformed},
	} {
		if code, er := send(tc.body, tc.oldKey, tc.newK); code != tc.status || er.Reason != tc.reason {
			t.Errorf("%s: %d %+v, want %d %s", tc.name, code, er, tc.status, tc.reason)
		}
	}
	if d, _ := e.store.Device(ctx, id); !bytes.Equal(d.PublicKey, old.Public().(ed25519.PublicKey)) {
		t.Fatal("a refused rotation changed the key")
	}
	if code, er := send(good, old, newPriv); code != 200 {
		t.Fatalf("rotation: %d %+v", code, er)
	}
	// Sent again (the device crashed before it kept the new key): taken,
	// also a day later (the clock is not what decides it then).
	e.now = e.now.Add(25 * time.Hour)
	if code, er := send(good, old, newPriv); code != 200 {
		t.Fatalf("the same rotation again: %d %+v", code, er)
	}
	d, _ := e.store.Device(ctx, id)
	if !bytes.Equal(d.PublicKey, newPub) || d.Revoked != nil {
		t.Fatalf("after rotation: key %x, revoked %v", d.PublicKey, d.Revoked)
	}
	// The retired key: its reports are refused, it cannot rotate again.
	if code, _ := e.report(t, id, full(1, "1.0.0")); code != 401 {
		t.Fatalf("a report signed by the retired key: %d", code)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if code, er := send(rotation(id, old.Public().(ed25519.PublicKey), other.Public().(ed25519.PublicKey), e.now), old, other); code != 401 || !strings.Contains(er.Error, "current key") {
		t.Fatalf("rotating from the retired key: %d %+v", code, er)
	}
	e.keys[id] = newPriv
	e.now = e.now.Add(-25 * time.Hour)
	if code, resp := e.report(t, id, full(1, "1.0.0")); code != 200 {
		t.Fatalf("a report signed by the new key: %d %s", code, resp)
	}
	if err := fleet.RevokeDevice(ctx, e.store, "test", id, e.now); err != nil {
		t.Fatal(err)
	}
	_, later, _ := ed25519.GenerateKey(rand.Reader)
	if code, er := send(rotation(id, newPub, later.Public().(ed25519.PublicKey), e.now), newPriv, later); code != 410 || er.Reason != wire.ReasonRevoked {
		t.Fatalf("a revoked device rotates: %d %+v", code, er)
	}
}

func TestReports(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.enroll(t, "ann.lee@hospital.example")
	if code, resp := e.report(t, id, full(1, "1.0.0")); code != 200 || strings.Contains(resp, "send_full") {
		t.Fatalf("first report: %d %s", code, resp)
	}
	if code, resp := e.report(t, id, full(1, "1.1.0")); code != 409 || !strings.Contains(resp, wire.ReasonReplayed) {
		t.Fatalf("a replayed counter: %d %s", code, resp)
	}
	d, _ := e.store.Device(ctx, id)
	if d.State.Components[0].Installed != "1.0.0" {
		t.Fatal("a replayed report was stored")
	}
	hb := wire.Report{Counter: 2, Time: time.Now(), Heartbeat: true, Digest: "d-1.0.0"}
	hbBody, _ := json.Marshal(hb)
	if len(hbBody) > wire.MaxHeartbeat {
		t.Fatalf("a heartbeat of %d bytes", len(hbBody))
	}
	if code, resp := e.report(t, id, hb); code != 200 || strings.Contains(resp, "send_full") {
		t.Fatalf("heartbeat: %d %s", code, resp)
	}
	hb.Counter, hb.Digest = 3, "d-unknown"
	if code, resp := e.report(t, id, hb); code != 200 || !strings.Contains(resp, `"send_full":true`) {
		t.Fatalf("a heartbeat of an unknown digest: %d %s", code, resp)
	}
	// Forged: signed by another key.
	r := full(4, "9.9.9")
	r.DeviceID = id
	body, _ := json.Marshal(r)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if code, _ := post(t, e.srv.URL+wire.ReportPath, body, map[string]string{wire.DeviceHeader: id, wire.SignatureHeader: wire.SignReport(other, body)}); code != 401 {
		t.Fatalf("a forged report: %d", code)
	}
	if code, _ := e.report(t, "dev-unknown", full(4, "1.0.0")); code != 401 {
		t.Fatalf("an unknown device: %d", code)
	}
	// The audit log goes backwards (from 4 entries to 2), the consent
	// log forks: flagged.
	if code, resp := e.report(t, id, full(4, "1.0.0")); code != 200 {
		t.Fatalf("report: %d %s", code, resp)
	}
	r = full(5, "1.0.0")
	r.Audit = &wire.LogHead{Seq: 2, Hash: "x"}
	r.Consent = &wire.LogHead{Seq: 1, Hash: "c-other"}
	if code, resp := e.report(t, id, r); code != 200 {
		t.Fatalf("report: %d %s", code, resp)
	}
	d, _ = e.store.Device(ctx, id)
	flags := strings.Join(d.State.Flags, "; ")
	if !strings.Contains(flags, "audit log went backwards") || !strings.Contains(flags, "consent log forked") {
		t.Fatalf("flags %q", flags)
	}
	if !d.Online(e.now) || d.Online(e.now.Add(4*time.Hour)) {
		t.Fatal("online status")
	}
	// A timestamp that stops advancing while online is flagged.
	e.now = e.now.Add(4 * 24 * time.Hour)
	r = full(6, "1.0.0")
	r.TUF.TimestampVersion = 5
	r.Audit = &wire.LogHead{Seq: 6, Hash: "a"}
	e.report(t, id, r)
	d, _ = e.store.Device(ctx, id)
	if f := strings.Join(d.Flags(e.now), ";"); !strings.Contains(f, "has not advanced") {
		t.Fatalf("a stalled timestamp is not flagged: %q", f)
	}
	if code, _ := e.report(t, id, wire.Report{Counter: 7, Digest: "x", Components: make([]wire.Component, 300)}); code != 400 {
		t.Fatalf("300 components: %d", code)
	}
	// Oversized and malformed reports, properly signed: refused, counted,
	// nothing stored.
	before, _ := e.store.Device(ctx, id)
	big := full(7, "1.0.0")
	big.DeviceID = id
	big.Components[0].Reason = strings.Repeat("x", wire.MaxBody)
	bigBody, _ := json.Marshal(big)
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		reason string
	}{
		{"over 64 KiB", bigBody, 413, wire.ReasonTooLarge},
		{"not JSON", []byte(`{"device_id":"` + id + `","counter":7,`), 400, wire.ReasonMalformed},
		{"two values", []byte(`{"device_id":"` + id + `","counter":7}{}`), 400, wire.ReasonMalformed},
		{"a string counter", []byte(`{"device_id":"` + id + `","counter":"7"}`), 400, wire.ReasonMalformed},
		{"another device's ID inside", []byte(`{"device_id":"dev-other","counter":7}`), 400, wire.ReasonMalformed},
		{"a control character", []byte(`{"device_id":"` + id + `","counter":7,"components":[{"name":"a\u001b[31m","channel":"stable","state":"x"}]}`), 400, wire.ReasonMalformed},
		{"a bad poll interval", []byte(`{"device_id":"` + id + `","counter":7,"poll_interval":"soon"}`), 400, wire.ReasonMalformed},
	} {
		n := e.rej[tc.reason]
		code, resp := post(t, e.srv.URL+wire.ReportPath, tc.body, map[string]string{wire.DeviceHeader: id, wire.SignatureHeader: wire.SignReport(e.keys[id], tc.body)})
		var er wire.ErrorResponse
		json.Unmarshal(resp, &er)
		if code != tc.status || er.Reason != tc.reason || er.Error == "" || strings.Contains(er.Error, "\n") {
			t.Errorf("%s: %d %s, want %d %s", tc.name, code, resp, tc.status, tc.reason)
		}
		if e.rej[tc.reason] != n+1 {
			t.Errorf("%s: the rejection was not counted", tc.name)
		}
	}
	if after, _ := e.store.Device(ctx, id); after.State.Counter != before.State.Counter || after.State.Digest != before.State.Digest {
		t.Fatalf("a refused report changed the device: %+v -> %+v", before.State, after.State)
	}
	if err := fleet.RevokeDevice(ctx, e.store, "test", id, e.now); err != nil {
		t.Fatal(err)
	}
	if code, resp := e.report(t, id, full(8, "1.0.0")); code != 410 || !strings.Contains(resp, wire.ReasonRevoked) {
		t.Fatalf("a revoked device: %d %s", code, resp)
	}
	for _, reason := range []string{wire.ReasonReplayed, wire.ReasonBadSignature, wire.ReasonUnknown, wire.ReasonRevoked, wire.ReasonMalformed} {
		if e.rej[reason] == 0 {
			t.Errorf("no rejection counted for %s: %v", reason, e.rej)
		}
	}
}

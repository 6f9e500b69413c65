// Package fleet is the fleet service: it enrolls devices, each with a key
// of its own, keeps what their signed reports say (online status,
// versions, the heads of their consent and audit logs), and tells release
// engineers how a rollout is going. It never holds a TUF or code-signing
// key. The device side is in client/, and the two share only fleet/wire.
package fleet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet/wire"
)

// Server answers the device API (wire.EnrollPath, wire.ReportPath).
type Server struct {
	Store Store
	KEK   KEK
	Log   *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Rejected, if set, is told each refused request's reason (metrics).
	Rejected func(reason string)
	// Accepted, if set, is told of each accepted report (metrics).
	Accepted func(heartbeat bool)
	// Enrolled, if set, is told of each enrollment (metrics).
	Enrolled func()
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Handler serves the device API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+wire.EnrollPath, s.enroll)
	mux.HandleFunc("POST "+wire.ReportPath, s.report)
	mux.HandleFunc("POST "+wire.RotatePath, s.rotate)
	return mux
}

// refusal is a refused request: its status, reason code and message.
type refusal struct {
	status int
	reason string
	msg    string
}

func (r *refusal) Error() string { return r.msg }

func refuse(status int, reason, format string, args ...any) *refusal {
	return &refusal{status: status, reason: reason, msg: fmt.Sprintf(format, args...)}
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	var r *refusal
	if !errors.As(err, &r) {
		s.log().Error("device request", "err", err)
		r = &refusal{status: http.StatusInternalServerError, reason: "internal", msg: "internal error; try again later"}
	}
	if s.Rejected != nil {
		s.Rejected(r.reason)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(r.status)
	json.NewEncoder(w).Encode(wire.ErrorResponse{Error: r.msg, Reason: r.reason})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// readBody reads at most wire.MaxBody bytes; more is a refusal.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, wire.MaxBody+1))
	if err != nil {
		return nil, refuse(http.StatusBadRequest, wire.ReasonMalformed, "the request body could not be read")
	}
	if len(body) > wire.MaxBody {
		return nil, refuse(http.StatusRequestEntityTooLarge, wire.ReasonTooLarge, "the request is larger than %d bytes", wire.MaxBody)
	}
	return body, nil
}

// decode parses body strictly into v: one JSON value, no unknown fields.
func decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil || dec.More() {
		return refuse(http.StatusBadRequest, wire.ReasonMalformed, "the request is not a valid message: %v", err)
	}
	return nil
}

// TokenHash is how a token is kept: its sha256.
func TokenHash(token string) []byte {
	h := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return h[:]
}

// newID is a random identifier with prefix.
func newID(prefix string) string {
	b := make([]byte, 10)
	rand.Read(b)
	return prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// maxText bounds every text field of a message.
const maxText = 256

func checkText(field, v string, required bool) error {
	if required && strings.TrimSpace(v) == "" {
		return refuse(http.StatusBadRequest, wire.ReasonMalformed, "%s is required", field)
	}
	if len(v) > maxText {
		return refuse(http.StatusBadRequest, wire.ReasonMalformed, "%s is longer than %d bytes", field, maxText)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return refuse(http.StatusBadRequest, wire.ReasonMalformed, "%s holds a control character", field)
		}
	}
	return nil
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	resp, err := s.Enroll(r.Context(), r)
	if err != nil {
		s.fail(w, err)
		return
	}
	reply(w, resp)
}

// Enroll registers the device of an enrollment request: its signature
// by the key it registers, a token that is valid, and its fields.
func (s *Server) Enroll(ctx context.Context, r *http.Request) (*wire.EnrollResponse, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	var req wire.EnrollRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if len(req.PublicKey) != ed25519.PublicKeySize {
		return nil, refuse(http.StatusBadRequest, wire.ReasonMalformed, "public_key is not an ed25519 public key")
	}
	if err := wire.VerifyEnroll(req.PublicKey, body, r.Header.Get(wire.SignatureHeader)); err != nil {
		return nil, refuse(http.StatusUnauthorized, wire.ReasonBadSignature, "the enrollment is not signed by the key it registers")
	}
	for _, f := range []struct {
		name, v string
	}{{"enrollee.email", req.Enrollee.Email}, {"enrollee.name", req.Enrollee.Name}, {"instrument.model", req.Instrument.Model},
		{"instrument.id", req.Instrument.ID}, {"instrument.serial", req.Instrument.Serial}} {
		if err := checkText(f.name, f.v, true); err != nil {
			return nil, err
		}
	}
	if _, err := mail.ParseAddress(req.Enrollee.Email); err != nil || !strings.Contains(req.Enrollee.Email, "@") {
		return nil, refuse(http.StatusBadRequest, wire.ReasonMalformed, "enrollee.email %q is not an email address", req.Enrollee.Email)
	}
	if err := checkText("agent_version", req.AgentVersion, false); err != nil {
		return nil, err
	}
	var carried DeviceState
	var replacesKey []byte
	if req.Replaces != "" {
		// Only the holder of the replaced device's key may retire it:
		// a token alone (which any PC of the site may have seen) must not
		// knock another device of the site off the fleet.
		old, err := s.Store.Device(ctx, req.Replaces)
		if errors.Is(err, ErrNotFound) {
			return nil, refuse(http.StatusBadRequest, wire.ReasonMalformed, "replaces %q: no such device", req.Replaces)
		}
		if err != nil {
			return nil, err
		}
		if err := wire.VerifyReplace(old.PublicKey, body, r.Header.Get(wire.ReplacesSignatureHeader)); err != nil {
			return nil, refuse(http.StatusUnauthorized, wire.ReasonBadSignature, "the enrollment replaces device %s but is not signed by that device's key; enroll without replacing it and have an admin revoke the old device", req.Replaces)
		}
		// The same PC (its key says so) keeps its logs' history: a log
		// rewritten before re-enrolling must still tie to the old heads.
		replacesKey = old.PublicKey
		carried = DeviceState{Audit: old.State.Audit, Consent: old.State.Consent, Flags: old.State.Flags, Unvouched: old.State.Unvouched,
			TUF: old.State.TUF, TimestampSince: old.State.TimestampSince}
	}
	id := newID("dev-")
	enrollee, _ := json.Marshal(req.Enrollee)
	sealed, err := Seal(s.KEK, id, enrollee)
	if err != nil {
		return nil, err
	}
	d := Device{ID: id, PublicKey: req.PublicKey, Enrolled: s.now(), Sealed: sealed,
		EmailHash: EmailHash(s.KEK, req.Enrollee.Email), Instrument: req.Instrument, Replaces: req.Replaces, State: carried}
	d.State.AgentVersion = req.AgentVersion
	// The token's use, the device and the retirement of the one it
	// replaces are one transaction: a refusal uses up nothing.
	tok, err := s.Store.Enroll(ctx, TokenHash(req.Token), s.now(), d, replacesKey)
	switch {
	case errors.Is(err, ErrBadToken):
		return nil, refuse(http.StatusForbidden, wire.ReasonBadToken, "the enrollment token is unknown, expired, revoked or used up; ask for a new one (bcfleet token create)")
	case errors.Is(err, ErrNotFound):
		return nil, refuse(http.StatusBadRequest, wire.ReasonMalformed, "replaces %q: the device is not of the token's site, or its key changed meanwhile", req.Replaces)
	case errors.Is(err, ErrExists):
		return nil, refuse(http.StatusConflict, wire.ReasonMalformed, "this public key is already enrolled; make a new key to enroll again")
	case err != nil:
		return nil, err
	}
	s.log().Info("enrolled", "device", id, "site", tok.Site, "replaces", req.Replaces)
	if s.Enrolled != nil {
		s.Enrolled()
	}
	return &wire.EnrollResponse{DeviceID: id, Site: tok.Site}, nil
}

func (s *Server) rotate(w http.ResponseWriter, r *http.Request) {
	if err := s.Rotate(r.Context(), r); err != nil {
		s.fail(w, err)
		return
	}
	reply(w, map[string]bool{"rotated": true})
}

// rotateSkew bounds how far a rotation's time may be from the service's.
const rotateSkew = 24 * time.Hour

// Rotate replaces a device's key: signed by its current key and by the
// new one, for a known, unrevoked device. A rotation the service already
// took is accepted again (the device may have crashed before it kept its
// new key) and changes nothing.
func (s *Server) Rotate(ctx context.Context, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var req wire.RotateRequest
	if err := decode(body, &req); err != nil {
		return err
	}
	if len(req.PublicKey) != ed25519.PublicKeySize || len(req.OldPublicKey) != ed25519.PublicKeySize {
		return refuse(http.StatusBadRequest, wire.ReasonMalformed, "public_key and old_public_key must be ed25519 public keys")
	}
	if bytes.Equal(req.PublicKey, req.OldPublicKey) {
		return refuse(http.StatusBadRequest, wire.ReasonMalformed, "the new key is the old key")
	}
	d, err := s.Store.Device(ctx, req.DeviceID)
	if errors.Is(err, ErrNotFound) {
		return refuse(http.StatusUnauthorized, wire.ReasonUnknown, "device %q is not enrolled (bcagent enroll)", req.DeviceID)
	}
	if err != nil {
		return err
	}
	if d.Revoked != nil {
		return refuse(http.StatusGone, wire.ReasonRevoked, "device %s was revoked at %s; it must be enrolled again", d.ID, d.Revoked.Format(time.RFC3339))
	}
	if wire.VerifyRotate(req.OldPublicKey, body, r.Header.Get(wire.SignatureHeader)) != nil ||
		wire.VerifyRotate(req.PublicKey, body, r.Header.Get(wire.NewKeySignatureHeader)) != nil {
		return refuse(http.StatusUnauthorized, wire.ReasonBadSignature, "the key rotation is not signed by both the old and the new key")
	}
	switch {
	case bytes.Equal(d.PublicKey, req.PublicKey):
		return nil // taken before: whenever it is sent again, the answer is the same
	case !bytes.Equal(d.PublicKey, req.OldPublicKey):
		return refuse(http.StatusUnauthorized, wire.ReasonBadSignature, "the key rotation is not signed by device %s's current key", d.ID)
	}
	if skew := s.now().Sub(req.Time); skew > rotateSkew || skew < -rotateSkew {
		return refuse(http.StatusBadRequest, wire.ReasonMalformed, "the rotation's time %s is more than %s from the service's; is the PC's clock right?", req.Time.Format(time.RFC3339), rotateSkew)
	}
	switch err := s.Store.RotateKey(ctx, d.ID, req.OldPublicKey, req.PublicKey); {
	case errors.Is(err, ErrExists):
		return refuse(http.StatusConflict, wire.ReasonMalformed, "the new key is enrolled already; make another")
	case errors.Is(err, ErrNotFound):
		return refuse(http.StatusConflict, wire.ReasonMalformed, "device %s's key changed meanwhile; try again", d.ID)
	case err != nil:
		return err
	}
	s.log().Info("key rotated", "device", d.ID)
	return nil
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	resp, err := s.Report(r.Context(), r)
	if err != nil {
		s.fail(w, err)
		return
	}
	reply(w, resp)
}

// maxComponents bounds the components of one report.
const maxComponents = 256

// Report accepts a device's signed report: a known, unrevoked device, its
// signature, a counter above the last accepted, and valid fields.
func (s *Server) Report(ctx context.Context, r *http.Request) (*wire.ReportResponse, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	id := r.Header.Get(wire.DeviceHeader)
	// Most reports are heartbeats, which need only the device's key,
	// counter and digest: a look at the (not yet verified) body picks
	// the cheaper read; the signature and the strict decode below decide.
	var peek struct {
		Heartbeat bool `json:"heartbeat"`
	}
	lookup := s.Store.Device
	if json.Unmarshal(body, &peek) == nil && peek.Heartbeat {
		lookup = s.Store.DeviceAuth
	}
	d, err := lookup(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, refuse(http.StatusUnauthorized, wire.ReasonUnknown, "device %q is not enrolled (bcagent enroll)", id)
	}
	if err != nil {
		return nil, err
	}
	if d.Revoked != nil {
		return nil, refuse(http.StatusGone, wire.ReasonRevoked, "device %s was revoked at %s; it must be enrolled again to report", id, d.Revoked.Format(time.RFC3339))
	}
	if err := wire.VerifyReport(d.PublicKey, body, r.Header.Get(wire.SignatureHeader)); err != nil {
		return nil, refuse(http.StatusUnauthorized, wire.ReasonBadSignature, "the report is not signed by device %s's key", id)
	}
	var rep wire.Report
	if err := decode(body, &rep); err != nil {
		return nil, err
	}
	if rep.DeviceID != id {
		return nil, refuse(http.StatusBadRequest, wire.ReasonMalformed, "the report names device %q, not %q", rep.DeviceID, id)
	}
	now := s.now()
	u := ReportUpdate{Counter: rep.Counter, LastSeen: now, Full: !rep.Heartbeat}
	resp := &wire.ReportResponse{}
	if rep.Heartbeat {
		if len(body) > wire.MaxHeartbeat {
			return nil, refuse(http.StatusBadRequest, wire.ReasonMalformed, "a heartbeat is larger than %d bytes", wire.MaxHeartbeat)
		}
		resp.SendFull = rep.Digest != d.State.Digest
	} else {
		st, err := s.judge(d, &rep, now)
		if err != nil {
			return nil, err
		}
		u.State = *st
		resp.Vouch = vouchRequest(st)
	}
	if err := s.Store.SaveReport(ctx, id, u); err != nil {
		if errors.Is(err, ErrReplayed) {
			return nil, refuse(http.StatusConflict, wire.ReasonReplayed, "report counter %d is not above the last accepted %d (a replay?)", rep.Counter, d.State.Counter)
		}
		return nil, err
	}
	if s.Accepted != nil {
		s.Accepted(rep.Heartbeat)
	}
	return resp, nil
}

// judge checks a full report's fields and makes the device's new state,
// with what the service concludes: a log chain that goes backwards or
// forks, a trusted timestamp that stopped advancing.
func (s *Server) judge(d *Device, rep *wire.Report, now time.Time) (*DeviceState, error) {
	if len(rep.Components) > maxComponents {
		return nil, refuse(http.StatusBadRequest, wire.ReasonMalformed, "more than %d components", maxComponents)
	}
	for _, c := range rep.Components {
		for _, f := range []string{c.Name, c.Installed, c.Staged, c.Channel, c.Pinned, c.State, c.Reason, c.Failed, c.ChannelRelease} {
			if err := checkText("component "+c.Name, f, false); err != nil {
				return nil, err
			}
		}
		if c.RolloutPercent < 0 || c.RolloutPercent > 100 {
			return nil, refuse(http.StatusBadRequest, wire.ReasonMalformed, "component %s: rollout_percent %d is not 1 to 100", c.Name, c.RolloutPercent)
		}
	}
	interval, err := time.ParseDuration(rep.PollInterval)
	if rep.PollInterval != "" && (err != nil || interval <= 0) {
		return nil, refuse(http.StatusBadRequest, wire.ReasonMalformed, "poll_interval %q is not a duration", rep.PollInterval)
	}
	old := d.State
	st := &DeviceState{Counter: rep.Counter, LastSeen: now, Digest: rep.Digest, AgentVersion: rep.AgentVersion,
		PollInterval: interval, Components: rep.Components, TimestampSince: old.TimestampSince, Flags: old.Flags}
	if rep.TUF != nil {
		st.TUF = *rep.TUF
	}
	if st.TUF.TimestampVersion > old.TUF.TimestampVersion || st.TimestampSince.IsZero() {
		st.TimestampSince = now
	}
	flag := func(f string) {
		for _, have := range st.Flags {
			if have == f {
				return
			}
		}
		st.Flags = append(st.Flags, f)
		s.log().Warn("device flagged", "device", d.ID, "flag", f)
	}
	for _, l := range []struct {
		name     string
		old, new *wire.LogHead
		into     *wire.LogHead
	}{{wire.LogAudit, &old.Audit, rep.Audit, &st.Audit}, {wire.LogConsent, &old.Consent, rep.Consent, &st.Consent}} {
		owed := old.Unvouched[l.name]
		if l.new == nil {
			*l.into = *l.old
			keepUnvouched(st, l.name, owed)
			continue
		}
		*l.into = wire.LogHead{Seq: l.new.Seq, Hash: l.new.Hash}
		// What the device's log has now, at the entries it vouches for.
		has := map[int64]string{l.new.Seq: l.new.Hash}
		for _, p := range l.new.At {
			if p.Seq > 0 && p.Seq < l.new.Seq {
				has[p.Seq] = p.Hash
			}
		}
		// vouched says whether the device vouched for p; a hash other
		// than the one reported before is a rewrite.
		vouched := func(p wire.LogPoint) bool {
			h, ok := has[p.Seq]
			if ok && h != p.Hash {
				flag(fmt.Sprintf("%s log forked: entry %d has another hash than the device reported before (rewritten on the device?)", l.name, p.Seq))
			}
			return ok
		}
		var still []Unvouched
		for _, u := range owed {
			if u.Seq > l.new.Seq {
				continue // the log went back below it: flagged below
			}
			if !vouched(u.LogPoint) {
				still = append(still, u)
			}
		}
		switch {
		case l.new.Seq < l.old.Seq:
			flag(fmt.Sprintf("%s log went backwards: %d entries after %d (rewritten on the device?)", l.name, l.new.Seq, l.old.Seq))
		case l.old.Seq > 0 && !vouched(wire.LogPoint{Seq: l.old.Seq, Hash: l.old.Hash}):
			still = append(still, Unvouched{LogPoint: wire.LogPoint{Seq: l.old.Seq, Hash: l.old.Hash}, Since: now})
		}
		keepUnvouched(st, l.name, still)
	}
	if st.TUF.TimestampVersion > 0 && st.TUF.TimestampVersion < old.TUF.TimestampVersion {
		flag(fmt.Sprintf("trusted timestamp went back from version %d to %d", old.TUF.TimestampVersion, st.TUF.TimestampVersion))
	}
	return st, nil
}

// maxUnvouched bounds the entries a device may owe per log (the oldest
// are kept: they cover the most).
const maxUnvouched = 8

func keepUnvouched(st *DeviceState, name string, us []Unvouched) {
	if len(us) == 0 {
		return
	}
	if len(us) > maxUnvouched {
		us = us[:maxUnvouched]
	}
	if st.Unvouched == nil {
		st.Unvouched = map[string][]Unvouched{}
	}
	st.Unvouched[name] = us
}

// vouchRequest is what the answer to a full report asks the device to
// vouch for.
func vouchRequest(st *DeviceState) map[string][]int64 {
	var v map[string][]int64
	for name, us := range st.Unvouched {
		for _, u := range us {
			if v == nil {
				v = map[string][]int64{}
			}
			v[name] = append(v[name], u.Seq)
		}
	}
	return v
}

// DefaultPollInterval is assumed for a device that has not said its own.
const DefaultPollInterval = time.Hour

// Online says whether d reported within three of its poll intervals.
func (d *Device) Online(now time.Time) bool {
	if d.State.LastSeen.IsZero() {
		return false
	}
	iv := d.State.PollInterval
	if iv <= 0 {
		iv = DefaultPollInterval
	}
	return now.Sub(d.State.LastSeen) < 3*iv
}

// TimestampStalled says whether an online device's trusted timestamp has
// not advanced for longer than stall (a frozen or blocked mirror).
func (d *Device) TimestampStalled(now time.Time, stall time.Duration) bool {
	return d.Online(now) && !d.State.TimestampSince.IsZero() && now.Sub(d.State.TimestampSince) > stall
}

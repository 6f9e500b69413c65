package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	neturl "net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet/wire"
	"github.com/beckmanconnect/bcupdate/internal/errs"
	"github.com/beckmanconnect/bcupdate/internal/netaddr"
	"github.com/beckmanconnect/bcupdate/internal/textsafe"
)

// The device side of the fleet service (docs/fleet.md): enrollment with a
// key of the device's own, and a signed status report every poll cycle.
// The fleet service is never needed to update: reporting runs after the
// update work, with short timeouts, and its errors are recorded, never
// returned as the cycle's.
//
// Files in the state directory (docs/formats.md):
//   fleet.key   the device's ed25519 private key (its seed, PEM, 0600); it
//               never leaves the device
//   fleet.json  the enrollment (URL, device ID, site) and reporting state
//   fleet-queue/ full reports that could not be sent, oldest first

const (
	fleetKeyFile = "fleet.key"
	// fleetKeyPEM is the PEM type of fleet.key: the 32-byte ed25519 seed
	// (RFC 8032), not PKCS#8, which would link every key type's parser.
	fleetKeyPEM    = "BCAGENT ED25519 SEED"
	fleetStateFile = "fleet.json"
	fleetQueueDir  = "fleet-queue"
	// fleetQueueMax bounds the queue: the oldest report goes first.
	fleetQueueMax = 64
	// fleetTimeout bounds each request to the fleet service.
	fleetTimeout = 10 * time.Second
)

// Audit events of the fleet.
const (
	EventFleetEnrolled EventKind = "fleet-enrolled"
	// EventFleetKeyRotated: the device's key was replaced (same device ID).
	EventFleetKeyRotated EventKind = "fleet-key-rotated"
	EventFleetRevoked    EventKind = "fleet-revoked"
)

// NoteFleetRevoked: the fleet service revoked this device.
const NoteFleetRevoked NoteKind = "fleet-revoked"

// ErrDeviceRevoked: the fleet service revoked this device's key; it no
// longer reports until it is enrolled again (exit 3).
var ErrDeviceRevoked = fmt.Errorf("%w: the fleet service revoked this device; enroll it again (bcagent enroll) with a new token", ErrVerification)

// FleetState is fleet.json.
type FleetState struct {
	URL      string    `json:"url"`
	DeviceID string    `json:"device_id"`
	Site     string    `json:"site"`
	Enrolled time.Time `json:"enrolled"`
	// Counter is the last report counter used; it is written before a
	// report is sent, so a crash never reuses one.
	Counter uint64 `json:"counter"`
	// Digest is that of the last full report the service accepted: an
	// unchanged state is then sent as a heartbeat.
	Digest string `json:"digest,omitempty"`
	// SendFull: the service asked for the full state next.
	SendFull     bool      `json:"send_full,omitempty"`
	LastAccepted time.Time `json:"last_accepted,omitzero"`
	LastError    string    `json:"last_error,omitempty"`
	LastErrorAt  time.Time `json:"last_error_at,omitzero"`
	Revoked      bool      `json:"revoked,omitempty"`
	// Dropped counts reports dropped from a full queue.
	Dropped int `json:"dropped,omitempty"`
	// Reported is the head (sequence number) of each log (wire.LogAudit,
	// wire.LogConsent) in the last full report made; the next vouches
	// for that entry as the log has it then.
	Reported map[string]int64 `json:"reported,omitempty"`
	// Vouch are entries the service asked the device to vouch for.
	Vouch map[string][]int64 `json:"vouch,omitempty"`
	// Rotating: a key rotation to fleet.key.new was sent but is not
	// known to have been taken; it is sent again before the next report.
	Rotating bool `json:"rotating,omitempty"`
}

// FleetStatus is the fleet part of `bcagent status --json`.
type FleetStatus struct {
	URL          string     `json:"url"`
	DeviceID     string     `json:"device_id"`
	Site         string     `json:"site"`
	LastAccepted *time.Time `json:"last_report_accepted"`
	LastError    string     `json:"last_error,omitempty"`
	Queued       int        `json:"queued"`
	Revoked      bool       `json:"revoked"`
}

// EnrollOptions are bcagent enroll's inputs.
type EnrollOptions struct {
	Fleet      string
	Token      string
	Enrollee   wire.Enrollee
	Instrument wire.Instrument
	// AgentVersion is the running agent's version.
	AgentVersion string
	// NewDevice enrolls afresh instead of replacing the enrolled device
	// (whose key is lost, or which the service no longer takes): the old
	// device ID stays for an admin to revoke.
	NewDevice bool
	Now       func() time.Time
}

// checkFleetURL: https, or http only to loopback; no query, fragment or
// credentials.
func checkFleetURL(raw string) (*neturl.URL, error) {
	u, err := neturl.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, errs.Usagef("fleet", "--fleet %q: want https://HOST[:PORT]", raw)
	}
	if u.Scheme == "http" && !netaddr.IsLoopback(u.Hostname()) {
		return nil, errs.Usagef("fleet", "--fleet %s: plain http is allowed only to loopback; use https", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, errs.Usagef("fleet", "--fleet %s: no query, fragment or credentials allowed", u.Redacted())
	}
	return u, nil
}

var emailShape = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)

func (o *EnrollOptions) check() error {
	if _, err := checkFleetURL(o.Fleet); err != nil {
		return err
	}
	for _, f := range []struct{ flag, v string }{{"token", o.Token}, {"email", o.Enrollee.Email}, {"name", o.Enrollee.Name},
		{"instrument-model", o.Instrument.Model}, {"instrument-id", o.Instrument.ID}, {"serial", o.Instrument.Serial}} {
		if strings.TrimSpace(f.v) == "" {
			return errs.Usagef(f.flag, "--%s is empty", f.flag)
		}
		if len(f.v) > 200 {
			return errs.Usagef(f.flag, "--%s is longer than 200 characters", f.flag)
		}
		if err := textsafe.Check(f.v, false); err != nil {
			return errs.Usagef(f.flag, "--%s: %v", f.flag, err)
		}
	}
	if !emailShape.MatchString(o.Enrollee.Email) {
		return errs.Usagef("email", "--email %q is not an email address", o.Enrollee.Email)
	}
	return nil
}

// Enroll registers this device with the fleet service: a new ed25519 key
// (an enrolled device's key is replaced, and the service retires the old
// device ID), the one-time token, the enrollee and the instrument. The new
// key is kept beside the old one until the service has accepted it; the
// fleet's host joins allowed_hosts.
func (a *Agent) Enroll(ctx context.Context, o EnrollOptions) (*FleetState, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	u, _ := checkFleetURL(o.Fleet)
	base := strings.TrimRight(u.String(), "/")
	old, err := a.fleetState()
	if err != nil && !o.NewDevice {
		return nil, err
	}
	left := "" // the enrolled device this enrollment leaves behind
	if o.NewDevice && old != nil {
		left, old = old.DeviceID, nil
	}
	if old != nil && old.Rotating {
		// fleet.key.new may be the key the service holds now.
		return nil, errs.Usagef("", "a key rotation of device %s is not finished: run bcagent report to finish it first, or enroll with --new-device to leave that device behind", old.DeviceID)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	root, err := a.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	pending := fleetKeyFile + ".enroll" // not .new: that may be a rotation's key
	if err := writeFileRootSync(root, pending, pem.EncodeToMemory(&pem.Block{Type: fleetKeyPEM, Bytes: priv.Seed()}), 0o600); err != nil {
		return nil, err
	}
	keep := false
	defer func() {
		if !keep {
			root.Remove(pending)
		}
	}()
	if err := restrictSecret(filepath.Join(a.dir, pending)); err != nil {
		return nil, err
	}
	req := wire.EnrollRequest{Token: o.Token, PublicKey: pub, Enrollee: o.Enrollee, Instrument: o.Instrument,
		AgentVersion: o.AgentVersion, Time: now().UTC()}
	// Re-enrolling retires the old device ID, which the service allows
	// only with the old key's signature too. Without a readable old key
	// the device enrolls afresh and the old ID is left to an admin.
	var oldKey ed25519.PrivateKey
	orphan := ""
	if old != nil && old.URL == base {
		if oldKey, err = a.fleetKey(); err == nil {
			req.Replaces = old.DeviceID
		} else {
			orphan = old.DeviceID
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	headers := map[string]string{wire.SignatureHeader: wire.SignEnroll(priv, body)}
	if req.Replaces != "" {
		headers[wire.ReplacesSignatureHeader] = wire.SignReplace(oldKey, body)
	}
	hc, err := newHTTPClient(a.cfg.RepositoryURL, append(slices.Clone(a.cfg.AllowedHosts), u.Host))
	if err != nil {
		return nil, err
	}
	var er wire.EnrollResponse
	if err := a.fleetPost(ctx, hc, base+wire.EnrollPath, body, headers, &er); err != nil {
		var fe *fleetError
		if errors.As(err, &fe) && fe.status >= 400 && fe.status < 500 {
			if req.Replaces != "" && fe.reason == wire.ReasonBadSignature {
				return nil, errs.Usagef("token", "the fleet service refused to let this enrollment replace device %s: %s (bcagent enroll --new-device enrolls afresh; an admin then revokes the old device)", req.Replaces, fe.msg)
			}
			return nil, errs.Usagef("token", "the fleet service refused the enrollment: %s", fe.msg)
		}
		return nil, err
	}
	if err := root.Rename(pending, fleetKeyFile); err != nil {
		return nil, err
	}
	keep = true
	if err := syncDirRoot(root, "."); err != nil {
		return nil, err
	}
	fs := &FleetState{URL: base, DeviceID: er.DeviceID, Site: er.Site, Enrolled: now().UTC()}
	if old != nil && old.URL == base {
		fs.Counter = old.Counter // counters only grow, also across keys
		if req.Replaces != "" {
			fs.Reported = old.Reported // the service carries the log heads over
		}
	}
	if err := a.saveFleetState(fs); err != nil {
		return nil, err
	}
	root.RemoveAll(fleetQueueDir) // reports of the old key would be refused
	if !slices.Contains(a.cfg.AllowedHosts, u.Host) && u.Host != hostOf(a.cfg.RepositoryURL) {
		next := *a.cfg
		next.AllowedHosts = append(slices.Clone(next.AllowedHosts), u.Host)
		if err := writeJSON(filepath.Join(a.dir, "config.json"), &next, 0o600); err != nil {
			return nil, err
		}
		*a.cfg = next
	}
	detail := fmt.Sprintf("device %s of site %s at %s", er.DeviceID, er.Site, base)
	if req.Replaces != "" {
		detail += " (a new key; replaces " + req.Replaces + ")"
	}
	if orphan != "" {
		detail += " (the key of the earlier device " + orphan + " was unreadable, so it was not retired: ask an admin to revoke it)"
		a.log.Warn("enrolled afresh; the earlier device was not retired", "earlier", orphan)
	}
	if left != "" {
		detail += " (enrolled as a new device; the earlier device " + left + " was not retired: ask an admin to revoke it)"
	}
	a.audit(AuditEvent{Event: EventFleetEnrolled, By: osUser(), Detail: detail})
	return fs, nil
}

// RotateKey replaces the device's key with a new one: same device ID and
// history, no token. The new key waits in fleet.key.new until the service
// has taken the rotation; if the agent stops before it knows, the next
// report sends the same rotation again first (the service takes it
// twice), so the device never loses its way back.
func (a *Agent) RotateKey(ctx context.Context) (*FleetState, error) {
	fs, err := a.fleetState()
	if err != nil {
		return nil, err
	}
	if fs == nil {
		return nil, usagef("this PC is not enrolled with a fleet service (bcagent enroll)")
	}
	if fs.Revoked {
		return nil, ErrDeviceRevoked
	}
	if err := a.rotate(ctx, fs, true); err != nil {
		return nil, err
	}
	return fs, nil
}

// rotate sends the key rotation to fleet.key.new (made now when fresh, or
// left by a rotation that was not finished) and, once the service took
// it, makes it the device's key.
func (a *Agent) rotate(ctx context.Context, fs *FleetState, fresh bool) error {
	old, err := a.fleetKey()
	if err != nil {
		return err
	}
	root, err := a.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	pending := fleetKeyFile + ".new"
	var next ed25519.PrivateKey
	if !fresh {
		next, err = readFleetKey(root, pending)
		if err != nil { // nothing to finish
			fs.Rotating = false
			return a.saveFleetState(fs)
		}
	} else {
		_, next, err = ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		if err := writeFileRootSync(root, pending, pem.EncodeToMemory(&pem.Block{Type: fleetKeyPEM, Bytes: next.Seed()}), 0o600); err != nil {
			return err
		}
		if err := restrictSecret(filepath.Join(a.dir, pending)); err != nil {
			return err
		}
		fs.Rotating = true
		if err := a.saveFleetState(fs); err != nil {
			return err
		}
	}
	body, err := json.Marshal(wire.RotateRequest{DeviceID: fs.DeviceID, OldPublicKey: old.Public().(ed25519.PublicKey),
		PublicKey: next.Public().(ed25519.PublicKey), Time: time.Now().UTC()})
	if err != nil {
		return err
	}
	var out struct{}
	err = a.fleetPost(ctx, a.http, fs.URL+wire.RotatePath, body, map[string]string{wire.DeviceHeader: fs.DeviceID,
		wire.SignatureHeader: wire.SignRotate(old, body), wire.NewKeySignatureHeader: wire.SignRotate(next, body)}, &out)
	var fe *fleetError
	switch {
	case err == nil:
	case errors.As(err, &fe) && fe.reason == wire.ReasonRevoked:
		fs.Revoked, fs.Rotating = true, false
		root.Remove(pending)
		a.saveFleetState(fs)
		return ErrDeviceRevoked
	case errors.As(err, &fe) && fe.status >= 400 && fe.status < 500 && fresh:
		// Refused at once: the old key stays the device's.
		fs.Rotating = false
		root.Remove(pending)
		a.saveFleetState(fs)
		return fmt.Errorf("the fleet service refused the key rotation: %s", fe.msg)
	case errors.As(err, &fe) && fe.status >= 400 && fe.status < 500:
		// A rotation sent again and refused: the service may hold
		// either key (the first try may have been taken). Both are
		// kept; the next report is tried with each (sendReport).
		return fmt.Errorf("the fleet service refused the key rotation sent again: %s; the next report tries both keys", fe.msg)
	default:
		return fmt.Errorf("key rotation not finished (sent again before the next report): %w", err)
	}
	return a.adoptPendingKey(fs, "a new key")
}

func hostOf(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// fleetState reads fleet.json (nil: not enrolled).
func (a *Agent) fleetState() (*FleetState, error) {
	root, err := a.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	data, err := root.ReadFile(fleetStateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st FleetState
	if err := json.Unmarshal(data, &st); err != nil || st.DeviceID == "" || st.URL == "" {
		return nil, fmt.Errorf("%s is damaged (%v): enroll again (bcagent enroll)", fleetStateFile, err)
	}
	return &st, nil
}

func (a *Agent) saveFleetState(st *FleetState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	root, err := a.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	return writeFileRootSync(root, fleetStateFile, append(data, '\n'), 0o600)
}

func (a *Agent) fleetKey() (ed25519.PrivateKey, error) {
	root, err := a.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return readFleetKey(root, fleetKeyFile)
}

// pendingKey reads fleet.key.new.
func (a *Agent) pendingKey() (ed25519.PrivateKey, error) {
	root, err := a.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return readFleetKey(root, fleetKeyFile+".new")
}

// adoptPendingKey makes fleet.key.new the device's key: the service has
// shown it holds it.
func (a *Agent) adoptPendingKey(fs *FleetState, how string) error {
	root, err := a.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.Rename(fleetKeyFile+".new", fleetKeyFile); err != nil {
		return err
	}
	if err := syncDirRoot(root, "."); err != nil {
		return err
	}
	fs.Rotating = false
	if err := a.saveFleetState(fs); err != nil {
		return err
	}
	a.audit(AuditEvent{Event: EventFleetKeyRotated, By: osUser(), Detail: fmt.Sprintf("device %s at %s: %s", fs.DeviceID, fs.URL, how)})
	return nil
}

// readFleetKey reads a device key file of the state directory.
func readFleetKey(root *os.Root, name string) (ed25519.PrivateKey, error) {
	data, err := root.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (enroll again: bcagent enroll)", name, err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != fleetKeyPEM || len(b.Bytes) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s is not this agent's device key (enroll again: bcagent enroll)", name)
	}
	return ed25519.NewKeyFromSeed(b.Bytes), nil
}

// fleetError is a refusal by the fleet service.
type fleetError struct {
	status int
	reason string
	msg    string
}

func (e *fleetError) Error() string {
	return fmt.Sprintf("the fleet service answered %d: %s", e.status, e.msg)
}

// fleetPost sends one signed request and decodes the answer into out.
func (a *Agent) fleetPost(ctx context.Context, hc *http.Client, url string, body []byte, headers map[string]string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, fleetTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the fleet service at %s: %w", url, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, wire.MaxBody))
	if err != nil {
		return fmt.Errorf("reading the fleet service's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e wire.ErrorResponse
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			// Escaped once, below, with the JSON error's text.
			e.Error = strings.TrimSpace(string(data))
			if len(e.Error) > 200 {
				e.Error = e.Error[:200]
			}
		}
		return &fleetError{status: resp.StatusCode, reason: e.Reason, msg: textsafe.Escape(e.Error)}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the fleet service's answer is not JSON: %w", err)
	}
	return nil
}

// fleetReport is what a full report says, for its digest.
type fleetReport struct {
	AgentVersion string           `json:"agent_version"`
	PollInterval string           `json:"poll_interval"`
	Components   []wire.Component `json:"components"`
	TUF          wire.TUF         `json:"tuf"`
	Audit        wire.LogHead     `json:"audit"`
	Consent      wire.LogHead     `json:"consent"`
}

// buildReport makes the full report of the device's state, and its digest.
func (a *Agent) buildReport() (*fleetReport, string, error) {
	st, err := a.loadState()
	if err != nil {
		return nil, "", err
	}
	r := a.statusOf(st)
	rep := &fleetReport{AgentVersion: a.agentVersion(), PollInterval: a.cfg.Interval().String(), Components: []wire.Component{},
		TUF: wire.TUF{RootVersion: a.trustedRootVersion(), TimestampVersion: st.Repository.TimestampVersion}}
	for _, cs := range r.Components {
		c := wire.Component{Name: cs.Name, Channel: a.cfg.Channel, Pinned: cs.Pinned, State: string(cs.State)}
		if cs.Installed != nil {
			c.Installed = *cs.Installed
		}
		if cs.Staged != nil {
			c.Staged = *cs.Staged
		}
		if comp := st.Components[cs.Name]; comp != nil {
			if comp.Failed != nil {
				c.Failed = comp.Failed.Version
				c.ByHand = strings.HasPrefix(comp.LastError, rolledBackByHand)
			}
			c.Reason = sanitizeReason(why(cs.Name, comp))
			if comp.Pointer != nil && cs.Pinned == "" {
				c.ChannelRelease, c.RolloutPercent = comp.Pointer.Version, comp.Pointer.Percent
			}
		}
		for _, f := range cs.Features {
			switch {
			case f.Active:
				c.ActiveFeatures = append(c.ActiveFeatures, f.ID)
			case f.Consent == ConsentPending:
				c.PendingFeatures = append(c.PendingFeatures, f.ID)
			case f.Consent == ConsentDeclined || f.Consent == ConsentRevoked:
				c.DeclinedFeatures = append(c.DeclinedFeatures, f.ID)
			}
		}
		rep.Components = append(rep.Components, c)
	}
	for _, l := range []struct {
		log  *chainLog
		into *wire.LogHead
	}{{a.auditLog(), &rep.Audit}, {a.consentLog(), &rep.Consent}} {
		h, err := l.log.readHead()
		if err != nil {
			return nil, "", err
		}
		if h != nil {
			*l.into = wire.LogHead{Seq: h.Seq, Hash: h.Hash}
		}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(b)
	return rep, hex.EncodeToString(sum[:]), nil
}

var (
	pathLike  = regexp.MustCompile(`(?:[A-Za-z]:)?[\\/][^\s"',;)]*`)
	quotedArg = regexp.MustCompile(`"[^"]*"`)
)

// sanitizeReason keeps a reason fit for the fleet service: no paths, no
// quoted values (a name, a command line), one line, at most 200 bytes.
func sanitizeReason(s string) string {
	s = pathLike.ReplaceAllString(s, "…")
	s = quotedArg.ReplaceAllString(s, "…")
	s = strings.Join(strings.Fields(textsafe.Escape(s)), " ")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "")
	}
	return s
}

// agentVersion is the version in the agent's user agent ("bcagent/1.4.0").
func (a *Agent) agentVersion() string {
	if t, ok := a.http.Transport.(*guardedTransport); ok {
		return strings.TrimPrefix(t.userAgent, "bcagent/")
	}
	return "dev"
}

// trustedRootVersion is the version of tuf/root.json (0: unreadable).
func (a *Agent) trustedRootVersion() int64 {
	root, err := a.openRoot()
	if err != nil {
		return 0
	}
	defer root.Close()
	data, err := root.ReadFile(path.Join("tuf", "root.json"))
	if err != nil {
		return 0
	}
	var m struct {
		Signed struct {
			Version int64 `json:"version"`
		} `json:"signed"`
	}
	json.Unmarshal(data, &m)
	return m.Signed.Version
}

// ReportResult says what a report did.
type ReportResult struct {
	Enrolled  bool // false: nothing to do
	Heartbeat bool
	Sent      int // reports the service accepted (queued ones included)
	Queued    int // waiting for the next cycle
}

// Report sends this cycle's report to the fleet service, after the queued
// ones, oldest first. A report the service cannot be reached for waits in
// the queue (a heartbeat does not: the next says the same). It returns
// ErrDeviceRevoked once the service has revoked this device; other errors
// are also recorded in fleet.json for status.
func (a *Agent) Report(ctx context.Context) (*ReportResult, error) {
	res := &ReportResult{}
	fs, err := a.fleetState()
	if err != nil || fs == nil {
		return res, err
	}
	res.Enrolled = true
	if fs.Revoked {
		return res, ErrDeviceRevoked
	}
	if fs.Rotating {
		if err := a.rotate(ctx, fs, false); err != nil {
			if errors.Is(err, ErrDeviceRevoked) {
				return res, err
			}
			a.log.Warn("finishing the key rotation", "err", err)
		}
	}
	key, err := a.fleetKey()
	if err != nil {
		return res, err
	}
	err = a.reportCycle(ctx, fs, key, res)
	if err != nil {
		fs.LastError, fs.LastErrorAt = oneLine(err.Error()), time.Now().UTC()
	} else {
		fs.LastError, fs.LastErrorAt = "", time.Time{}
	}
	if serr := a.saveFleetState(fs); serr != nil && err == nil {
		err = serr
	}
	res.Queued = a.queueLen()
	return res, err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func (a *Agent) reportCycle(ctx context.Context, fs *FleetState, key ed25519.PrivateKey, res *ReportResult) error {
	rep, digest, err := a.buildReport()
	if err != nil {
		return err
	}
	// Queued reports first, oldest first; one that cannot be sent stops
	// the round (the service is away) and today's joins the queue.
	if err := a.flushQueue(ctx, fs, key, res); err != nil {
		if isUnreachable(err) {
			return a.enqueue(fs, a.fullReport(fs, rep, digest))
		}
		if errors.Is(err, ErrDeviceRevoked) {
			return err
		}
	}
	// A heartbeat answered send_full is followed by the full report, and
	// a full report answered vouch by another that vouches.
	for range 3 {
		var w wire.Report
		heartbeat := digest == fs.Digest && !fs.SendFull
		if heartbeat {
			fs.Counter = nextCounter(fs.Counter)
			w = wire.Report{DeviceID: fs.DeviceID, Counter: fs.Counter, Time: time.Now().UTC(), Heartbeat: true, Digest: digest}
		} else {
			w = a.fullReport(fs, rep, digest)
		}
		body, err := json.Marshal(w)
		if err != nil {
			return err
		}
		// The counter is on disk before the report leaves.
		if err := a.saveFleetState(fs); err != nil {
			return err
		}
		resp, err := a.sendReport(ctx, fs, key, body)
		switch {
		case err == nil:
		case isUnreachable(err) && !heartbeat:
			return errors.Join(err, a.enqueue(fs, w))
		default:
			return err
		}
		res.Sent++
		res.Heartbeat = heartbeat
		fs.LastAccepted = time.Now().UTC()
		if !heartbeat {
			fs.Digest, fs.SendFull = digest, false
		}
		if takeVouch(fs, resp) && !heartbeat {
			fs.SendFull = true
			continue
		}
		if !resp.SendFull || !heartbeat {
			return nil
		}
		fs.SendFull = true
	}
	return nil
}

// fullReport makes the wire report of rep with the next counter. Each
// log's head comes with the entries the device vouches for (the head of
// its last full report and those the service asked for), read from the
// log as it is now.
func (a *Agent) fullReport(fs *FleetState, rep *fleetReport, digest string) wire.Report {
	fs.Counter = nextCounter(fs.Counter)
	tuf, audit, consent := rep.TUF, rep.Audit, rep.Consent
	audit.At = vouchFor(a.auditLog(), audit.Seq, fs.Reported[wire.LogAudit], fs.Vouch[wire.LogAudit])
	consent.At = vouchFor(a.consentLog(), consent.Seq, fs.Reported[wire.LogConsent], fs.Vouch[wire.LogConsent])
	fs.Reported = map[string]int64{wire.LogAudit: audit.Seq, wire.LogConsent: consent.Seq}
	fs.Vouch = nil
	return wire.Report{DeviceID: fs.DeviceID, Counter: fs.Counter, Time: time.Now().UTC(), Digest: digest,
		AgentVersion: rep.AgentVersion, PollInterval: rep.PollInterval, Components: rep.Components,
		TUF: &tuf, Audit: &audit, Consent: &consent}
}

// maxVouch bounds the entries one report vouches for per log.
const maxVouch = 16

// vouchFor reads the hashes of the entries seqs (those below head, at
// most maxVouch) from l as it is now. An entry the log no longer has, or
// a log that does not verify, is vouched for with an empty hash: the
// service sees that it changed.
func vouchFor(l *chainLog, head, reported int64, asked []int64) []wire.LogPoint {
	var seqs []int64
	for _, q := range append([]int64{reported}, asked...) {
		if q > 0 && q != head && !slices.Contains(seqs, q) && len(seqs) < maxVouch {
			seqs = append(seqs, q)
		}
	}
	if len(seqs) == 0 {
		return nil
	}
	hashes := map[int64]string{}
	if entries, err := l.read(); err == nil {
		for _, e := range entries {
			hashes[e.Seq] = e.Hash
		}
	}
	out := make([]wire.LogPoint, 0, len(seqs))
	for _, q := range seqs {
		out = append(out, wire.LogPoint{Seq: q, Hash: hashes[q]})
	}
	return out
}

// takeVouch keeps what an accepted report's answer asks to vouch for; it
// says whether there is any.
func takeVouch(fs *FleetState, resp *wire.ReportResponse) bool {
	if resp == nil || len(resp.Vouch) == 0 {
		return false
	}
	if fs.Vouch == nil {
		fs.Vouch = map[string][]int64{}
	}
	for name, seqs := range resp.Vouch {
		if name != wire.LogAudit && name != wire.LogConsent {
			continue
		}
		for _, q := range seqs {
			if !slices.Contains(fs.Vouch[name], q) && len(fs.Vouch[name]) < maxVouch {
				fs.Vouch[name] = append(fs.Vouch[name], q)
			}
		}
	}
	return len(fs.Vouch) > 0
}

// nextCounter is above last and, normally, the time in microseconds: a
// state directory restored from a backup still counts past what the
// service has seen.
func nextCounter(last uint64) uint64 {
	if now := uint64(time.Now().UnixMicro()); now > last {
		return now
	}
	return last + 1
}

// sendReport posts one report body and handles a refusal: revoked stops
// all reporting; anything else the service refused is dropped.
func (a *Agent) sendReport(ctx context.Context, fs *FleetState, key ed25519.PrivateKey, body []byte) (*wire.ReportResponse, error) {
	var resp wire.ReportResponse
	err := a.fleetPost(ctx, a.http, fs.URL+wire.ReportPath, body,
		map[string]string{wire.DeviceHeader: fs.DeviceID, wire.SignatureHeader: wire.SignReport(key, body)}, &resp)
	var fe *fleetError
	if errors.As(err, &fe) && fe.reason == wire.ReasonBadSignature && fs.Rotating {
		// An unfinished rotation may have been taken after all: the
		// service then holds the new key. A report it accepts signed by
		// that key proves it, and the new key becomes the device's.
		if next, kerr := a.pendingKey(); kerr == nil {
			err = a.fleetPost(ctx, a.http, fs.URL+wire.ReportPath, body,
				map[string]string{wire.DeviceHeader: fs.DeviceID, wire.SignatureHeader: wire.SignReport(next, body)}, &resp)
			if err == nil {
				if aerr := a.adoptPendingKey(fs, "the new key of an unfinished rotation, which the service holds"); aerr != nil {
					return nil, aerr
				}
				copy(key, next)
			}
		}
	}
	if errors.As(err, &fe) && fe.reason == wire.ReasonRevoked {
		fs.Revoked = true
		a.removeQueue()
		a.audit(AuditEvent{Event: EventFleetRevoked, Detail: fmt.Sprintf("device %s at %s: %s", fs.DeviceID, fs.URL, fe.msg)})
		a.raise(NoteFleetRevoked, SeverityWarning, "", "",
			"The fleet service revoked this device ("+fs.DeviceID+"); it no longer reports. Enroll it again with a new token (bcagent enroll).")
		return nil, ErrDeviceRevoked
	}
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

// isUnreachable: the service could not be reached or failed (5xx); a
// report is worth keeping for later.
func isUnreachable(err error) bool {
	var fe *fleetError
	if errors.As(err, &fe) {
		return fe.status >= 500
	}
	return err != nil && !errors.Is(err, ErrDeviceRevoked)
}

func (a *Agent) queueNames() []string {
	root, err := a.openRoot()
	if err != nil {
		return nil
	}
	defer root.Close()
	f, err := root.Open(fleetQueueDir)
	if err != nil {
		return nil
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	names = slices.DeleteFunc(names, func(n string) bool { return !strings.HasSuffix(n, ".json") })
	slices.Sort(names) // zero-padded counters: oldest first
	return names
}

func (a *Agent) queueLen() int { return len(a.queueNames()) }

func (a *Agent) removeQueue() {
	if root, err := a.openRoot(); err == nil {
		root.RemoveAll(fleetQueueDir)
		root.Close()
	}
}

// enqueue keeps a full report for later, dropping the oldest when full.
func (a *Agent) enqueue(fs *FleetState, w wire.Report) error {
	body, err := json.Marshal(w)
	if err != nil {
		return err
	}
	root, err := a.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	if err := root.Mkdir(fleetQueueDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	names := a.queueNames()
	for len(names) >= fleetQueueMax {
		root.Remove(path.Join(fleetQueueDir, names[0]))
		names = names[1:]
		fs.Dropped++
	}
	if err := writeFileRootSync(root, path.Join(fleetQueueDir, fmt.Sprintf("%020d.json", w.Counter)), body, 0o600); err != nil {
		return err
	}
	return syncDirRoot(root, fleetQueueDir)
}

// flushQueue sends the queued reports, oldest first; each is removed once
// the service accepted or refused it (a refused one would never be
// accepted). It stops at the first the service cannot be reached for.
func (a *Agent) flushQueue(ctx context.Context, fs *FleetState, key ed25519.PrivateKey, res *ReportResult) error {
	names := a.queueNames()
	if len(names) == 0 {
		return nil
	}
	root, err := a.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	for _, n := range names {
		p := path.Join(fleetQueueDir, n)
		body, err := root.ReadFile(p)
		if err != nil {
			return err
		}
		resp, err := a.sendReport(ctx, fs, key, body)
		if isUnreachable(err) || errors.Is(err, ErrDeviceRevoked) {
			return err
		}
		if err == nil {
			res.Sent++
			if takeVouch(fs, resp) {
				fs.SendFull = true
			}
		} else {
			a.log.Warn("the fleet service refused a queued report; dropped", "report", n, "err", err)
		}
		root.Remove(p)
	}
	return nil
}

// fleetStatus is the fleet part of status (nil: not enrolled).
func (a *Agent) fleetStatus() *FleetStatus {
	fs, err := a.fleetState()
	if err != nil {
		return &FleetStatus{LastError: err.Error()}
	}
	if fs == nil {
		return nil
	}
	s := &FleetStatus{URL: fs.URL, DeviceID: fs.DeviceID, Site: fs.Site, LastError: fs.LastError, Queued: a.queueLen(), Revoked: fs.Revoked}
	if !fs.LastAccepted.IsZero() {
		t := fs.LastAccepted
		s.LastAccepted = &t
	}
	return s
}

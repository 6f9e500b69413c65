// Package wire is what the agent and the fleet service say to each
// other: the enrollment request, the device's status report, and how
// both are signed with the device's own ed25519 key. It uses the standard
// library only, so the agent links no part of the service.
//
// A device proves every message with its key: the signature covers a
// domain string and the exact body bytes, sent in the Signature header
// (base64), so nothing is re-encoded before it is checked. Reports carry
// a counter that only grows; the service accepts a report only with a
// counter above the last one it accepted from that device (replay
// protection), and never one larger than MaxBody.
package wire

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// Paths of the device API (relative to the fleet URL).
const (
	EnrollPath = "/v1/enroll"
	ReportPath = "/v1/report"
	RotatePath = "/v1/rotate"
)

// SignatureHeader carries base64(ed25519 signature) of a request body;
// DeviceHeader the device ID of a report.
const (
	SignatureHeader = "Bcfleet-Signature"
	DeviceHeader    = "Bcfleet-Device"
	// ReplacesSignatureHeader carries the signature of an enrollment
	// body by the key of the device it replaces (EnrollRequest.Replaces):
	// only the holder of that key may retire it.
	ReplacesSignatureHeader = "Bcfleet-Replaces-Signature"
	// NewKeySignatureHeader carries a key rotation's signature by the
	// new key (proof that the device holds it); SignatureHeader carries
	// the one by the device's current key.
	NewKeySignatureHeader = "Bcfleet-New-Key-Signature"
)

// MaxBody is the largest request the service reads; a larger one is
// refused unread.
const MaxBody = 64 << 10

// MaxHeartbeat is the most a heartbeat (an unchanged cycle) may take.
const MaxHeartbeat = 512

// Domains separate what a signature may be taken for.
const (
	enrollDomain  = "bcfleet-enroll-v1\n"
	reportDomain  = "bcfleet-report-v1\n"
	replaceDomain = "bcfleet-replace-v1\n"
	rotateDomain  = "bcfleet-rotate-v1\n"
)

// Enrollee is the person who enrolled the device: personal data, sealed
// at rest by the service.
type Enrollee struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

// Instrument is the instrument the PC belongs to.
type Instrument struct {
	Model  string `json:"model"`
	ID     string `json:"id"`
	Serial string `json:"serial"`
}

// EnrollRequest registers a device's public key with a one-time token.
// Its signature (by the key it registers) proves the device holds it.
type EnrollRequest struct {
	Token        string     `json:"token"`
	PublicKey    []byte     `json:"public_key"` // ed25519, 32 bytes
	Enrollee     Enrollee   `json:"enrollee"`
	Instrument   Instrument `json:"instrument"`
	AgentVersion string     `json:"agent_version"`
	Time         time.Time  `json:"time"`
	// Replaces: the device ID this key replaces (re-enrollment, key
	// rotation); the token must be of the same site, and the request
	// must also be signed by the replaced device's key
	// (ReplacesSignatureHeader).
	Replaces string `json:"replaces,omitempty"`
}

// RotateRequest replaces an enrolled device's key with a new one, keeping
// its device ID and history; no token is needed. It is signed by both
// keys. Sending it again after the service took it (a crash before the
// device kept its new key) is accepted and changes nothing.
type RotateRequest struct {
	DeviceID     string    `json:"device_id"`
	OldPublicKey []byte    `json:"old_public_key"`
	PublicKey    []byte    `json:"public_key"`
	Time         time.Time `json:"time"`
}

// EnrollResponse names the device.
type EnrollResponse struct {
	DeviceID string `json:"device_id"`
	Site     string `json:"site"`
}

// Report is one poll cycle's status of a device. A heartbeat (nothing
// changed since the last accepted report) has only DeviceID, Counter,
// Time, Heartbeat and Digest.
type Report struct {
	DeviceID  string    `json:"device_id"`
	Counter   uint64    `json:"counter"`
	Time      time.Time `json:"time"`
	Heartbeat bool      `json:"heartbeat,omitempty"`
	// Digest is the sha256 (hex) of the full report's state: what a
	// heartbeat says is unchanged.
	Digest string `json:"digest"`

	AgentVersion string      `json:"agent_version,omitempty"`
	PollInterval string      `json:"poll_interval,omitempty"`
	Components   []Component `json:"components,omitempty"`
	TUF          *TUF        `json:"tuf,omitempty"`
	Audit        *LogHead    `json:"audit,omitempty"`
	Consent      *LogHead    `json:"consent,omitempty"`
}

// Component is one component's state on the device. Reason is sanitized
// (no paths, no names): why it failed or waits.
type Component struct {
	Name      string `json:"name"`
	Installed string `json:"installed,omitempty"`
	Staged    string `json:"staged,omitempty"`
	Channel   string `json:"channel"`
	Pinned    string `json:"pinned,omitempty"`
	State     string `json:"state"`
	Reason    string `json:"reason,omitempty"`
	// Failed is the version that was rolled back and is held back (state
	// failed), so a rollout can count it.
	Failed string `json:"failed,omitempty"`
	// ByHand: Failed was left by a person's rollback (bcagent rollback),
	// not by a failed install or health check.
	ByHand          bool     `json:"by_hand,omitempty"`
	ActiveFeatures  []string `json:"active_features,omitempty"`
	PendingFeatures []string `json:"pending_features,omitempty"`
	// DeclinedFeatures are gated features a person declined (or revoked)
	// on this device; absent from agents before it.
	DeclinedFeatures []string `json:"declined_features,omitempty"`
	// ChannelRelease and RolloutPercent are what the channel pointer the
	// agent last verified (TUF) says: the version it names and the share
	// of devices it is rolled out to (1 to 100; 100 when the pointer sets
	// none). Absent for a pinned component and from agents before them.
	ChannelRelease string `json:"channel_release,omitempty"`
	RolloutPercent int    `json:"rollout_percent,omitempty"`
}

// TUF is the repository metadata the device trusts.
type TUF struct {
	RootVersion      int64 `json:"root_version"`
	TimestampVersion int64 `json:"timestamp_version"`
}

// LogHead is a hash-chained log's head: how many entries, and the hash of
// the last.
type LogHead struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
	// At vouches for earlier entries as the device's log has them now:
	// the head of its last full report, and any the service asked for
	// (ReportResponse.Vouch). A log rewritten and then grown past its old
	// head shows here as another hash; an entry the log no longer has is
	// sent with an empty hash (and the service sees the shorter head).
	At []LogPoint `json:"at,omitempty"`
}

// LogPoint is one entry of a log: its sequence number and hash.
type LogPoint struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// Logs the service keeps heads of (the keys of Vouch).
const (
	LogAudit   = "audit"
	LogConsent = "consent"
)

// ReportResponse is the service's answer to an accepted report.
type ReportResponse struct {
	// SendFull: the service has no full report with the heartbeat's
	// digest (it was lost); the next report must be a full one.
	SendFull bool `json:"send_full,omitempty"`
	// Vouch asks for the hashes of these entries (by log, LogAudit or
	// LogConsent) in the next full report, which follows at once: the
	// service could not tie the new head to the one it had.
	Vouch map[string][]int64 `json:"vouch,omitempty"`
}

// ErrorResponse is the body of every refusal: one line, and a reason
// code that scripts and metrics use.
type ErrorResponse struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

// Reasons for refusing a device's request.
const (
	ReasonMalformed    = "malformed"
	ReasonTooLarge     = "too-large"
	ReasonBadSignature = "bad-signature"
	ReasonReplayed     = "replayed"
	ReasonUnknown      = "unknown-device"
	ReasonRevoked      = "revoked"
	ReasonBadToken     = "bad-token"
)

// SignEnroll signs an enrollment body.
func SignEnroll(key ed25519.PrivateKey, body []byte) string {
	return sign(key, enrollDomain, body)
}

// SignReport signs a report body.
func SignReport(key ed25519.PrivateKey, body []byte) string {
	return sign(key, reportDomain, body)
}

// SignReplace signs an enrollment body with the key of the device it
// replaces.
func SignReplace(oldKey ed25519.PrivateKey, body []byte) string {
	return sign(oldKey, replaceDomain, body)
}

// VerifyReplace checks an enrollment body's signature by the replaced
// device's key.
func VerifyReplace(oldPub ed25519.PublicKey, body []byte, sig string) error {
	return verify(oldPub, replaceDomain, body, sig)
}

// SignRotate signs a key rotation body (with the current key for
// SignatureHeader, with the new one for NewKeySignatureHeader).
func SignRotate(key ed25519.PrivateKey, body []byte) string {
	return sign(key, rotateDomain, body)
}

// VerifyRotate checks a key rotation body's signature by pub.
func VerifyRotate(pub ed25519.PublicKey, body []byte, sig string) error {
	return verify(pub, rotateDomain, body, sig)
}

// VerifyEnroll checks an enrollment body's signature by pub.
func VerifyEnroll(pub ed25519.PublicKey, body []byte, sig string) error {
	return verify(pub, enrollDomain, body, sig)
}

// VerifyReport checks a report body's signature by pub.
func VerifyReport(pub ed25519.PublicKey, body []byte, sig string) error {
	return verify(pub, reportDomain, body, sig)
}

// ErrBadSignature: a body's signature is missing, malformed or wrong.
var ErrBadSignature = errors.New("signature does not verify")

func sign(key ed25519.PrivateKey, domain string, body []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(key, append([]byte(domain), body...)))
}

func verify(pub ed25519.PublicKey, domain string, body []byte, sig string) error {
	if len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key of %d bytes", ErrBadSignature, len(pub))
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return fmt.Errorf("%w: not a base64 ed25519 signature", ErrBadSignature)
	}
	if !ed25519.Verify(pub, append([]byte(domain), body...), raw) {
		return ErrBadSignature
	}
	return nil
}

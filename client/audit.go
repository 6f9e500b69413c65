package client

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// EventKind is a kind of audit entry.
type EventKind string

// Audit events.
const (
	EventUpdateAvailable       EventKind = "update-available"
	EventStaged                EventKind = "staged"
	EventAwaitingAuthorization EventKind = "awaiting-authorization"
	EventInstalled             EventKind = "installed"
	EventRollback              EventKind = "rollback"
	EventVerificationFailure   EventKind = "verification-failure"
	EventConsentDecision       EventKind = "consent-decision"
	EventConsentRevoked        EventKind = "consent-revoked"
	EventConsentNoAnswer       EventKind = "consent-no-answer"
	EventFeaturesRestored      EventKind = "features-restored"
	EventPolicyAccepted        EventKind = "policy-accepted"
	EventFailed                EventKind = "failed"
	EventPinned                EventKind = "pinned"
	EventUnpinned              EventKind = "unpinned"
	EventStateRecovered        EventKind = "state-recovered"
	// EventNotificationAcknowledged: a person acknowledged an active
	// notification (bcagent notifications ack), which ends it (ack.go).
	EventNotificationAcknowledged EventKind = "notification-acknowledged"
)

// AuditEvent is one entry of audit.jsonl.
type AuditEvent struct {
	Time      time.Time `json:"time"`
	Event     EventKind `json:"event"`
	Device    string    `json:"device"`
	Component string    `json:"component,omitempty"`
	Version   string    `json:"version,omitempty"`
	Feature   string    `json:"feature,omitempty"`
	Decision  Decision  `json:"decision,omitempty"`
	By        string    `json:"by,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

func (a *Agent) auditLog() *chainLog   { return &chainLog{path: filepath.Join(a.dir, "audit.jsonl")} }
func (a *Agent) consentLog() *chainLog { return &chainLog{path: filepath.Join(a.dir, "consent.jsonl")} }

// audit appends an event. A damaged audit log does not stop updates (a
// security fix must still install) but is raised as a critical notification.
func (a *Agent) audit(ev AuditEvent) {
	ev.Time = time.Now().UTC()
	ev.Device = a.cfg.DeviceID
	if b := a.batch; b != nil {
		b.events = append(b.events, ev)
		return
	}
	a.appendAudit(ev)
}

// auditNow appends one event at once, outside any batch, and returns
// the error instead of raising it: for a person's act that must not
// happen unrecorded (ack.go). The event sink gets it once it is appended.
func (a *Agent) auditNow(ev AuditEvent) error {
	ev.Time = time.Now().UTC()
	ev.Device = a.cfg.DeviceID
	if err := a.auditLog().Append(ev); err != nil {
		return err
	}
	a.emitAudit(ev)
	return nil
}

// appendAudit appends events to the audit log in as few appends as the
// log allows (one fsync each, at most maxLogBatch entries).
// Each is also written to the event sink (eventlog.go), appended or not.
func (a *Agent) appendAudit(evs ...AuditEvent) {
	a.emitAudit(evs...)
	for len(evs) > 0 {
		n := min(len(evs), maxLogBatch)
		batch := make([]any, n)
		for i, ev := range evs[:n] {
			batch[i] = ev
		}
		evs = evs[n:]
		if err := a.auditLog().AppendAll(batch); err != nil {
			a.log.Error("audit log", "err", err)
			a.raise(NoteLogDamaged, SeverityCritical, "", "", fmt.Sprintf("the audit log cannot be appended to: %v; run bcagent audit verify", err))
			return
		}
	}
}

// failed records a failure of a step on a component: verification
// failures (possible attacks) are audited and raised as critical.
func (a *Agent) failed(err error, component, version string) error {
	if err == nil {
		return nil
	}
	if a.bundle != nil && isNetwork(err) {
		// Importing, nothing is fetched: what is missing is missing from the bundle.
		err = verifyf("the bundle lacks a file its verified metadata needs: %v", err)
	}
	var expired *metadata.ErrExpiredMetadata
	switch {
	case errors.Is(err, ErrAuthorizationRequired):
	case errors.As(err, &expired):
		a.audit(AuditEvent{Event: EventVerificationFailure, Component: component, Version: version, Detail: err.Error()})
		a.raise(NoteMetadataExpired, SeverityCritical, "", "", "the repository's metadata has expired: nothing new will be installed until the publisher refreshes it (or someone is replaying old metadata)")
	case errors.Is(err, ErrVerification):
		a.audit(AuditEvent{Event: EventVerificationFailure, Component: component, Version: version, Detail: err.Error()})
		a.raise(NoteVerificationFailure, SeverityCritical, component, version, "an update failed verification and was refused; this may be an attack: "+err.Error())
	case component != "":
		a.audit(AuditEvent{Event: EventFailed, Component: component, Version: version, Detail: err.Error()})
	case isNetwork(err):
		err = unreachable(a.cfg.RepositoryURL, err)
		a.log.Info("repository unreachable", "err", errors.Unwrap(err))
		a.raise(NoteRepositoryUnreachable, SeverityWarning, "", "", err.Error()+"; the agent will retry")
	default:
		a.audit(AuditEvent{Event: EventFailed, Detail: err.Error()})
		a.raise(NoteCheckFailed, SeverityWarning, "", "", "the update check failed on this PC; what is installed keeps running and the agent will retry: "+err.Error())
	}
	return err
}

// AuditReport is the result of VerifyLogs.
type AuditReport struct {
	AuditEntries   int `json:"audit_entries"`
	ConsentEntries int `json:"consent_entries"`
}

// VerifyLogs checks both hash-chained logs; the error names the first bad
// entry.
func (a *Agent) VerifyLogs() (*AuditReport, error) {
	au, err := a.auditLog().Verify()
	if err != nil {
		return nil, err
	}
	co, err := a.consentLog().Verify()
	if err != nil {
		return nil, err
	}
	return &AuditReport{AuditEntries: len(au), ConsentEntries: len(co)}, nil
}

// ExportLogs returns the verified entries of both logs.
func (a *Agent) ExportLogs() (audit, consent []LogEntry, err error) {
	if audit, err = a.auditLog().Verify(); err != nil {
		return nil, nil, err
	}
	if consent, err = a.consentLog().Verify(); err != nil {
		return nil, nil, err
	}
	return audit, consent, nil
}

// DescribeEntry is a one-line human summary of a log entry.
func DescribeEntry(e LogEntry) string { return describeEntry(e) }

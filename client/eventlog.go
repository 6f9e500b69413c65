package client

import (
	"fmt"
	"strings"

	"github.com/beckmanconnect/bcupdate/internal/textsafe"
)

// Events for the Windows Event Log (docs/operations.md, "The Windows Event
// Log"). On Windows the agent writes every notification it raises and every
// audit entry it appends to the Application log under its own source
// (bcagent), so that a site's existing monitoring (SCOM, Splunk, a
// forwarded-events subscription) picks them up. Each kind has an event ID
// that never changes meaning: monitoring rules are written against these
// numbers, so a kind may get a new ID but an ID is never given to another
// kind (eventlog_test.go pins them). The IDs fit the 1 to 1000 that
// EventCreate.exe, the source's message file, can show.
//
//	101-199  notifications, at the notification's severity (info:
//	         Information, warning: Warning, critical: Error); raised
//	         once while active, again when its message changes
//	201-299  audit entries (audit.jsonl), at the level of their kind
//	300-399  the service: started, stopped, and the warnings and errors
//	         it logs (cmd/bcagent, internal/eventlog)
//
// What is written is a copy: notifications.json and the hash-chained
// audit.jsonl stay the record, and a sink that fails is logged, never an
// error of the step that raised the event.

// EventSink receives the agent's events. *eventlog.Log of
// golang.org/x/sys/windows/svc/eventlog is one; tests use a fake. An
// implementation must be safe for concurrent use; its errors are logged.
type EventSink interface {
	Info(id uint32, msg string) error
	Warning(id uint32, msg string) error
	Error(id uint32, msg string) error
}

// EventID is the Event Log ID of a kind of event. The values are a
// contract with the sites' monitoring: never renumber one.
type EventID uint32

// Notification events (101-199), by NoteKind.
const (
	EventIDNoteUpdateAvailable       EventID = 101
	EventIDNoteStaged                EventID = 102
	EventIDNoteAwaitingAuthorization EventID = 103
	EventIDNoteInstalled             EventID = 104
	EventIDNoteFailed                EventID = 105
	EventIDNoteRolledBack            EventID = 106
	EventIDNoteMetadataExpiring      EventID = 107
	EventIDNoteMetadataExpired       EventID = 108
	EventIDNoteVerificationFailure   EventID = 109
	EventIDNoteLogDamaged            EventID = 110
	EventIDNoteRepositoryUnreachable EventID = 111
	EventIDNoteYanked                EventID = 112
	EventIDNoteFeaturesRestored      EventID = 113
	EventIDNoteCheckFailed           EventID = 114
	EventIDNoteNoRelease             EventID = 115
	EventIDNoteStateRecovered        EventID = 116
	EventIDNoteFleetRevoked          EventID = 117
	// EventIDNoteOther is a notification of a kind this table does not
	// know (none today: a test requires every kind to have its own).
	EventIDNoteOther EventID = 199
)

// Audit events (201-299), by EventKind.
const (
	EventIDAuditUpdateAvailable       EventID = 201
	EventIDAuditStaged                EventID = 202
	EventIDAuditAwaitingAuthorization EventID = 203
	EventIDAuditInstalled             EventID = 204
	EventIDAuditFailed                EventID = 205
	EventIDAuditRollback              EventID = 206
	EventIDAuditVerificationFailure   EventID = 209
	EventIDAuditFeaturesRestored      EventID = 213
	EventIDAuditStateRecovered        EventID = 216
	EventIDAuditFleetRevoked          EventID = 217
	EventIDAuditConsentDecision       EventID = 220
	EventIDAuditConsentRevoked        EventID = 221
	EventIDAuditConsentNoAnswer       EventID = 222
	EventIDAuditPolicyAccepted        EventID = 223
	EventIDAuditPinned                EventID = 224
	EventIDAuditUnpinned              EventID = 225
	EventIDAuditConfigChanged         EventID = 226
	EventIDAuditBundleImported        EventID = 227
	EventIDAuditFleetEnrolled         EventID = 228
	EventIDAuditFleetKeyRotated       EventID = 229
	EventIDAuditNoteAcknowledged      EventID = 230
	// EventIDAuditOther is an audit entry of a kind this table does not
	// know (none today, as for EventIDNoteOther).
	EventIDAuditOther EventID = 299
)

// Service events (300-399), written by the Windows service (cmd/bcagent).
const (
	EventIDServiceStarted EventID = 300
	EventIDServiceStopped EventID = 301
	// EventIDServiceFailed: the service could not start or stopped with
	// an error (another service holds the state directory, no init yet).
	EventIDServiceFailed EventID = 302
	// EventIDLogWarning and EventIDLogError are any other warning or
	// error the service logs (internal/eventlog.Handler): a drop-folder
	// bundle refused, a failed poll, a notify_command that failed.
	EventIDLogWarning EventID = 310
	EventIDLogError   EventID = 311
)

// EventLevel is an Event Log entry's type.
type EventLevel int

// Event levels.
const (
	EventInformation EventLevel = iota
	EventWarning
	EventError
)

func (l EventLevel) String() string {
	switch l {
	case EventWarning:
		return "Warning"
	case EventError:
		return "Error"
	}
	return "Information"
}

// noteEventIDs maps every notification kind to its event ID.
var noteEventIDs = map[NoteKind]EventID{
	NoteUpdateAvailable:       EventIDNoteUpdateAvailable,
	NoteStaged:                EventIDNoteStaged,
	NoteAwaitingAuthorization: EventIDNoteAwaitingAuthorization,
	NoteInstalled:             EventIDNoteInstalled,
	NoteFailed:                EventIDNoteFailed,
	NoteRolledBack:            EventIDNoteRolledBack,
	NoteMetadataExpiring:      EventIDNoteMetadataExpiring,
	NoteMetadataExpired:       EventIDNoteMetadataExpired,
	NoteVerificationFailure:   EventIDNoteVerificationFailure,
	NoteLogDamaged:            EventIDNoteLogDamaged,
	NoteRepositoryUnreachable: EventIDNoteRepositoryUnreachable,
	NoteYanked:                EventIDNoteYanked,
	NoteFeaturesRestored:      EventIDNoteFeaturesRestored,
	NoteCheckFailed:           EventIDNoteCheckFailed,
	NoteNoRelease:             EventIDNoteNoRelease,
	NoteStateRecovered:        EventIDNoteStateRecovered,
	NoteFleetRevoked:          EventIDNoteFleetRevoked,
}

type auditEventDef struct {
	id    EventID
	level EventLevel
}

// auditEventIDs maps every audit kind to its event ID and level: a
// possible attack is an error; what needs a person or went wrong
// (waiting for an authorization, a failure, a rollback, a repair, a
// revoked device) is a warning; the rest is information.
var auditEventIDs = map[EventKind]auditEventDef{
	EventUpdateAvailable:       {EventIDAuditUpdateAvailable, EventInformation},
	EventStaged:                {EventIDAuditStaged, EventInformation},
	EventAwaitingAuthorization: {EventIDAuditAwaitingAuthorization, EventWarning},
	EventInstalled:             {EventIDAuditInstalled, EventInformation},
	EventFailed:                {EventIDAuditFailed, EventWarning},
	EventRollback:              {EventIDAuditRollback, EventWarning},
	EventVerificationFailure:   {EventIDAuditVerificationFailure, EventError},
	EventFeaturesRestored:      {EventIDAuditFeaturesRestored, EventWarning},
	EventStateRecovered:        {EventIDAuditStateRecovered, EventWarning},
	EventFleetRevoked:          {EventIDAuditFleetRevoked, EventWarning},
	EventConsentDecision:       {EventIDAuditConsentDecision, EventInformation},
	EventConsentRevoked:        {EventIDAuditConsentRevoked, EventInformation},
	EventConsentNoAnswer:       {EventIDAuditConsentNoAnswer, EventInformation},
	EventPolicyAccepted:        {EventIDAuditPolicyAccepted, EventInformation},
	EventPinned:                {EventIDAuditPinned, EventInformation},
	EventUnpinned:              {EventIDAuditUnpinned, EventInformation},
	EventConfigChanged:         {EventIDAuditConfigChanged, EventInformation},
	EventBundleImported:        {EventIDAuditBundleImported, EventInformation},
	EventFleetEnrolled:         {EventIDAuditFleetEnrolled, EventInformation},
	EventFleetKeyRotated:       {EventIDAuditFleetKeyRotated, EventInformation},
	// A person ended an alert by hand: a warning, so that monitoring
	// that follows the critical notification (109) sees who ended it.
	EventNotificationAcknowledged: {EventIDAuditNoteAcknowledged, EventWarning},
}

// NoteEvent is the event ID and level of a notification: the kind's ID
// at the notification's severity.
func NoteEvent(kind NoteKind, sev Severity) (EventID, EventLevel) {
	id, ok := noteEventIDs[kind]
	if !ok {
		id = EventIDNoteOther
	}
	switch sev {
	case SeverityCritical:
		return id, EventError
	case SeverityWarning:
		return id, EventWarning
	}
	return id, EventInformation
}

// AuditEventID is the event ID and level of an audit entry's kind.
func AuditEventID(kind EventKind) (EventID, EventLevel) {
	if d, ok := auditEventIDs[kind]; ok {
		return d.id, d.level
	}
	return EventIDAuditOther, EventInformation
}

// WriteEvent writes msg to sink at level under id.
func WriteEvent(sink EventSink, level EventLevel, id EventID, msg string) error {
	switch level {
	case EventError:
		return sink.Error(uint32(id), msg)
	case EventWarning:
		return sink.Warning(uint32(id), msg)
	}
	return sink.Info(uint32(id), msg)
}

// EventSinkCarrier is a slog.Handler that also carries an EventSink: the
// Windows service's (internal/eventlog.Handler). Open takes the sink from
// its log's handler when OpenOptions.Events is nil, so that Run, given
// only a logger, writes the events of every cycle too.
type EventSinkCarrier interface {
	EventSink() EventSink
}

// eventSinkOf is the sink of o: Events, else the one its log's handler
// carries, else none.
func eventSinkOf(o OpenOptions) EventSink {
	if o.Events != nil {
		return o.Events
	}
	if o.Log != nil {
		if c, ok := o.Log.Handler().(EventSinkCarrier); ok {
			return c.EventSink()
		}
	}
	return nil
}

// noteMessage is a notification as an event's text: its message, then
// what it is about, one "name: value" a line.
func noteMessage(n Notification, device string) string {
	var b strings.Builder
	b.WriteString(eventText(n.Message))
	b.WriteString("\r\n\r\nnotification: " + string(n.Kind) + " (" + string(n.Severity) + ")")
	eventField(&b, "component", n.Component)
	eventField(&b, "version", n.Version)
	eventField(&b, "device", device)
	return b.String()
}

// auditMessage is an audit entry as an event's text: "audit: KIND", what
// it is about, its detail, one "name: value" a line.
func auditMessage(ev AuditEvent) string {
	var b strings.Builder
	b.WriteString("audit: " + string(ev.Event))
	if ev.Component != "" {
		b.WriteString(" " + eventText(ev.Component))
		if ev.Version != "" {
			b.WriteString(" " + eventText(ev.Version))
		}
	}
	if ev.Detail != "" {
		b.WriteString(": " + eventText(ev.Detail))
	}
	b.WriteString("\r\n")
	if ev.Component == "" {
		eventField(&b, "version", ev.Version)
	}
	eventField(&b, "feature", ev.Feature)
	eventField(&b, "decision", string(ev.Decision))
	eventField(&b, "by", ev.By)
	eventField(&b, "device", ev.Device)
	if !ev.Time.IsZero() {
		eventField(&b, "time", ev.Time.UTC().Format("2006-01-02T15:04:05Z"))
	}
	return b.String()
}

func eventField(b *strings.Builder, name, value string) {
	if value != "" {
		fmt.Fprintf(b, "\r\n%s: %s", name, eventText(value))
	}
}

// eventText escapes control and invisible characters: a message may quote
// a server or a file name.
func eventText(s string) string { return textsafe.Escape(s) }

// emitNote writes a raised notification to the event sink (none: nothing).
func (a *Agent) emitNote(n Notification) {
	if a.events == nil {
		return
	}
	id, level := NoteEvent(n.Kind, n.Severity)
	if err := WriteEvent(a.events, level, id, noteMessage(n, a.cfg.DeviceID)); err != nil {
		a.log.Warn("writing a notification to the event log", "kind", n.Kind, "event_id", id, "err", err)
	}
}

// emitAudit writes audit entries to the event sink (none: nothing).
func (a *Agent) emitAudit(evs ...AuditEvent) {
	if a.events == nil {
		return
	}
	for _, ev := range evs {
		id, level := AuditEventID(ev.Event)
		if err := WriteEvent(a.events, level, id, auditMessage(ev)); err != nil {
			a.log.Warn("writing an audit entry to the event log", "event", ev.Event, "event_id", id, "err", err)
		}
	}
}

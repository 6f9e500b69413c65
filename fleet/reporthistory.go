package fleet

import (
	"context"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet/wire"
)

// MaxReportHistory is how many of a device's full reports a store keeps:
// the device page's report history. A full report is sent only when
// something changed on the device, so they are its changes.
const MaxReportHistory = 50

// ReportRecord is one accepted full report as the report history keeps
// it: what changed on a device, without the service's bookkeeping.
type ReportRecord struct {
	Counter      uint64           `json:"-"`
	Time         time.Time        `json:"-"`
	AgentVersion string           `json:"agent_version,omitempty"`
	Components   []wire.Component `json:"components,omitempty"`
	TUF          wire.TUF         `json:"tuf"`
	AuditSeq     int64            `json:"audit_seq,omitempty"`
	ConsentSeq   int64            `json:"consent_seq,omitempty"`
	Flags        []string         `json:"flags,omitempty"`
}

// RecordOf is the report history's record of a full report's state.
func RecordOf(st DeviceState) ReportRecord {
	return ReportRecord{Counter: st.Counter, Time: st.LastSeen, AgentVersion: st.AgentVersion, Components: st.Components, TUF: st.TUF,
		AuditSeq: st.Audit.Seq, ConsentSeq: st.Consent.Seq, Flags: st.Flags}
}

// ReportHistoryStore keeps each device's last full reports. A store
// writes a full report's record in the same transaction as the report
// (SaveReport), and deletes the oldest beyond MaxReportHistory there too.
type ReportHistoryStore interface {
	// ReportHistory returns device id's last full reports, newest first
	// (none for an unknown device).
	ReportHistory(ctx context.Context, id string) ([]ReportRecord, error)
}

package fleet

import (
	"context"
	"errors"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet/wire"
)

// Store is where the fleet service keeps tokens, devices, their last
// reports and the access log: SQLite (one file, the default) or
// PostgreSQL (any number of stateless servers). Both pass the same suite
// (fleet/storetest). Every method is safe for concurrent use, and each
// change is one transaction: a refused call stores nothing.
type Store interface {
	// CreateToken stores an enrollment token (only its hash).
	CreateToken(ctx context.Context, t Token) error
	// UseToken takes one use of the token whose hash is hash, if it is
	// not expired, revoked or used up at now, and returns it; else
	// ErrBadToken. Two concurrent calls never both take the last use.
	UseToken(ctx context.Context, hash []byte, now time.Time) (*Token, error)
	// RevokeToken revokes a token by ID (ErrNotFound if none).
	RevokeToken(ctx context.Context, id string) error
	// Tokens lists every token, newest first.
	Tokens(ctx context.Context) ([]Token, error)

	// Enroll is one enrollment in one transaction: it takes one use of
	// the token whose hash is tokenHash (ErrBadToken if it is expired,
	// revoked or used up at now), stores d in the token's site (ErrExists
	// if its ID or public key is taken) and, when d.Replaces names a
	// device, retires that device, which must be of the same site
	// and still have public key replacesKey, the one the caller verified
	// (ErrNotFound). A refused enrollment uses up nothing and stores
	// nothing. It returns the token as it is after the use.
	Enroll(ctx context.Context, tokenHash []byte, now time.Time, d Device, replacesKey []byte) (*Token, error)
	// AddDevice stores a newly enrolled device (ErrExists if its ID or
	// public key is taken).
	AddDevice(ctx context.Context, d Device) error
	// Device returns one device (ErrNotFound).
	Device(ctx context.Context, id string) (*Device, error)
	// DeviceAuth returns what checking a heartbeat needs, cheaply: the
	// device's ID, public key, revocation, counter and State.Digest; the
	// rest is zero (ErrNotFound).
	DeviceAuth(ctx context.Context, id string) (*Device, error)
	// Devices lists devices matching f, by ID.
	Devices(ctx context.Context, f DeviceFilter) ([]Device, error)
	// DevicePage returns one page of the devices q selects, by ID, and
	// how many it selects in all (the dashboard's fleet page).
	DevicePage(ctx context.Context, q DeviceQuery) (*DevicePage, error)
	// RotateKey replaces device id's public key old with new, if the
	// device has key old and is not revoked (else ErrNotFound); ErrExists
	// if another device has key new.
	RotateKey(ctx context.Context, id string, old, new []byte) error
	// RevokeDevice marks a device revoked at at (ErrNotFound).
	RevokeDevice(ctx context.Context, id string, at time.Time) error

	// SaveReport stores an accepted report of device id: the device's
	// row and its components replaced by u's, if u.Counter is above the
	// stored counter (else ErrReplayed, nothing stored). A heartbeat
	// (u.Full false) updates only the counter and the time last seen.
	SaveReport(ctx context.Context, id string, u ReportUpdate) error

	// ComponentTallies: the rollouts page's counts, and their history
	// (tally.go).
	TallyStore
	HistoryStore
	// ReportHistory: each device's last full reports (reporthistory.go).
	ReportHistoryStore

	// AppendAccess appends an entry to the hash-chained access log
	// (every read of personal data, every admin action); the store sets
	// Seq, Prev and Hash in the same transaction.
	AppendAccess(ctx context.Context, e AccessEntry) (*AccessEntry, error)
	// AccessLog returns the access log, oldest first.
	AccessLog(ctx context.Context) ([]AccessEntry, error)

	Close() error
}

// Errors of a Store.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrBadToken = errors.New("enrollment token is unknown, expired, revoked or used up")
	ErrReplayed = errors.New("report counter is not above the last accepted one (a replay?)")
)

// Token is an enrollment token. Only the sha256 of its secret is kept.
type Token struct {
	ID      string    `json:"id"`
	Site    string    `json:"site"`
	Hash    []byte    `json:"-"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Uses    int       `json:"uses"` // uses left
	Revoked bool      `json:"revoked"`
}

// Device is an enrolled device and what its last report said.
type Device struct {
	ID        string     `json:"id"`
	Site      string     `json:"site"`
	PublicKey []byte     `json:"public_key"`
	Enrolled  time.Time  `json:"enrolled"`
	Revoked   *time.Time `json:"revoked,omitempty"`
	// Sealed is the enrollee (wire.Enrollee as JSON) sealed by the
	// service's key (seal.go); EmailHash its keyed hash, for lookups.
	Sealed     []byte          `json:"-"`
	EmailHash  []byte          `json:"-"`
	Instrument wire.Instrument `json:"instrument"`
	// Replaces is the device this one re-enrolled (a new key).
	Replaces string `json:"replaces,omitempty"`

	State DeviceState `json:"state"`
}

// DeviceState is what the device's reports said, and what the service
// concluded from them.
type DeviceState struct {
	Counter      uint64           `json:"counter"`
	LastSeen     time.Time        `json:"last_seen,omitzero"`
	Digest       string           `json:"digest,omitempty"`
	AgentVersion string           `json:"agent_version,omitempty"`
	PollInterval time.Duration    `json:"poll_interval,omitempty"`
	Components   []wire.Component `json:"components,omitempty"`
	TUF          wire.TUF         `json:"tuf"`
	// TimestampSince is when the trusted timestamp version last
	// advanced (a device online whose timestamp stops is flagged).
	TimestampSince time.Time    `json:"timestamp_since,omitzero"`
	Audit          wire.LogHead `json:"audit"`
	Consent        wire.LogHead `json:"consent"`
	// Flags are the service's findings about the device, such as a log
	// chain that went backwards or forked.
	Flags []string `json:"flags,omitempty"`
	// Unvouched are earlier log heads (by log, wire.LogAudit or
	// wire.LogConsent) the device has not yet tied its new head to; the
	// service asked it to (wire.ReportResponse.Vouch).
	Unvouched map[string][]Unvouched `json:"unvouched,omitempty"`
}

// Unvouched is a log entry the service is waiting for the device to
// vouch for, and since when.
type Unvouched struct {
	wire.LogPoint
	Since time.Time `json:"since"`
}

// ReportUpdate is an accepted report as the store keeps it.
type ReportUpdate struct {
	Counter  uint64
	LastSeen time.Time
	Full     bool
	State    DeviceState // when Full
}

// DeviceFilter selects devices: all zero selects all.
type DeviceFilter struct {
	Site      string
	Component string
	Version   string // installed version of Component
	State     string // state of Component
	EmailHash []byte
}

// AccessEntry is one line of the access log.
type AccessEntry struct {
	Seq    int64     `json:"seq"`
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`  // subject of the person (OIDC) or "operator:<os user>"
	Action string    `json:"action"` // "device.show", "device.revoke", "token.create", …
	Target string    `json:"target,omitempty"`
	Prev   string    `json:"prev"`
	Hash   string    `json:"hash"`
}

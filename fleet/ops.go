package fleet

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet/wire"
)

// What operators and support staff do, the same for the CLI (which works
// on the store directly, like bcpublish on a repository) and the
// people's API. Every read of personal data and every admin action is
// appended to the access log first: if that fails, nothing is shown or
// changed.

// MaxTokenUses and MaxTokenLife bound a token.
const (
	MaxTokenUses = 10000
	MaxTokenLife = 90 * 24 * time.Hour
)

// ParseLife reads a token's life: a Go duration, or whole days ("7d").
func ParseLife(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		days, err = strconv.Atoi(n)
		d = time.Duration(days) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 || d > MaxTokenLife {
		return 0, errUsage("--expires %q: want a duration from 1m to 90d, such as 7d or 12h", s)
	}
	return d, nil
}

// CreateToken makes an enrollment token for site: the secret (shown
// once, never stored) and the stored token.
func CreateToken(ctx context.Context, st Store, actor, site string, life time.Duration, uses int, now time.Time) (string, *Token, error) {
	if err := checkSite(site); err != nil {
		return "", nil, err
	}
	if uses < 1 || uses > MaxTokenUses {
		return "", nil, errUsage("--uses %d: want 1 to %d", uses, MaxTokenUses)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, err
	}
	secret := "bcf_" + base64.RawURLEncoding.EncodeToString(raw)
	t := Token{ID: newID("tok-"), Site: site, Hash: TokenHash(secret), Created: now.UTC(), Expires: now.Add(life).UTC(), Uses: uses}
	if _, err := st.AppendAccess(ctx, AccessEntry{Time: now.UTC(), Actor: actor, Action: "token.create", Target: t.ID}); err != nil {
		return "", nil, err
	}
	if err := st.CreateToken(ctx, t); err != nil {
		return "", nil, err
	}
	return secret, &t, nil
}

// RevokeToken revokes a token.
func RevokeToken(ctx context.Context, st Store, actor, id string, now time.Time) error {
	if _, err := st.AppendAccess(ctx, AccessEntry{Time: now.UTC(), Actor: actor, Action: "token.revoke", Target: id}); err != nil {
		return err
	}
	if err := st.RevokeToken(ctx, id); errors.Is(err, ErrNotFound) {
		return errUsage("no token %q (bcfleet token list)", id)
	} else if err != nil {
		return err
	}
	return nil
}

func checkSite(site string) error {
	if site == "" || len(site) > 64 || strings.ContainsFunc(site, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.')
	}) {
		return errUsage("--site %q: want 1 to 64 lowercase letters, digits, '-' or '.'", site)
	}
	return nil
}

// DeviceSummary is a device as lists show it: no personal data.
type DeviceSummary struct {
	ID           string           `json:"id"`
	Site         string           `json:"site"`
	Instrument   wire.Instrument  `json:"instrument"`
	Online       bool             `json:"online"`
	LastSeen     *time.Time       `json:"last_seen"`
	Revoked      *time.Time       `json:"revoked,omitempty"`
	AgentVersion string           `json:"agent_version,omitempty"`
	Components   []wire.Component `json:"components"`
	Flags        []string         `json:"flags,omitempty"`
}

// Summary is d for lists.
func (d *Device) Summary(now time.Time) DeviceSummary {
	s := DeviceSummary{ID: d.ID, Site: d.Site, Instrument: d.Instrument, Online: d.Revoked == nil && d.Online(now), Revoked: d.Revoked,
		AgentVersion: d.State.AgentVersion, Components: d.State.Components, Flags: d.Flags(now)}
	if s.Components == nil {
		s.Components = []wire.Component{}
	}
	if !d.State.LastSeen.IsZero() {
		t := d.State.LastSeen
		s.LastSeen = &t
	}
	return s
}

// TimestampStall is how long an online device's trusted timestamp may
// stand still before it is flagged (a repository refreshes it daily).
const TimestampStall = 3 * 24 * time.Hour

// Flags are the stored findings and those of now.
func (d *Device) Flags(now time.Time) []string {
	f := append([]string{}, d.State.Flags...)
	if d.TimestampStalled(now, TimestampStall) {
		f = append(f, fmt.Sprintf("trusted timestamp (version %d) has not advanced since %s while the device is online: a frozen or blocked mirror?",
			d.State.TUF.TimestampVersion, d.State.TimestampSince.Format(time.RFC3339)))
	}
	for _, name := range []string{wire.LogAudit, wire.LogConsent} {
		for _, u := range d.State.Unvouched[name] {
			if d.Online(now) && now.Sub(u.Since) > UnvouchedWait {
				f = append(f, fmt.Sprintf("%s log: the device has not vouched for entry %d since %s although it reports (rewritten on the device?)",
					name, u.Seq, u.Since.Format(time.RFC3339)))
				break
			}
		}
	}
	return f
}

// UnvouchedWait is how long an online device may leave an earlier log
// head unvouched for (an honest agent answers at once) before it is
// flagged.
const UnvouchedWait = 24 * time.Hour

// ListFilter selects devices for lists.
type ListFilter struct {
	DeviceFilter
	Offline bool // only those not online
}

// ListDevices lists device summaries.
func ListDevices(ctx context.Context, st Store, f ListFilter, now time.Time) ([]DeviceSummary, error) {
	ds, err := st.Devices(ctx, f.DeviceFilter)
	if err != nil {
		return nil, err
	}
	out := []DeviceSummary{}
	for i := range ds {
		s := ds[i].Summary(now)
		if f.Offline && s.Online {
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

// DeviceDetail is a device with its enrollee: personal data, for support.
type DeviceDetail struct {
	DeviceSummary
	Enrollee  wire.Enrollee `json:"enrollee"`
	Enrolled  time.Time     `json:"enrolled"`
	Replaces  string        `json:"replaces,omitempty"`
	TUF       wire.TUF      `json:"tuf"`
	Audit     wire.LogHead  `json:"audit"`
	Consent   wire.LogHead  `json:"consent"`
	PublicKey []byte        `json:"public_key"`
	Counter   uint64        `json:"counter"`
}

// ShowDevice opens a device's personal data for actor, after recording
// the read in the access log.
func ShowDevice(ctx context.Context, st Store, k KEK, actor, id string, now time.Time) (*DeviceDetail, error) {
	d, err := st.Device(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, errUsage("no device %q (bcfleet devices list)", id)
	}
	if err != nil {
		return nil, err
	}
	if _, err := st.AppendAccess(ctx, AccessEntry{Time: now.UTC(), Actor: actor, Action: "device.show", Target: id}); err != nil {
		return nil, err
	}
	plain, err := Open(k, d.ID, d.Sealed)
	if err != nil {
		return nil, fmt.Errorf("device %s: the enrollee data: %w", id, err)
	}
	det := &DeviceDetail{DeviceSummary: d.Summary(now), Enrolled: d.Enrolled, Replaces: d.Replaces, TUF: d.State.TUF,
		Audit: d.State.Audit, Consent: d.State.Consent, PublicKey: d.PublicKey, Counter: d.State.Counter}
	if err := json.Unmarshal(plain, &det.Enrollee); err != nil {
		return nil, fmt.Errorf("device %s: the enrollee data: %w", id, err)
	}
	return det, nil
}

// RevokeDevice revokes a device: its reports are refused from now on.
func RevokeDevice(ctx context.Context, st Store, actor, id string, now time.Time) error {
	if _, err := st.Device(ctx, id); errors.Is(err, ErrNotFound) {
		return errUsage("no device %q (bcfleet devices list)", id)
	} else if err != nil {
		return err
	}
	if _, err := st.AppendAccess(ctx, AccessEntry{Time: now.UTC(), Actor: actor, Action: "device.revoke", Target: id}); err != nil {
		return err
	}
	return st.RevokeDevice(ctx, id, now.UTC())
}

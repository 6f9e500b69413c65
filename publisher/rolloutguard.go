package publisher

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/netaddr"
)

// RolloutGuard refuses to widen a rollout that is failing: before a
// channel is pointed at a release, the fleet service (its people's API,
// GET /api/rollouts/COMPONENT/VERSION, with a person's sign-on ID token)
// says how many reporting devices installed it and how many failed or
// rolled it back; above MaxFailureRate the promotion is refused with the
// numbers.
type RolloutGuard struct {
	Fleet          string  // https://… (http only to loopback)
	Token          string  // the person's ID token
	MaxFailureRate float64 // 0 to 1
	Client         *http.Client
}

// rolloutCounts is the part of the fleet's answer the guard reads.
type rolloutCounts struct {
	Targeted    int     `json:"targeted"`
	Installed   int     `json:"installed"`
	Failed      int     `json:"failed"`
	RolledBack  int     `json:"rolled_back"`
	FailureRate float64 `json:"failure_rate"`
}

// ParseRate reads a failure rate such as "2%" or "0.02".
func ParseRate(s string) (float64, error) {
	v, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	f, err := strconv.ParseFloat(v, 64)
	if pct {
		f /= 100
	}
	if err != nil || f < 0 || f > 1 {
		return 0, usagef("--max-failure-rate %q: want a share such as 2%% or 0.02, from 0 to 100%%", s)
	}
	return f, nil
}

// Check asks the fleet about component at version and refuses a failing
// rollout.
func (g *RolloutGuard) Check(ctx context.Context, component, version string) error {
	u, err := url.Parse(g.Fleet)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && netaddr.IsLoopback(u.Hostname()))) {
		return usagef("--fleet %q: want https://HOST (plain http only to loopback)", g.Fleet)
	}
	if g.Token == "" {
		return usagef("--fleet needs a sign-on ID token in BCPUBLISH_FLEET_TOKEN (or --fleet-token) to read the rollout")
	}
	c := g.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(g.Fleet, "/")+"/api/rollouts/"+url.PathEscape(component)+"/"+url.PathEscape(version), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+g.Token)
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("--fleet %s: cannot ask the fleet service how %s %s is doing (%w); promote without --fleet only if you know", g.Fleet, component, version, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(body, &e)
		return fmt.Errorf("--fleet %s: the fleet service answered %s: %s", g.Fleet, resp.Status, e.Error)
	}
	var r rolloutCounts
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("--fleet %s: not a rollout status: %w", g.Fleet, err)
	}
	tried := r.Installed + r.Failed + r.RolledBack
	if r.FailureRate > g.MaxFailureRate {
		return fmt.Errorf("refusing to widen the rollout of %s %s: %d of %d reporting devices that tried it failed or were rolled back (%.1f%%), above --max-failure-rate %.1f%%; see bcfleet rollout status %s %s",
			component, version, r.Failed+r.RolledBack, tried, 100*r.FailureRate, 100*g.MaxFailureRate, component, version)
	}
	return nil
}

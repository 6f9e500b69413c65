package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/repo"
)

func runCycles(t *testing.T, e *env, n int, now time.Time) {
	t.Helper()
	err := client.Run(context.Background(), e.state, nil, client.RunOptions{Cycles: n, Interval: 10 * time.Millisecond, MinBackoff: 10 * time.Millisecond, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
}

func TestServicePolicies(t *testing.T) {
	noon := time.Date(2026, 11, 27, 12, 0, 0, 0, time.Local)
	cases := []struct {
		name     string
		cfg      func(c *client.Config)
		features []repo.Feature
		want     string // installed version after one cycle
		state    client.StateName
	}{
		{"auto applies", func(c *client.Config) { c.Policies = map[string]client.Policy{component: client.PolicyAuto} }, nil, "1.1.0", client.StateUpToDate},
		{"stage only stages", nil, nil, "1.0.0", client.StateStaged},
		{"notify only notifies", func(c *client.Config) { c.Policies = map[string]client.Policy{component: client.PolicyNotify} }, nil, "1.0.0", client.StateUpdateAvailable},
		{"auto outside the apply window waits", func(c *client.Config) {
			c.Policies = map[string]client.Policy{component: client.PolicyAuto}
			c.ApplyWindow = "02:00-05:00"
		}, nil, "1.0.0", client.StateStaged},
		{"auto inside an overnight window applies", func(c *client.Config) {
			c.Policies = map[string]client.Policy{component: client.PolicyAuto}
			c.ApplyWindow = "11:00-01:00"
		}, nil, "1.1.0", client.StateUpToDate},
		{"auto never applies a gated feature", func(c *client.Config) { c.Policies = map[string]client.Policy{component: client.PolicyAuto} },
			[]repo.Feature{fileTransfer}, "1.0.0", client.StateAwaitingAuthorization},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvWith(t, tc.cfg)
			e.publish("1.0.0")
			e.mustInstall("1.0.0")
			e.publishFeatures("1.1.0", tc.features)
			runCycles(t, e, 1, noon)
			c := e.status().Components[0]
			if *c.Installed != tc.want || c.State != tc.state {
				t.Fatalf("after a cycle: installed %s, state %s; want %s, %s", *c.Installed, c.State, tc.want, tc.state)
			}
		})
	}
}

func TestServiceKeepsRunningWithoutRepository(t *testing.T) {
	e := newEnv(t)
	e.publish("1.0.0")
	e.mustInstall("1.0.0")
	e.srv.Close() // unreachable
	runCycles(t, e, 3, time.Now())
	if e.current() != "1.0.0" {
		t.Fatal("what was installed must keep running")
	}
	var notes []client.Notification
	e.do(func(a *client.Agent) error { var err error; notes, err = a.Notifications(); return err })
	if !slices.ContainsFunc(notes, func(n client.Notification) bool { return n.Kind == client.NoteRepositoryUnreachable }) {
		t.Fatalf("no unreachable notification: %+v", notes)
	}
}

func TestServiceStopsAndIsExclusive(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- client.Run(ctx, e.state, nil, client.RunOptions{Interval: time.Hour}) }()
	// Wait for its first poll (it writes state.json), so it surely holds the lock.
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(filepath.Join(e.state, "state.json")); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	err := client.Run(context.Background(), e.state, nil, client.RunOptions{Cycles: 1})
	if !errors.Is(err, client.ErrLocked) {
		t.Fatalf("a second service must fail at once, got %v", err)
	}
	// Commands at the terminal still work: they wait for the poll to end.
	a, err := client.OpenWait(context.Background(), e.state, nil, 10*time.Second)
	if err != nil {
		t.Fatalf("a command at the terminal while the service runs: %v", err)
	}
	st, err := a.Status()
	a.Close()
	if err != nil || st.Device.ID != "INST-0042" {
		t.Fatal(st, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the service did not stop on cancel (SIGTERM)")
	}
}

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
)

func TestPromoteRolloutYankPin(t *testing.T) {
	ctx := context.Background()
	// A device that is not in a 1% rollout of 1.2.0, and one that is.
	var outID, inID string
	for i := 0; outID == "" || inID == ""; i++ {
		id := fmt.Sprintf("INST-%04d", i)
		if repo.InRollout(id, component, "1.2.0", 10) {
			inID = id
		} else if outID == "" {
			outID = id
		}
	}
	out := newEnvWith(t, func(c *client.Config) { c.DeviceID = outID })
	out.publish("1.0.0")
	out.publish("1.1.0")
	out.mustInstall("1.1.0")

	// 1.2.0 goes to beta, then to 10% of stable.
	out.publishWith("1.2.0", artifactName("1.2.0"), tarball(t, "1.2.0"), func(o *publisher.ReleaseOptions) { o.Channels = []string{"beta"} })
	if _, err := publisher.Promote(ctx, out.store, out.keys, component, platform, "beta", "stable", 10, time.Now()); err != nil {
		t.Fatal(err)
	}
	out.mustInstall("1.1.0") // not in the rollout
	in := out.secondAgent(t, inID)
	in.mustInstall("1.2.0")

	// Yank 1.2.0: stable goes back to 1.1.0; the agent that has it is told.
	res, err := publisher.Yank(ctx, out.store, out.keys, component, platform, "1.2.0", "crashes on DxFLEx", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.Moved["stable"] != repo.ArtifactPath(component, platform, "1.1.0", artifactName("1.1.0")) {
		t.Fatalf("stable was not moved back: %+v", res)
	}
	if err := in.check(); err != nil {
		t.Fatal(err)
	}
	var notes []client.Notification
	in.do(func(a *client.Agent) error { notes, err = a.Notifications(); return err })
	if !slices.ContainsFunc(notes, func(n client.Notification) bool {
		return n.Kind == client.NoteYanked && strings.Contains(n.Message, "crashes on DxFLEx")
	}) {
		t.Fatalf("no yank notification: %+v", notes)
	}
	// Beta still names 1.2.0, but a yanked release is never installed.
	if _, err := publisher.Promote(ctx, out.store, out.keys, component, platform, "stable", "stable", 100, time.Now()); err != nil {
		t.Fatal(err)
	}
	out.setChannel(t, "beta")
	out.mustInstall("1.1.0")

	// Pin: hold on 1.0.0 (an older version), then unpin.
	if err := out.do(func(a *client.Agent) error { return a.Pin(component, "1.0.0") }); err != nil {
		t.Fatal(err)
	}
	out.mustInstall("1.0.0")
	out.publish("1.3.0")
	out.mustInstall("1.0.0")
	if err := out.do(func(a *client.Agent) error { return a.Unpin(component) }); err != nil {
		t.Fatal(err)
	}
	out.setChannel(t, "stable")
	out.mustInstall("1.3.0")
}

// TestPromoteGuardOnlyWidening: the rollout guard (the fleet service's
// failure rate) is asked before a rollout widens, never before it
// narrows, so a failing rollout can always be pulled back; a refusal
// writes nothing.
func TestPromoteGuardOnlyWidening(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.publish("1.0.0")
	e.publishWith("1.1.0", artifactName("1.1.0"), tarball(t, "1.1.0"), func(o *publisher.ReleaseOptions) { o.Channels = []string{"beta"} })
	asked := 0
	failing := func(version string) error {
		asked++
		return fmt.Errorf("rollout guard: %s is failing", version)
	}
	promote := func(percent int) error {
		_, err := publisher.PromoteGuarded(ctx, e.store, e.keys, component, platform, "beta", "stable", percent, time.Now(), failing)
		return err
	}
	snapshot := func() string {
		data, err := os.ReadFile(filepath.Join(e.store.Dir, "metadata", "timestamp.json"))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	// A new release for stable is a widening: refused, nothing written.
	before := snapshot()
	if err := promote(10); err == nil || asked != 1 {
		t.Fatalf("promoting a failing release: %v (guard asked %d times)", err, asked)
	}
	if snapshot() != before {
		t.Fatal("a refused promotion changed the repository")
	}
	// Without the guard (release engineers' own call) it goes to 20%.
	if _, err := publisher.Promote(ctx, e.store, e.keys, component, platform, "beta", "stable", 20, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		percent int
		guarded bool
	}{{50, true}, {100, true}, {20, false}, {5, false}, {5, false}} {
		n := asked
		err := promote(tc.percent)
		if got := asked > n; got != tc.guarded {
			t.Fatalf("to %d%%: guard asked %v, want %v", tc.percent, got, tc.guarded)
		}
		if (err != nil) != tc.guarded {
			t.Fatalf("to %d%%: %v", tc.percent, err)
		}
	}
}

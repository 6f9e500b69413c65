package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/publisher"
)

// manyComponents are the components of TestManyComponents, the first
// being the harness's own.
var manyComponents = []string{component, "comp-b", "comp-c", "comp-d", "comp-e"}

// program is a release of comp whose bin/run exits with code.
func program(t *testing.T, comp, v string, code int) []byte {
	return testutil.TarGz(t,
		testutil.TarEntry{Name: "bin/run", Body: "#!/bin/sh\necho " + comp + " " + v + "\nexit " + string(rune('0'+code)) + "\n", Mode: 0o755},
		testutil.TarEntry{Name: "VERSION", Body: v + "\n"})
}

func (e *env) publishComp(comp, v string, code int) *publisher.ReleaseResult {
	e.t.Helper()
	return e.publishWith(v, comp+"-"+v+".tar.gz", program(e.t, comp, v, code), func(o *publisher.ReleaseOptions) {
		o.Component = comp
		o.HealthCheck = []string{"bin/run"}
	})
}

func (e *env) currentOf(comp string) string {
	v, _ := client.CurrentVersion(filepath.Join(e.install, comp))
	return v
}

// TestManyComponents: components are checked, staged and applied side by
// side, and one component's failure touches no other. comp-c's download is
// corrupted on the server (a verification failure at stage); comp-d's
// health check fails (rolled back at apply); the rest install, under one
// journal and one commit, and the audit log records each.
func TestManyComponents(t *testing.T) {
	e := newEnvWith(t, func(c *client.Config) { c.Components = manyComponents })
	for _, comp := range manyComponents {
		e.publishComp(comp, "1.0.0", 0)
	}
	e.mustInstallAll("1.0.0")

	results := map[string]*publisher.ReleaseResult{}
	for _, comp := range manyComponents {
		code := 0
		if comp == "comp-d" {
			code = 3
		}
		results[comp] = e.publishComp(comp, "1.1.0", code)
	}
	// The server now hands out other bytes for comp-c 1.1.0.
	res := results["comp-c"]
	served := filepath.Join(e.store.Dir, filepath.FromSlash(storageOf(res.Path, res.SHA256)))
	data, err := os.ReadFile(served)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(served, bytes.Repeat([]byte{'x'}, len(data)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	err = e.stage()
	if !errors.Is(err, client.ErrVerification) || !strings.Contains(err.Error(), "comp-c") {
		t.Fatalf("stage: want comp-c's verification failure, got %v", err)
	}
	for _, c := range e.status().Components {
		wantStaged := c.Name != "comp-c"
		if (c.Staged != nil) != wantStaged {
			t.Errorf("%s after stage: staged %v, want %v (%+v)", c.Name, c.Staged != nil, wantStaged, c)
		}
	}
	err = e.apply()
	if err == nil || !strings.Contains(err.Error(), "comp-d 1.1.0") || !strings.Contains(err.Error(), "rolled back to 1.0.0") {
		t.Fatalf("apply: want comp-d rolled back, got %v", err)
	}
	for _, comp := range manyComponents {
		want := "1.1.0"
		if comp == "comp-c" || comp == "comp-d" {
			want = "1.0.0"
		}
		if got := e.currentOf(comp); got != want {
			t.Errorf("%s: current %s, want %s", comp, got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(e.state, "journal.json")); !os.IsNotExist(err) {
		t.Error("journal left behind")
	}
	for _, c := range e.status().Components {
		switch c.Name {
		case "comp-d":
			if c.State != client.StateFailed || !strings.Contains(c.LastError, "health check failed") {
				t.Errorf("comp-d: %+v", c)
			}
		case "comp-c":
			if deref(c.Installed) != "1.0.0" || c.Staged != nil {
				t.Errorf("comp-c: %+v", c)
			}
		default:
			if deref(c.Installed) != "1.1.0" || c.State != client.StateUpToDate {
				t.Errorf("%s: %+v", c.Name, c)
			}
		}
	}
	var export strings.Builder
	if err := e.do(func(a *client.Agent) error {
		audit, _, err := a.ExportLogs()
		for _, entry := range audit {
			export.WriteString(client.DescribeEntry(entry) + "\n")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"event=installed component=notification-client version=1.1.0",
		"event=installed component=comp-e version=1.1.0",
		"event=rollback component=comp-d version=1.0.0",
		"event=verification-failure component=comp-c version=1.1.0",
	} {
		if !strings.Contains(export.String(), want) {
			t.Errorf("audit export lacks %q:\n%s", want, export.String())
		}
	}
}

// mustInstallAll checks, stages and applies, and wants every component of
// the agent on v.
func (e *env) mustInstallAll(v string) {
	e.t.Helper()
	for _, op := range []func() error{e.check, e.stage, e.apply} {
		if err := op(); err != nil {
			e.t.Fatal(err)
		}
	}
	for _, c := range e.status().Components {
		if got := e.currentOf(c.Name); got != v {
			e.t.Fatalf("%s: current is %q, want %q", c.Name, got, v)
		}
	}
}

// TestServiceStopEndsAHealthCheck: a service stop (the context ends)
// while a release's health check runs ends the check and undoes the
// install, and the release is not held back as failed: it stays staged
// and is installed at the next apply.
func TestServiceStopEndsAHealthCheck(t *testing.T) {
	e := newEnv(t)
	e.publishComp(component, "1.0.0", 0)
	e.mustInstall("1.0.0")
	mark := filepath.Join(t.TempDir(), "running")
	t.Setenv("BCUPDATE_TEST_MARK", mark)
	slow := testutil.TarGz(t,
		testutil.TarEntry{Name: "bin/run", Body: "#!/bin/sh\n[ -e \"$BCUPDATE_TEST_MARK.done\" ] && exit 0\ntouch \"$BCUPDATE_TEST_MARK\"\nexec sleep 60\n", Mode: 0o755},
		testutil.TarEntry{Name: "VERSION", Body: "1.1.0\n"})
	e.publishWith("1.1.0", component+"-1.1.0.tar.gz", slow, func(o *publisher.ReleaseOptions) { o.HealthCheck = []string{"bin/run"} })
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if err := e.stage(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			if _, err := os.Stat(mark); err == nil {
				cancel()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	err := e.do(func(a *client.Agent) error { _, err := a.Apply(ctx, "", client.ApplyOptions{}); return err })
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("apply: want the stop, got %v", err)
	}
	if e.current() != "1.0.0" {
		t.Fatalf("current is %s after the stop", e.current())
	}
	if _, err := os.Stat(filepath.Join(e.state, "journal.json")); !os.IsNotExist(err) {
		t.Error("journal left behind")
	}
	c := e.status().Components[0]
	if c.State == client.StateFailed || c.Staged == nil || *c.Staged != "1.1.0" {
		t.Fatalf("after a stop the release must stay staged, not held back: %+v", c)
	}
	// The next apply (the check passes at once now) installs it.
	os.WriteFile(mark+".done", nil, 0o600)
	if err := e.apply(); err != nil {
		t.Fatal(err)
	}
	if e.current() != "1.1.0" {
		t.Fatalf("current is %s after the second apply", e.current())
	}
}

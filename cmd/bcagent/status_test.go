package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/publisher"
)

// TestReportingCommandsDoNotWaitForTheLock: status, notifications,
// consent list and audit verify/export answer at once while another agent
// holds the state directory (before, they waited 30 s and failed with
// "state directory is in use by another agent"), and status says who holds
// it. The agent holding the lock here does no network I/O; the e2e test
// TestStatusWhileAStageIsDownloading shows a real download's progress.
func TestReportingCommandsDoNotWaitForTheLock(t *testing.T) {
	fx := newFixture(t)
	fx.publish("1.0.0")
	srv := httptest.NewServer(publisher.Handler(fx.store, nil))
	defer srv.Close()
	state := filepath.Join(fx.dir, "agent")
	for _, args := range [][]string{
		{"init", "--repo-url", srv.URL, "--root", filepath.Join(fx.store.Dir, "metadata", "1.root.json"), "--trust", fx.pki.TrustDir,
			"--component", "notification-client", "--device-id", "INST-1", "--device-model", "DxH 900", "--platform", "linux-amd64"},
		{"stage"}, {"apply"},
	} {
		if code, _, errOut := bcagent(t, append([]string{"--state", state}, args...)...); code != 0 {
			t.Fatalf("%v: %s", args, errOut)
		}
	}

	if code, out, errOut := bcagent(t, "--state", state, "status"); code != 0 || !strings.Contains(out, "agent idle") {
		t.Fatalf("status with no agent running: exit %d\n%s%s", code, out, errOut)
	}

	held, err := client.Open(state, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	steps := []struct {
		args []string
		out  []string
	}{
		{[]string{"status"}, []string{"notification-client: up-to-date (installed 1.0.0)", "agent busy: a ", fmt.Sprintf("(pid %d) has held the state directory since ", os.Getpid())}},
		{[]string{"notifications"}, nil},
		{[]string{"consent", "list"}, []string{"no consent decisions"}},
		{[]string{"audit", "verify"}, []string{"hash chains intact"}},
		{[]string{"audit", "export"}, []string{"# audit.jsonl"}},
	}
	for _, s := range steps {
		code, out, errOut := bcagent(t, append([]string{"--state", state}, s.args...)...)
		if code != 0 {
			t.Fatalf("%v while the lock is held: exit %d: %s", s.args, code, errOut)
		}
		for _, want := range s.out {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output does not say %q:\n%s", s.args, want, out)
			}
		}
	}
	_, out, _ := bcagent(t, "--state", state, "status", "--json")
	var st struct {
		Activity struct {
			Busy    bool   `json:"busy"`
			PID     int    `json:"pid"`
			Command string `json:"command"`
		} `json:"activity"`
		Components []map[string]any `json:"components"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || !st.Activity.Busy || st.Activity.PID != os.Getpid() || len(st.Components) != 1 {
		t.Fatalf("status --json while the lock is held: %v\n%s", err, out)
	}

	held.Close()
	if _, out, _ := bcagent(t, "--state", state, "status", "--json"); !strings.Contains(out, `"busy": false`) {
		t.Fatalf("status --json after the lock was released:\n%s", out)
	}
}

// TestSlowServerIsExit1: a server below the minimum rate, or a body that
// broke off, is an operational failure (exit 1), not a possible attack.
func TestSlowServerIsExit1(t *testing.T) {
	slow := fmt.Errorf("stage nc 1.0.0: download x (10 of 100 bytes so far, kept to resume): %w",
		&client.SlowError{URL: "https://updates.example.com/targets/x", Got: 30, Window: 30e9, Min: 1024})
	broken := fmt.Errorf("download x: %w", &client.BodyError{URL: "https://updates.example.com/targets/x", Err: io.ErrUnexpectedEOF})
	for _, err := range []error{slow, broken} {
		if code := exitCode(err); code != exitFailure {
			t.Errorf("%v: exit %d, want 1", err, code)
		}
	}
}

package client

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCommandLabel(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"/usr/bin/bcagent", "--state", "/var/lib/bcagent", "stage", "--component", "nc"}, "bcagent stage"},
		{[]string{"/opt/bcagent/bcagent.exe", "--state=/srv/x", "run"}, "bcagent run"},
		{[]string{"bcagent", "--verbose", "audit", "verify"}, "bcagent audit verify"},
		{[]string{"bcagent", "apply", "--authorize", "phi-file-transfer", "--by", "Ann Smith"}, "bcagent apply"},
		{[]string{"bcagent"}, "bcagent"},
		{nil, "unknown"},
	}
	for _, tc := range cases {
		if got := commandLabel(tc.args); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestActivityNames(t *testing.T) {
	ac := &activity{base: "https://updates.example.com/repo"}
	sha := strings.Repeat("ab", 32)
	cases := []struct{ url, want string }{
		{"https://updates.example.com/repo/targets/notification-client/windows-amd64/1.2.0/" + sha + ".nc-1.2.0.msi", "notification-client 1.2.0"},
		{"https://updates.example.com/repo/targets/notification-client/windows-amd64/1.2.0/" + sha + ".nc.tar.gz.p7s", "notification-client 1.2.0 code signature"},
		{"https://updates.example.com/repo/targets/notification-client/windows-amd64/1.2.0/" + sha + ".nc.tar.gz.from-1.1.0.bsdiff", "notification-client 1.2.0 delta from 1.1.0"},
		{"https://updates.example.com/repo/targets/policy/" + sha + ".devices.json", "policy/devices.json"},
		{"https://updates.example.com/repo/metadata/timestamp.json", "metadata timestamp.json"},
		{"https://cdn.example.net/x", "https://cdn.example.net/x"},
	}
	for _, tc := range cases {
		u, _ := url.Parse(tc.url)
		if got := ac.name(u); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.url, got, tc.want)
		}
	}
}

func TestActivityDescribe(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 30, 0, 0, time.Local)
	since := time.Date(2026, 11, 28, 12, 0, 3, 0, time.Local)
	cases := []struct {
		s    *ActivityStatus
		want string
	}{
		{&ActivityStatus{}, "idle (no bcagent holds the state directory; no service, bcagent run, is running)"},
		{&ActivityStatus{Service: true}, "idle between polls (the service, bcagent run, is running)"},
		{&ActivityStatus{Busy: true}, "busy: another bcagent holds the state directory (it has not said what it is doing)"},
		{&ActivityStatus{Busy: true, Activity: &Activity{PID: 1234, Command: "bcagent stage", Since: since,
			Download: &DownloadActivity{Name: "notification-client 1.2.0", Done: 34 << 20, Total: 120 << 20}}},
			"busy: a bcagent stage (pid 1234) has held the state directory since 12:00:03: downloading notification-client 1.2.0 (34.0 MiB of 120.0 MiB)"},
		{&ActivityStatus{Busy: true, Activity: &Activity{PID: 1234, Command: "bcagent run", Since: since.AddDate(0, 0, -1), Doing: "applying notification-client"}},
			"busy: a bcagent run (pid 1234) has held the state directory since 2026-11-27 12:00:03: applying notification-client"},
	}
	for _, tc := range cases {
		if got := tc.s.Describe(now); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

package main

import (
	"encoding/json"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/publisher"
)

// TestCLIMirrors: init takes --repo-url more than once; the agent fails
// over from a mirror that refuses connections to the next, and status
// (text and --json) names the mirror used and the one skipped; config set
// repository_mirrors is checked like repository_url.
func TestCLIMirrors(t *testing.T) {
	fx := newFixture(t)
	fx.publish("1.0.0")
	srv := httptest.NewServer(publisher.Handler(fx.store, nil))
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	state, _ := initAgent(t, fx, dead, "--repo-url", srv.URL, "--component", "notification-client")
	expect(t, 0, []string{"repository_mirrors", srv.URL}, "--state", state, "config", "show")
	expect(t, 0, nil, "--state", state, "check")
	expect(t, 0, []string{"mirrors, in order: " + dead + ", " + srv.URL, "used " + srv.URL, "skipped " + dead + " (unreachable): connection refused"},
		"--state", state, "status")
	_, js, _ := bcagent(t, "--state", state, "status", "--json")
	var st client.StatusReport
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatal(err)
	}
	if m := st.Repository.Mirror; m == nil || m.Used != srv.URL || len(m.Failed) != 1 || m.Failed[0].URL != dead || len(st.Repository.Mirrors) != 2 {
		t.Fatalf("status --json repository: %+v", st.Repository)
	}
	expect(t, 2, []string{"repository_mirrors", "plain http is refused"}, "--state", state, "config", "set", "repository_mirrors", "http://mirror.example.com")
	if strings.Contains(expect(t, 0, nil, "--state", state, "config", "show"), "mirror.example.com") {
		t.Fatal("a refused config set changed config.json")
	}
}

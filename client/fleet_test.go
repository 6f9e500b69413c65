package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/fleet/wire"
)

func TestSanitizeReason(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`health check failed: /opt/bc/notification-client/1.1.0/health exited 1`, `health check failed: … exited 1`},
		{`installer C:\Program Files\BC\setup.msi failed`, `installer … Files… failed`},
		{`authorized by "Dr. Ramona Quist"`, `authorized by …`},
		{"two\nlines\x1b[31m", `two\nlines\x1b[31m`},
		{strings.Repeat("é", 300), strings.Repeat("é", 100)},
	} {
		if got := sanitizeReason(tc.in); got != tc.want {
			t.Errorf("sanitizeReason(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNextCounter(t *testing.T) {
	now := uint64(time.Now().UnixMicro())
	if c := nextCounter(0); c < now {
		t.Fatalf("nextCounter(0) = %d, below the time %d", c, now)
	}
	// A counter ahead of the clock (the clock went back) still grows.
	if c := nextCounter(now + 1e12); c != now+1e12+1 {
		t.Fatalf("nextCounter after a clock step back: %d", c)
	}
}

// A heartbeat of the longest device ID and counter fits in MaxHeartbeat.
func TestHeartbeatSize(t *testing.T) {
	w := wire.Report{DeviceID: "dev-" + strings.Repeat("z", 60), Counter: ^uint64(0), Time: time.Now().UTC(), Heartbeat: true,
		Digest: strings.Repeat("f", 64)}
	b, _ := json.Marshal(w)
	if len(b) > wire.MaxHeartbeat {
		t.Fatalf("a heartbeat of %d bytes: %s", len(b), b)
	}
}

// The queue keeps at most fleetQueueMax reports, drops the oldest, and
// gives them back oldest first.
func TestFleetQueue(t *testing.T) {
	dir := t.TempDir()
	a := &Agent{dir: dir}
	fs := &FleetState{DeviceID: "dev-1"}
	for i := 1; i <= fleetQueueMax+5; i++ {
		if err := a.enqueue(fs, wire.Report{DeviceID: "dev-1", Counter: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	names := a.queueNames()
	if len(names) != fleetQueueMax || fs.Dropped != 5 {
		t.Fatalf("%d queued, %d dropped", len(names), fs.Dropped)
	}
	if names[0] != fmt.Sprintf("%020d.json", 6) || names[len(names)-1] != fmt.Sprintf("%020d.json", fleetQueueMax+5) {
		t.Fatalf("queue order: %s … %s", names[0], names[len(names)-1])
	}
	fi, err := os.Stat(filepath.Join(dir, fleetQueueDir, names[0]))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("a queued report's mode: %v %v", fi, err)
	}
}

// TestFleetPostErrorText: an answer that is not the service's JSON error
// (a proxy's page, say) is shown escaped once, cut to 200 bytes; a JSON
// error's text is escaped the same way.
func TestFleetPostErrorText(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"proxy page", "Bad \\ gateway\x1b[31m\n", `the fleet service answered 502: Bad \\ gateway\x1b[31m`},
		{"JSON error", `{"error":"no \\ such\u0007 device"}`, `the fleet service answered 502: no \\ such\x07 device`},
		{"long page", strings.Repeat("x", 300), "the fleet service answered 502: " + strings.Repeat("x", 200)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadGateway)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			err := (&Agent{}).fleetPost(context.Background(), srv.Client(), srv.URL, []byte("{}"), nil, &struct{}{})
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %q, want %q", err, tc.want)
			}
		})
	}
}

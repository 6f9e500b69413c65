package main

import (
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beckmanconnect/bcupdate/publisher"
)

// TestInitSaysHowTheModelMatched: init shows the normalized model and
// warns when it is in no known PHI class, so a typo is seen at once.
func TestInitSaysHowTheModelMatched(t *testing.T) {
	cases := []struct {
		model, stdout, stderr string
	}{
		{"NAVIOS  EX", `device model NAVIOS  EX (normalized "navios ex") is in a PHI device class`, ""},
		{"Ｎａｖｉｏｓ ＥＸ", `(normalized "navios ex") is in a PHI device class`, ""},
		{"DxH 900", "", `warning: device model DxH 900 (normalized "dxh 900") is in no known PHI device class`},
		{"Navi\u043es EX", "", `(normalized "navi\u043es ex") is in no known PHI device class`},
	}
	fx := newFixture(t)
	srv := httptest.NewServer(publisher.Handler(fx.store, nil))
	defer srv.Close()
	for i, tc := range cases {
		t.Run(tc.model, func(t *testing.T) {
			state := filepath.Join(fx.dir, "agent", string(rune('a'+i)))
			code, out, errOut := bcagent(t, "--state", state, "init", "--repo-url", srv.URL, "--root", filepath.Join(fx.store.Dir, "metadata", "1.root.json"),
				"--trust", fx.pki.TrustDir, "--component", "notification-client", "--device-id", "INST-7", "--device-model", tc.model, "--platform", "linux-amd64")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if !strings.Contains(out, tc.stdout) || !strings.Contains(errOut, tc.stderr) {
				t.Fatalf("stdout %q\nstderr %q\nwant %q / %q", out, errOut, tc.stdout, tc.stderr)
			}
		})
	}
}

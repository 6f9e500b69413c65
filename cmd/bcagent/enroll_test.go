package main

import (
	"encoding/binary"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/beckmanconnect/bcupdate/publisher"
)

// TestEnrollTokenFile: bcagent enroll takes the token from a file (the
// MSI's ENROLLTOKENFILE: a token on msiexec's command line lands in its
// log); bad inputs are one-line usage errors (exit 2) that enroll nothing.
func TestEnrollTokenFile(t *testing.T) {
	fx := newFixture(t)
	fx.publish("1.0.0")
	srv := httptest.NewServer(publisher.Handler(fx.store, nil))
	defer srv.Close()
	state := filepath.Join(fx.dir, "agent")
	if code, _, errs := bcagent(t, "--state", state, "init", "--repo-url", srv.URL, "--root", filepath.Join(fx.store.Dir, "metadata", "1.root.json"),
		"--trust", fx.pki.TrustDir, "--component", "notification-client", "--device-id", "INST-1", "--device-model", "DxH 900", "--platform", "linux-amd64"); code != 0 {
		t.Fatalf("init: %s", errs)
	}
	fe := newFleetEnv(t)
	write := func(name string, data []byte) string {
		p := filepath.Join(fx.dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	enroll := func(token ...string) (int, string, string) {
		return bcagent(t, append(append([]string{"--state", state, "enroll", "--fleet", fe.srv.URL}, token...), "--email", "ann.lee@hospital.example",
			"--name", "Ann Lee", "--instrument-model", "DxH 900", "--instrument-id", "4711", "--serial", "SN-4711")...)
	}
	for _, tc := range []struct {
		name  string
		token []string
		want  string
	}{
		{"neither", nil, "--token or --token-file is required"},
		{"both", []string{"--token", fe.token(t), "--token-file", write("both", []byte(fe.token(t)))}, "--token and --token-file: give one of them"},
		{"missing file", []string{"--token-file", filepath.Join(fx.dir, "none")}, "--token-file " + filepath.Join(fx.dir, "none") + ": open"},
		{"empty file", []string{"--token-file", write("empty", []byte(" \r\n"))}, "is empty"},
		{"two lines", []string{"--token-file", write("two", []byte(fe.token(t)+"\n"+fe.token(t)))}, "has more than one line"},
		{"too large", []string{"--token-file", write("large", []byte(strings.Repeat("x", maxTokenFile+1)))}, "is larger than 4096 bytes"},
		{"a directory", []string{"--token-file", fx.dir}, "--token-file " + fx.dir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := enroll(tc.token...)
			if code != exitUsage || !strings.Contains(errs, tc.want) || strings.Count(errs, "\n") != 1 {
				t.Fatalf("exit %d, stderr %q; want exit 2 and one line with %q (stdout %q)", code, errs, tc.want, out)
			}
			if _, err := os.Stat(filepath.Join(state, "fleet.json")); !os.IsNotExist(err) {
				t.Fatal("a refused enrollment left fleet.json")
			}
		})
	}
	// A file as Windows tools write it: UTF-16 with a byte order mark and
	// a line end (PowerShell 5's Out-File).
	tok := fe.token(t)
	u := utf16.Encode([]rune("\ufeff" + tok + "\r\n"))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	code, out, errs := enroll("--token-file", write("token.txt", b))
	if code != 0 || !strings.Contains(out, "enrolled as device dev-") {
		t.Fatalf("enroll --token-file: %d %s %s", code, out, errs)
	}
	// UTF-8 with a byte order mark (Notepad): enrolling again with a new
	// token replaces the device.
	if code, out, errs := enroll("--token-file", write("token-utf8.txt", []byte("\xef\xbb\xbf"+fe.token(t)+"\n"))); code != 0 || !strings.Contains(out, "enrolled as device dev-") {
		t.Fatalf("enroll --token-file (UTF-8 with a byte order mark): %d %s %s", code, out, errs)
	}
}

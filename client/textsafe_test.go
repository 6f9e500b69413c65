package client

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/repo"
)

func validConfig() Config {
	return Config{
		RepositoryURL: "https://updates.example.com/repo", Components: []string{"notification-client"},
		Platform: "linux-amd64", Channel: "stable", DeviceID: "INST-1", DeviceModel: "Navios EX",
		TrustDir: "/etc/bcagent/trust", InstallRoot: "/var/lib/bcagent/install",
	}
}

// Names a person types are refused when they hold anything that could
// rewrite a terminal; printable non-ASCII names are fine.
func TestConfigValidateRefusesControls(t *testing.T) {
	if c := validConfig(); c.Validate() != nil {
		t.Fatalf("valid config refused: %v", c.Validate())
	}
	cases := []struct {
		name string
		edit func(c *Config)
		want string // "" means accepted
	}{
		{"model with non-ASCII letters", func(c *Config) { c.DeviceModel = "Müller 李 EX" }, ""},
		{"model with ESC", func(c *Config) { c.DeviceModel = "Navios EX\x1b[2K" }, "--device-model: U+001B"},
		{"model with newline", func(c *Config) { c.DeviceModel = "Navios\ndeclined by Ann" }, "--device-model: U+000A"},
		{"model with RLO", func(c *Config) { c.DeviceModel = "Navios \u202eXE" }, "--device-model: U+202E"},
		{"model with zero-width space", func(c *Config) { c.DeviceModel = "Navios\u200bEX" }, "--device-model: U+200B"},
		{"model not UTF-8", func(c *Config) { c.DeviceModel = "Navios\xff" }, "--device-model: invalid UTF-8"},
		{"id with C1 CSI", func(c *Config) { c.DeviceID = "INST\u009b2K" }, "--device-id: U+009B"},
		{"id with tab", func(c *Config) { c.DeviceID = "INST\t1" }, "--device-id: U+0009"},
		{"phi class with ESC", func(c *Config) { c.PHIDeviceClasses = []string{"DxH 900", "DxH\x1b[1A"} }, "--phi-device-class: U+001B"},
		{"phi class with LRI", func(c *Config) { c.PHIDeviceClasses = []string{"\u2066DxH"} }, "--phi-device-class: U+2066"},
		{"allowed host with ESC", func(c *Config) { c.AllowedHosts = []string{"cdn.example.com\x1b[2K"} }, "--allow-host: U+001B"},
		{"allowed host with bidi mark", func(c *Config) { c.AllowedHosts = []string{"cdn\u200e.example.com"} }, "--allow-host: U+200E"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want a usage error containing %q", err, tc.want)
			}
			if strings.ContainsAny(err.Error(), "\x1b\n") {
				t.Fatalf("the error repeats the control character: %q", err)
			}
		})
	}
}

func TestApplyOptionsRefuseControlsInBy(t *testing.T) {
	cases := []struct {
		name string
		by   string
		want string
	}{
		{"plain", "Ann Müller", ""},
		{"cursor up", "Ann\x1b[1A", "--by: U+001B"},
		{"carriage return", "Ann\rBob", "--by: U+000D"},
		{"RLO", "Ann\u202ennA", "--by: U+202E"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := ApplyOptions{Authorize: []string{"phi-file-transfer"}, By: tc.by}
			err := o.validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("validate() = %v, want a usage error containing %q", err, tc.want)
			}
		})
	}
}

// textsafeAgent is an agent over a bare state directory: enough for the
// consent gate and the logs, without a repository.
func textsafeAgent(t *testing.T) *Agent {
	t.Helper()
	dir := t.TempDir()
	cfg := validConfig()
	cfg.InstallRoot = filepath.Join(dir, "install")
	return &Agent{dir: dir, cfg: &cfg, log: slog.New(slog.DiscardHandler)}
}

func TestRevokeRefusesControlsInBy(t *testing.T) {
	a := textsafeAgent(t)
	err := a.Revoke("notification-client", "phi-file-transfer", "Ann\x1b[2K", false)
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "--by: U+001B") {
		t.Fatalf("Revoke = %v, want a usage error naming --by", err)
	}
	if entries, _ := a.consentLog().Verify(); len(entries) != 0 {
		t.Fatalf("a refused revoke recorded %d consent entries", len(entries))
	}
}

func TestTerminalPrompterEscapes(t *testing.T) {
	req := ConsentRequest{
		Component: "notification-client", Version: "1.2.0", DeviceID: "INST-1\x1b]0;pwned\a",
		DeviceModel: "Navios EX\u202e", Feature: repo.Feature{ID: "phi-file-transfer"},
		Text: "File transfer\x1b[8m\n\nLine one.\n\tLine two.\x1b[2K\r\nLine three \u200b.",
	}
	var out strings.Builder
	p := &TerminalPrompter{In: strings.NewReader("Ann\x1b[1A\n\nAnn Müller\nyes\n"), Out: &out}
	granted, by, err := p.Confirm(context.Background(), req)
	if err != nil || !granted || by != "Ann Müller" {
		t.Fatalf("Confirm = %v, %q, %v; want granted by Ann Müller", granted, by, err)
	}
	got := out.String()
	for _, r := range []string{"\x1b", "\a", "\r", "\u202e", "\u200b"} {
		if strings.Contains(got, r) {
			t.Errorf("the prompt shows %q raw:\n%s", r, got)
		}
	}
	for _, want := range []string{
		`Device:    INST-1\x1b]0;pwned\x07 (Navios EX\u202e)`,
		"File transfer\\x1b[8m\n\nLine one.\n\tLine two.\\x1b[2K\\r\nLine three \\u200b.\n",
		"That name cannot be recorded: U+001B",
		"A name is required.",
		"Authorized by Ann Müller.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the prompt lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(got, "Your name"); n != 3 {
		t.Errorf("asked for a name %d times, want 3:\n%s", n, got)
	}

	// A name given up front (--by) is checked too.
	p = &TerminalPrompter{In: strings.NewReader("yes\n"), Out: &out, By: "Ann\x1b[2K"}
	if _, _, err := p.Confirm(context.Background(), req); !errors.Is(err, ErrUsage) {
		t.Fatalf("Confirm with --by holding ESC = %v, want a usage error", err)
	}
}

// A consent record written by an older agent (or by hand) may hold
// anything: consent list gets it as it is (the JSON output escapes it
// itself) and the audit export text escapes it.
func TestLoggedControlsAreEscapedOnExport(t *testing.T) {
	a := textsafeAgent(t)
	evil := "Mallory\x1b[2K\r\x1b[1Adeclined by Ann \u202e"
	rec := ConsentRecord{Time: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), Decision: DecisionGranted, By: evil,
		DeviceID: "INST-1", Component: "notification-client", Version: "1.2.0", Feature: "phi-file-transfer"}
	if err := a.consentLog().Append(rec); err != nil {
		t.Fatal(err)
	}
	if err := a.auditLog().Append(AuditEvent{Event: EventConsentDecision, Decision: DecisionGranted, By: evil, Detail: "a\\b"}); err != nil {
		t.Fatal(err)
	}
	list, err := a.ConsentList()
	if err != nil || len(list) != 1 || list[0].By != evil {
		t.Fatalf("ConsentList = %+v, %v; want the record as written", list, err)
	}
	audit, consent, err := a.ExportLogs()
	if err != nil || len(audit) != 1 || len(consent) != 1 {
		t.Fatalf("ExportLogs: %d, %d, %v", len(audit), len(consent), err)
	}
	for _, e := range []LogEntry{audit[0], consent[0]} {
		line := DescribeEntry(e)
		if strings.ContainsAny(line, "\x1b\r\n\u202e") {
			t.Fatalf("DescribeEntry shows control characters raw: %q", line)
		}
		if !strings.Contains(line, `by="Mallory\x1b[2K\r\x1b[1Adeclined by Ann \u202e"`) {
			t.Fatalf("DescribeEntry = %q, want the name escaped", line)
		}
	}
	if line := DescribeEntry(audit[0]); !strings.Contains(line, `detail=a\\b`) {
		t.Fatalf("DescribeEntry = %q, want a backslash escaped", line)
	}
}

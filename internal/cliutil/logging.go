package cliutil

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"
)

// The log flags every program takes (docs/operations.md, "Logs"):
// --log-format text|json and --log-level debug|info|warn|error, each with
// its environment variable. When stderr is systemd's journal stream
// (UnderJournal) a line carries no time of its own, the journal stamps it,
// and starts with the syslog priority ("<3>" for an error) that journald
// reads as the entry's level.

// Log format and level values, as the flags take them.
var (
	LogFormats = []string{"text", "json"}
	LogLevels  = []string{"debug", "info", "warn", "error"}
)

// LogFlags are --log-format and --log-level, with PREFIX_LOG_FORMAT and
// PREFIX_LOG_LEVEL (prefix "BCAGENT", …).
func LogFlags(envPrefix string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log line `FORMAT`: text or json", EnvVars: []string{envPrefix + "_LOG_FORMAT"}},
		&cli.StringFlag{Name: "log-level", Value: "info", Usage: "least `LEVEL` logged: debug, info, warn or error", EnvVars: []string{envPrefix + "_LOG_LEVEL"}},
	}
}

// LogOptions are the log flags' values.
type LogOptions struct {
	Format string // text or json
	Level  string // debug, info, warn or error
	// Journal: the lines go to systemd's journal (no time, priority prefix).
	Journal bool
}

// Check is the usage error for a log format or level the flags do not take.
func (o LogOptions) Check() error {
	if !slices.Contains(LogFormats, o.Format) {
		return Usagef("log-format", "--log-format %q: want text or json", o.Format)
	}
	if !slices.Contains(LogLevels, o.Level) {
		return Usagef("log-level", "--log-level %q: want debug, info, warn or error", o.Level)
	}
	return nil
}

// LogOptionsOf reads the log flags from any command's context (zero
// values where the app has none: text at info).
func LogOptionsOf(c *cli.Context) LogOptions {
	o := LogOptions{Format: c.String("log-format"), Level: c.String("log-level"), Journal: UnderJournal()}
	if o.Format == "" {
		o.Format = "text"
	}
	if o.Level == "" {
		o.Level = "info"
	}
	return o
}

// LogLevelSet says whether --log-level (or its variable) was given.
func LogLevelSet(c *cli.Context) bool {
	for _, cc := range c.Lineage() {
		if cc.IsSet("log-level") {
			return true
		}
	}
	return false
}

// UnderJournal says whether stderr is systemd's journal stream. systemd
// sets JOURNAL_STREAM to "DEVICE:INODE" of the stream it connects a
// service's stderr to, but every child process inherits the variable, also
// one whose stderr is a file or a pipe: as systemd.exec(5) says, the
// stream is the journal only when stderr's own device and inode (fstat)
// are those. Never on Windows (journalStream).
func UnderJournal() bool { return journalStream(os.Getenv("JOURNAL_STREAM")) }

// parseJournalStream is JOURNAL_STREAM's device and inode, decimal
// numbers as systemd writes them.
func parseJournalStream(v string) (dev, ino uint64, ok bool) {
	d, i, found := strings.Cut(v, ":")
	if !found {
		return 0, 0, false
	}
	dev, errd := strconv.ParseUint(d, 10, 64)
	ino, erri := strconv.ParseUint(i, 10, 64)
	return dev, ino, errd == nil && erri == nil
}

func (o LogOptions) level() slog.Level {
	switch o.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// NewLogger is the logger the options describe, writing to w.
func (o LogOptions) NewLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: o.level()}
	if o.Journal {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{} // the journal stamps each line
			}
			return a
		}
		pw := &prefixWriter{w: w}
		var inner slog.Handler
		if o.Format == "json" {
			inner = slog.NewJSONHandler(pw, opts)
		} else {
			inner = slog.NewTextHandler(pw, opts)
		}
		return slog.New(&journalHandler{inner: inner, pw: pw})
	}
	if o.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Priority is the syslog priority journald reads from a "<N>" prefix.
func Priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3 // err
	case l >= slog.LevelWarn:
		return 4 // warning
	case l >= slog.LevelInfo:
		return 6 // info
	}
	return 7 // debug
}

// journalHandler puts each record's priority before its line.
type journalHandler struct {
	inner slog.Handler
	pw    *prefixWriter
}

// prefixWriter writes prefix before what the handler writes for one
// record (slog's handlers write a record in one Write); mu holds the
// prefix and the write together.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.pw.mu.Lock()
	defer h.pw.mu.Unlock()
	h.pw.prefix = fmt.Sprintf("<%d>", Priority(r.Level))
	return h.inner.Handle(ctx, r)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{inner: h.inner.WithAttrs(as), pw: h.pw}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{inner: h.inner.WithGroup(name), pw: h.pw}
}

package eventlog

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/beckmanconnect/bcupdate/client"
)

type event struct {
	level client.EventLevel
	id    uint32
	msg   string
}

type fakeSink struct {
	mu     sync.Mutex
	events []event
}

func (s *fakeSink) add(l client.EventLevel, id uint32, msg string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, event{l, id, msg})
	return nil
}
func (s *fakeSink) Info(id uint32, m string) error    { return s.add(client.EventInformation, id, m) }
func (s *fakeSink) Warning(id uint32, m string) error { return s.add(client.EventWarning, id, m) }
func (s *fakeSink) Error(id uint32, m string) error   { return s.add(client.EventError, id, m) }

func TestHandler(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level slog.Level
		want  []event // what the sink gets from one record at each level
	}{
		{"info", slog.LevelInfo, []event{
			{client.EventWarning, 310, `bundle in the drop folder not imported svc=bcagent file=a.bcbundle`},
			{client.EventError, 311, `bundle from the drop folder refused svc=bcagent g.file=a.bcbundle g.reason="may be an attack"`},
		}},
		{"error only", slog.LevelError, []event{
			{client.EventError, 311, `bundle from the drop folder refused svc=bcagent g.file=a.bcbundle g.reason="may be an attack"`},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			sink := &fakeSink{}
			h := NewHandler(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: tc.level}), sink)
			log := slog.New(h).With("svc", "bcagent")
			log.Debug("scanning", "file", "a.bcbundle")
			log.Info("bundle imported", "file", "a.bcbundle")
			log.Warn("bundle in the drop folder not imported", "file", "a.bcbundle")
			log.WithGroup("g").Error("bundle from the drop folder refused", slog.String("file", "a.bcbundle"), "reason", "may be an attack")
			if len(sink.events) != len(tc.want) {
				t.Fatalf("sink got %+v, want %+v", sink.events, tc.want)
			}
			for i, w := range tc.want {
				if sink.events[i] != w {
					t.Errorf("event %d = %+v, want %+v", i, sink.events[i], w)
				}
			}
			// Every record the level lets through also reached the
			// configured handler, in its format.
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if wantLines := map[slog.Level]int{slog.LevelInfo: 3, slog.LevelError: 1}[tc.level]; len(lines) != wantLines || !strings.HasPrefix(lines[0], `{"time":`) {
				t.Errorf("the configured handler wrote %d lines, want %d in JSON:\n%s", len(lines), wantLines, out.String())
			}
		})
	}
}

// TestHandlerCarriesSink: the agent finds the sink on the service's log
// handler, also after With.
func TestHandlerCarriesSink(t *testing.T) {
	sink := &fakeSink{}
	log := slog.New(NewHandler(slog.DiscardHandler, sink)).With("a", 1).WithGroup("g")
	c, ok := log.Handler().(client.EventSinkCarrier)
	if !ok || c.EventSink() != client.EventSink(sink) {
		t.Fatalf("the handler after With and WithGroup does not carry the sink (%T)", log.Handler())
	}
}

func TestTruncate(t *testing.T) {
	if got := Truncate("short"); got != "short" {
		t.Errorf("Truncate(short) = %q", got)
	}
	long := strings.Repeat("é", MaxMessage) // two bytes each
	got := Truncate(long)
	if len(got) > MaxMessage || !utf8.ValidString(got) || !strings.HasSuffix(got, "(cut)") {
		t.Errorf("Truncate of %d bytes: %d bytes, valid UTF-8 %v, ends %q", len(long), len(got), utf8.ValidString(got), got[len(got)-10:])
	}
	if exact := strings.Repeat("a", MaxMessage); Truncate(exact) != exact {
		t.Error("a message of exactly MaxMessage bytes was cut")
	}
}

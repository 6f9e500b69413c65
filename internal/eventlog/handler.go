package eventlog

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"unicode/utf8"

	"github.com/beckmanconnect/bcupdate/client"
)

// Source is the event source the agent writes under, in the Application
// log; `bcagent service install` and the MSI register it.
const Source = "bcagent"

// MaxMessage is the most bytes of a message written to the Event Log:
// ReportEvent takes strings of at most 31,839 characters.
const MaxMessage = 31 << 10

// Truncate cuts msg to at most MaxMessage bytes, at a character boundary,
// and says so at its end.
func Truncate(msg string) string {
	if len(msg) <= MaxMessage {
		return msg
	}
	const mark = " … (cut)"
	cut := MaxMessage - len(mark)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + mark
}

// Handler passes every record to the next handler and writes warnings
// and errors, as far as next is enabled for them, to the sink (events 310
// and 311): the message, then its attributes as key=value. It carries
// the sink for client.Open (client.EventSinkCarrier).
type Handler struct {
	next slog.Handler
	sink client.EventSink
	// line formats a record for the sink; shared by the handlers derived
	// with WithAttrs and WithGroup, each with its own line handler.
	buf  *lineBuffer
	line slog.Handler
}

type lineBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lineBuffer) Write(p []byte) (int, error) { return l.b.Write(p) }

var (
	_ slog.Handler            = (*Handler)(nil)
	_ client.EventSinkCarrier = (*Handler)(nil)
)

// NewHandler is a Handler over next that writes warnings and errors to
// sink.
func NewHandler(next slog.Handler, sink client.EventSink) *Handler {
	buf := &lineBuffer{}
	line := slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
			return slog.Attr{} // the Event Log has its own time and level; the message leads
		}
		return a
	}})
	return &Handler{next: next, sink: sink, buf: buf, line: line}
}

// EventSink is the sink the agent writes its events to.
func (h *Handler) EventSink() client.EventSink { return h.sink }

// Enabled reports whether next is enabled for l: the log level set by the
// flags holds for the Event Log too.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle passes r on, and writes it to the sink if it is a warning or an
// error.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	err := h.next.Handle(ctx, r)
	if r.Level < slog.LevelWarn {
		return err
	}
	h.buf.mu.Lock()
	h.buf.b.Reset()
	_ = h.line.Handle(ctx, r)
	msg := r.Message
	if attrs := bytes.TrimSpace(h.buf.b.Bytes()); len(attrs) > 0 {
		msg += " " + string(attrs)
	}
	msg = Truncate(msg)
	h.buf.mu.Unlock()
	if r.Level >= slog.LevelError {
		_ = client.WriteEvent(h.sink, client.EventError, client.EventIDLogError, msg)
	} else {
		_ = client.WriteEvent(h.sink, client.EventWarning, client.EventIDLogWarning, msg)
	}
	return err
}

// WithAttrs is a Handler whose records carry as, for next and the sink.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(as), sink: h.sink, buf: h.buf, line: h.line.WithAttrs(as)}
}

// WithGroup is a Handler whose attributes are in group name.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), sink: h.sink, buf: h.buf, line: h.line.WithGroup(name)}
}

package minrate

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

var errSlow = errors.New("too slow")

// trickle sends one byte a Read, each after pause, until its context is
// cancelled.
type trickle struct {
	ctx   context.Context
	pause time.Duration
}

func (t trickle) Read(p []byte) (int, error) {
	select {
	case <-t.ctx.Done():
		return 0, context.Cause(t.ctx)
	case <-time.After(t.pause):
		p[0] = 'x'
		return 1, nil
	}
}

// TestBodyStopsATrickle: a body that never stops sending, but sends far
// less than the rule asks, is stopped with the rule's error and the
// request is cancelled with it.
func TestBodyStopsATrickle(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var got int64 = -1
	rule := Rule{Min: 10000, Window: 50 * time.Millisecond} // 500 bytes a window
	b := NewBody(trickle{ctx, 5 * time.Millisecond}, rule, cancel, func(n int64) error {
		got = n
		return errSlow
	})
	defer b.Close()
	_, err := io.Copy(io.Discard, b)
	if !errors.Is(err, errSlow) || !errors.Is(context.Cause(ctx), errSlow) || b.Err() != errSlow {
		t.Fatalf("Read: %v, cause %v", err, context.Cause(ctx))
	}
	if got < 0 || got >= rule.Need() {
		t.Fatalf("slow was told %d bytes", got)
	}
	if _, err := b.Read(make([]byte, 1)); err != errSlow {
		t.Fatalf("a Read after the rule broke: %v", err)
	}
}

// TestBodyOff: a rule that is off only reads.
func TestBodyOff(t *testing.T) {
	for _, r := range []Rule{{}, {Min: 100}, {Window: time.Second}, {Min: -1, Window: time.Second}} {
		b := NewBody(strings.NewReader("all of it"), r, func(error) { t.Fatal("stopped") }, func(int64) error { return errSlow })
		if data, err := io.ReadAll(b); err != nil || string(data) != "all of it" {
			t.Fatalf("%+v: %q %v", r, data, err)
		}
	}
}

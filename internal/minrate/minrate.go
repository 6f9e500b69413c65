// Package minrate is the minimum-rate rule (TUF's slow-retrieval
// protection) shared by the agent's downloads (package client) and a site
// mirror's (package publisher): a server, or someone in the network path,
// that sends a file at a trickle could otherwise hold a download for as
// long as it likes. Every response body read through a Body must bring at
// least Min bytes a second, judged over each Window of time spent waiting
// for it. Only the time spent waiting in Read counts: time the reader
// spends elsewhere (writing to disk, a rate cap of its own) is not the
// server's fault.
//
// Standard library only: both sides import it, and it imports neither.
package minrate

import (
	"io"
	"sync"
	"time"
)

// Rule is a minimum rate: Min bytes per second over each Window of
// waiting. A Rule with Min or Window not positive is no rule.
type Rule struct {
	Min    int64         // bytes per second; 0: no rule
	Window time.Duration // judged over this much waiting
}

// On says whether the rule applies.
func (r Rule) On() bool { return r.Min > 0 && r.Window > 0 }

// Need is how many bytes each window must bring.
func (r Rule) Need() int64 { return int64(float64(r.Min) * r.Window.Seconds()) }

// Body enforces a Rule on a response body: while a Read waits for the
// server a timer runs; at the end of each window of waiting the bytes that
// arrived in it are counted, and too few stop the request (stop, given the
// error slow made, which should cancel the request's context so that the
// waiting Read returns) and make Read return that error. Other errors of
// the body are returned as they are.
type Body struct {
	body io.Reader
	rule Rule
	stop func(error)
	slow func(got int64) error

	mu      sync.Mutex
	gen     uint64        // counts Reads, so a late timer knows it is stale
	waiting time.Time     // when the current Read started; zero between Reads
	spent   time.Duration // waited in this window, Reads finished
	got     int64         // bytes in this window
	err     error
	closed  bool
}

// NewBody wraps body. stop is called once, from a timer, when the rule is
// broken while a Read waits; slow makes the error, given the bytes that
// arrived in the window. With a rule that is off, Read only reads.
func NewBody(body io.Reader, rule Rule, stop func(error), slow func(got int64) error) *Body {
	return &Body{body: body, rule: rule, stop: stop, slow: slow}
}

// Read reads from the body, and returns the rule's error once it is
// broken (with the bytes of the Read that saw it).
func (b *Body) Read(p []byte) (int, error) {
	if !b.rule.On() {
		return b.body.Read(p)
	}
	b.mu.Lock()
	if b.err != nil {
		b.mu.Unlock()
		return 0, b.err
	}
	b.gen++
	gen := b.gen
	b.waiting = time.Now()
	timer := time.AfterFunc(b.rule.Window-b.spent, func() { b.expire(gen) })
	b.mu.Unlock()

	n, err := b.body.Read(p)

	b.mu.Lock()
	timer.Stop()
	if !b.waiting.IsZero() && b.gen == gen {
		b.spent += time.Since(b.waiting)
		b.waiting = time.Time{}
	}
	b.got += int64(n)
	b.judge()
	slow := b.err
	b.mu.Unlock()
	if slow != nil {
		return n, slow
	}
	return n, err
}

// Err is the rule's error, once it is broken (nil before).
func (b *Body) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// expire runs when a Read has waited to the end of the window.
func (b *Body) expire(gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if gen != b.gen || b.waiting.IsZero() || b.err != nil || b.closed {
		return // that Read has returned
	}
	now := time.Now()
	b.spent += now.Sub(b.waiting)
	b.waiting = now
	b.judge()
	if b.err != nil {
		b.stop(b.err) // unblocks the Read, which returns b.err
		return
	}
	// Enough arrived: the Read goes on waiting into the next window.
	time.AfterFunc(b.rule.Window-b.spent, func() { b.expire(gen) })
}

// judge closes every full window of waiting: too few bytes in it breaks
// the rule. Called with mu held.
func (b *Body) judge() {
	for b.err == nil && b.spent >= b.rule.Window {
		if b.got < b.rule.Need() {
			b.err = b.slow(b.got)
			return
		}
		b.spent -= b.rule.Window
		b.got = 0
	}
}

// Close stops the timers (a late one does nothing); the caller closes the
// body itself.
func (b *Body) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
}

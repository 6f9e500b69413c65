package client

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestForEach(t *testing.T) {
	for _, tc := range []struct{ n, workers int }{{0, 8}, {1, 8}, {5, 1}, {50, 8}, {3, 0}} {
		var mu sync.Mutex
		seen := map[int]int{}
		var running, peak atomic.Int64
		forEach(tc.n, tc.workers, func(i int) {
			r := running.Add(1)
			for {
				p := peak.Load()
				if r <= p || peak.CompareAndSwap(p, r) {
					break
				}
			}
			mu.Lock()
			seen[i]++
			mu.Unlock()
			running.Add(-1)
		})
		if len(seen) != tc.n {
			t.Fatalf("n=%d workers=%d: %d items done", tc.n, tc.workers, len(seen))
		}
		for i, c := range seen {
			if c != 1 || i < 0 || i >= tc.n {
				t.Fatalf("item %d done %d times", i, c)
			}
		}
		if limit := int64(max(tc.workers, 1)); peak.Load() > limit {
			t.Fatalf("n=%d workers=%d: %d ran at once", tc.n, tc.workers, peak.Load())
		}
	}
}

package repo

import (
	"fmt"
	"math"
	"testing"
)

// TestRolloutShare: over 10,000 device ids the share in a rollout is within
// 2 points of P, and a device's answer never changes.
func TestRolloutShare(t *testing.T) {
	for _, p := range []int{1, 10, 50, 90} {
		in := 0
		for i := 0; i < 10000; i++ {
			id := fmt.Sprintf("INST-%05d", i)
			a := InRollout(id, "notification-client", "1.2.0", p)
			if a != InRollout(id, "notification-client", "1.2.0", p) {
				t.Fatal("not deterministic")
			}
			if a {
				in++
			}
		}
		share := float64(in) / 100
		if math.Abs(share-float64(p)) > 2 {
			t.Errorf("P=%d: %.2f%% of devices are in", p, share)
		}
		t.Logf("P=%d: %.2f%%", p, share)
	}
	if !InRollout("x", "c", "1.0.0", 0) || !InRollout("x", "c", "1.0.0", 100) {
		t.Error("no percent and 100 mean everyone")
	}
}

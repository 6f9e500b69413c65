package netaddr

import "testing"

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.3.4.5": true, "::1": true,
		"0:0:0:0:0:0:0:1": true, "10.0.0.1": false, "fleet.example.com": false, "127.0.0.1.example.com": false, "": false} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

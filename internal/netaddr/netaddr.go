// Package netaddr holds the one rule every program here uses for where
// plain http may go: only to loopback.
package netaddr

import (
	"net"
	"strings"
)

// IsLoopback says whether host (a name or an IP, without port) is this
// machine: "localhost" or a loopback address (127.0.0.0/8, ::1).
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

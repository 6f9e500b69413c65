//go:build !linux

package main

import (
	"errors"
	"fmt"
	"time"
)

// settled records what settleMemory did, for the run note (settle.go).
type settled struct {
	reporting string
	bytes     int64
	took      time.Duration
	err       error
}

func (s settled) String() string {
	return fmt.Sprintf("free memory not touched before the sections (%v)", s.err)
}

// settleMemory is Linux's (settle.go).
func settleMemory(st settled) (settled, error) {
	return st, errors.New("only on Linux")
}

// pauseReporting is Linux's (settle.go).
func pauseReporting() string { return "" }

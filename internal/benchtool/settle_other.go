//go:build !linux

package main

import (
	"errors"
	"fmt"
	"time"
)

// settled records what settleMemory did, for the run note (settle.go).
type settled struct {
	bytes int64
	took  time.Duration
	err   error
}

func (s settled) String() string {
	return fmt.Sprintf("free memory not touched before the sections (%v)", s.err)
}

// settleMemory is Linux's (settle.go).
func settleMemory() (settled, error) {
	return settled{}, errors.New("only on Linux")
}

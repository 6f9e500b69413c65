package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// agentBench: the agent binary's size and its idle RSS in `run`.
func agentBench(o options) (string, error) {
	w, err := newWorld(0)
	if err != nil {
		return "", err
	}
	defer w.close()
	_, _, state, stop, err := w.serveAgent(o.bin)
	if err != nil {
		return "", err
	}
	defer stop()
	bin := filepath.Join(o.bin, "bcagent")
	fi, err := os.Stat(bin)
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, "--state", state, "run", "--interval", "1h")
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(3 * time.Second) // one poll, then idle
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return "", err
	}
	field := func(name string) string {
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, name+":") {
				return strings.TrimSpace(strings.TrimPrefix(l, name+":"))
			}
		}
		return "?"
	}
	var s strings.Builder
	fmt.Fprintf(&s, "| bcagent binary | idle RSS in `run` (after a poll) | peak RSS | target |\n|---|---|---|---|\n")
	fmt.Fprintf(&s, "| %s | %s | %s | idle RSS < 30 MiB |\n", kib(fi.Size()), field("VmRSS"), field("VmHWM"))
	return s.String(), nil
}

package main

import (
	"crypto/rand"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// componentCounts are the agent sizes the components section measures.
var componentCounts = []int{1, 10, 50}

// componentSize is each component's artifact in the components section:
// a small program, so the table shows per-component overhead, not the
// disk.
const componentSize = 64 << 10

// compRow is one agent size's measurements.
type compRow struct {
	n                       int
	first, noop, stage, app phase
}

// phase is one agent command: its time (median of the rounds) and the
// HTTP requests and bytes the repository served for it.
type phase struct {
	wall     time.Duration
	requests int64
	bytes    int64
}

// componentsBench: agents that keep 1, 10 and 50 components up to date
// from one repository that publishes 50 (so the TUF metadata every check
// verifies is the same for all three and only the agent's own work per
// component differs), each component with one release waiting: the first
// check (finds them all), a no-op check right after, stage and apply.
// Rounds are interleaved (1, 10, 50, 1, 10, 50, ...), each in a fresh
// agent state; the median time is reported with the requests and bytes.
func componentsBench(o options) (string, error) {
	rounds := 5
	if o.quick {
		rounds = 1
	}
	most := slices.Max(componentCounts)
	w, err := newWorld(0)
	if err != nil {
		return "", err
	}
	defer w.close()
	names := make([]string, most)
	for i := range names {
		names[i] = fmt.Sprintf("component-%02d", i)
		data := make([]byte, componentSize)
		rand.Read(data)
		f, err := w.artifact(names[i]+"-1.0.0.bin", data)
		if err != nil {
			return "", err
		}
		if _, out, err := timed(filepath.Join(o.bin, "bcpublish"), "release", "add", "--repo", w.store.Dir, "--keys", filepath.Join(w.dir, "keys"),
			"--trust", "keys.example/trust", "--component", names[i], "--version", "1.0.0", "--platform", "linux-amd64", "--file", f); err != nil {
			return "", fmt.Errorf("%v %s", err, out)
		}
	}
	url, c, stop, err := w.serve()
	if err != nil {
		return "", err
	}
	defer stop()
	phases := make([][4][]phase, len(componentCounts))
	for round := 0; round < rounds; round++ {
		for k, n := range componentCounts {
			ps, err := componentsRound(o, w, url, c, names[:n], fmt.Sprintf("%d-%d", n, round))
			if err != nil {
				return "", fmt.Errorf("%d components: %w", n, err)
			}
			for i := range ps {
				phases[k][i] = append(phases[k][i], ps[i])
			}
		}
	}
	var rows []compRow
	for k, n := range componentCounts {
		rows = append(rows, compRow{n: n, first: medianPhase(phases[k][0]), noop: medianPhase(phases[k][1]),
			stage: medianPhase(phases[k][2]), app: medianPhase(phases[k][3])})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "One repository publishes %d components, each with one %s release (detached CMS), served on 127.0.0.1 by a counting server; the agents keep the first 1, 10 or %d of them. Times are whole `bcagent` commands (process start included), the median of %d interleaved rounds, each in a fresh agent state; requests and bytes are what the server answered.\n\n", most, kib(componentSize), most, rounds)
	fmt.Fprintf(&b, "| components | first `check` | no-op `check` | `stage` | `apply --no-prompt` |\n|---|---|---|---|---|\n")
	cell := func(p phase) string {
		return fmt.Sprintf("%s, %d req, %s", ms(p.wall), p.requests, kib(p.bytes))
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s |\n", r.n, cell(r.first), cell(r.noop), cell(r.stage), ms(r.app.wall))
	}
	one, last := rows[0], rows[len(rows)-1]
	ratio := func(a, b phase) float64 { return a.wall.Seconds() / b.wall.Seconds() }
	fmt.Fprintf(&b, "\nWith %d components against 1: first check %.2fx (target ≤ 3x), no-op check %.2fx (target ≤ 1.5x), stage %.2fx, apply %.2fx.\n",
		last.n, ratio(last.first, one.first), ratio(last.noop, one.noop), ratio(last.stage, one.stage), ratio(last.app, one.app))
	return b.String(), nil
}

// componentsRound runs one fresh agent that keeps names through check,
// check, stage and apply, and checks that each did its work.
func componentsRound(o options, w *world, url string, c *counter, names []string, tag string) ([4]phase, error) {
	var out [4]phase
	agent := filepath.Join(o.bin, "bcagent")
	state := filepath.Join(w.dir, "agent-"+tag)
	args := []string{"--state", state, "init", "--repo-url", url,
		"--root", filepath.Join(w.store.Dir, "metadata", "1.root.json"), "--trust", "keys.example/trust",
		"--device-id", "BENCH-1", "--device-model", "DxH 900", "--platform", "linux-amd64",
		"--install-root", filepath.Join(w.dir, "install-"+tag)}
	for _, name := range names {
		args = append(args, "--component", name)
	}
	if _, o, err := timed(agent, args...); err != nil {
		return out, fmt.Errorf("%v %s", err, o)
	}
	step := func(check func(string) error, args ...string) (phase, error) {
		c.reset()
		m, o, err := timed(agent, append([]string{"--state", state}, args...)...)
		if err != nil {
			return phase{}, err
		}
		if err := check(o); err != nil {
			return phase{}, fmt.Errorf("bcagent %s: %w\n%s", strings.Join(args, " "), err, o)
		}
		return phase{wall: m.wall, requests: c.requests.Load(), bytes: c.bytes.Load()}, nil
	}
	// Every command must have done its work for every component.
	each := func(want string) func(string) error {
		return func(o string) error {
			for _, name := range names {
				if !strings.Contains(o, name+": "+want) && !strings.Contains(o, name+" "+want) {
					return fmt.Errorf("%s: want %q", name, want)
				}
			}
			return nil
		}
	}
	none := func(string) error { return nil }
	var err error
	if out[0], err = step(each("1.0.0 available"), "check"); err != nil {
		return out, err
	}
	if out[1], err = step(each("1.0.0 available"), "check"); err != nil {
		return out, err
	}
	if out[2], err = step(none, "stage"); err != nil {
		return out, err
	}
	if out[3], err = step(none, "apply", "--no-prompt"); err != nil {
		return out, err
	}
	st, err := exec.Command(agent, "--state", state, "status", "--json").CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("status: %v %s", err, st)
	}
	if got := strings.Count(string(st), `"installed": "1.0.0"`); got < len(names) {
		return out, fmt.Errorf("after apply %d of %d components are installed:\n%s", got, len(names), st)
	}
	return out, nil
}

// medianPhase is the phase with the median time (its requests and bytes
// with it: they are the same in every round).
func medianPhase(ps []phase) phase {
	slices.SortFunc(ps, func(a, b phase) int { return int(a.wall - b.wall) })
	return ps[len(ps)/2]
}

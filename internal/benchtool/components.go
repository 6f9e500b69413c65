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

// componentsBench: an agent with 1, 10 and 50 components, each with one
// release waiting: the first check (finds them all), a no-op check right
// after, stage and apply. Each agent size runs rounds times in fresh
// states; the median time is reported with the requests and bytes.
func componentsBench(o options) (string, error) {
	rounds := 5
	if o.quick {
		rounds = 1
	}
	var rows []compRow
	for _, n := range componentCounts {
		r, err := componentsRow(o, n, rounds)
		if err != nil {
			return "", fmt.Errorf("%d components: %w", n, err)
		}
		rows = append(rows, r)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Each component has one %s release to take (detached CMS); the repository is served on 127.0.0.1 by a counting server. Times are the median of %d rounds, each in a fresh agent state; requests and bytes are what the server answered.\n\n", kib(componentSize), rounds)
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

func componentsRow(o options, n, rounds int) (compRow, error) {
	w, err := newWorld(0)
	if err != nil {
		return compRow{}, err
	}
	defer w.close()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("component-%02d", i)
		data := make([]byte, componentSize)
		rand.Read(data)
		f, err := w.artifact(names[i]+"-1.0.0.bin", data)
		if err != nil {
			return compRow{}, err
		}
		if _, out, err := timed(filepath.Join(o.bin, "bcpublish"), "release", "add", "--repo", w.store.Dir, "--keys", filepath.Join(w.dir, "keys"),
			"--trust", "keys.example/trust", "--component", names[i], "--version", "1.0.0", "--platform", "linux-amd64", "--file", f); err != nil {
			return compRow{}, fmt.Errorf("%v %s", err, out)
		}
	}
	url, c, stop, err := w.serve()
	if err != nil {
		return compRow{}, err
	}
	defer stop()
	agent := filepath.Join(o.bin, "bcagent")
	var first, noop, stage, app []phase
	for round := 0; round < rounds; round++ {
		state := filepath.Join(w.dir, fmt.Sprintf("agent-%d", round))
		args := []string{"--state", state, "init", "--repo-url", url,
			"--root", filepath.Join(w.store.Dir, "metadata", "1.root.json"), "--trust", "keys.example/trust",
			"--device-id", "BENCH-1", "--device-model", "DxH 900", "--platform", "linux-amd64",
			"--install-root", filepath.Join(w.dir, fmt.Sprintf("install-%d", round))}
		for _, name := range names {
			args = append(args, "--component", name)
		}
		if _, out, err := timed(agent, args...); err != nil {
			return compRow{}, fmt.Errorf("%v %s", err, out)
		}
		step := func(check func(string) error, args ...string) (phase, error) {
			c.reset()
			m, out, err := timed(agent, append([]string{"--state", state}, args...)...)
			if err != nil {
				return phase{}, err
			}
			if err := check(out); err != nil {
				return phase{}, fmt.Errorf("bcagent %s: %w\n%s", strings.Join(args, " "), err, out)
			}
			return phase{wall: m.wall, requests: c.requests.Load(), bytes: c.bytes.Load()}, nil
		}
		// Every command must have done its work for every component.
		each := func(want string) func(string) error {
			return func(out string) error {
				for _, name := range names {
					if !strings.Contains(out, name+": "+want) && !strings.Contains(out, name+" "+want) {
						return fmt.Errorf("%s: want %q", name, want)
					}
				}
				return nil
			}
		}
		p, err := step(each("1.0.0 available"), "check")
		if err != nil {
			return compRow{}, err
		}
		first = append(first, p)
		if p, err = step(each("1.0.0 available"), "check"); err != nil {
			return compRow{}, err
		}
		noop = append(noop, p)
		if p, err = step(func(string) error { return nil }, "stage"); err != nil {
			return compRow{}, err
		}
		stage = append(stage, p)
		if p, err = step(func(string) error { return nil }, "apply", "--no-prompt"); err != nil {
			return compRow{}, err
		}
		app = append(app, p)
		// Everything must be installed.
		out, err := exec.Command(agent, "--state", state, "status", "--json").CombinedOutput()
		if err != nil {
			return compRow{}, fmt.Errorf("status: %v %s", err, out)
		}
		if got := strings.Count(string(out), `"installed": "1.0.0"`); got < n {
			return compRow{}, fmt.Errorf("after apply %d of %d components are installed:\n%s", got, n, out)
		}
	}
	return compRow{n: n, first: medianPhase(first), noop: medianPhase(noop), stage: medianPhase(stage), app: medianPhase(app)}, nil
}

// medianPhase is the phase with the median time (its requests and bytes
// with it: they are the same in every round).
func medianPhase(ps []phase) phase {
	slices.SortFunc(ps, func(a, b phase) int { return int(a.wall - b.wall) })
	return ps[len(ps)/2]
}

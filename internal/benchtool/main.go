// Command benchtool runs bcupdate's benchmarks end to end with the real
// binaries, prints each table and, with -out, writes them into a markdown
// file between <!-- bench:NAME --> markers. `make bench` runs it; a test
// runs it on tiny sizes so it cannot rot. Nothing here asserts on time:
// the numbers are reported beside their comparison and target.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

type options struct {
	bin      string
	size     int64 // stage artifact, bytes
	targets  []int // repository sizes
	duration string
	quick    bool
	// settle touches free memory once before the sections (settle.go).
	settle bool
	// The fleet section: simulated devices, the length of its timed
	// phases, the fixed rate.
	fleetDevices  int
	fleetDuration time.Duration
	fleetRate     int
}

func main() {
	var o options
	var size int64
	var targets, out, only string
	flag.StringVar(&o.bin, "bin", "bin", "directory with bcpublish, bcagent and bcfleet")
	flag.Int64Var(&size, "size", 512, "stage artifact size in MiB")
	flag.StringVar(&targets, "targets", "1000,10000,100000", "repository sizes (targets)")
	flag.StringVar(&o.duration, "duration", "5s", "load generator duration per server")
	flag.StringVar(&out, "out", "", "markdown file to update")
	flag.StringVar(&only, "only", "", "comma-separated sections to run (default all): stage, agent, noop, components, delta, serve, scale, fleet, dashboard, offline")
	flag.IntVar(&o.fleetDevices, "fleet-devices", fleetDevices, "fleet: enrolled simulated devices")
	flag.DurationVar(&o.fleetDuration, "fleet-duration", fleetDuration, "fleet: length of each timed phase per server")
	flag.IntVar(&o.fleetRate, "fleet-rate", fleetRate, "fleet: reports/s of the fixed-rate phase")
	flag.BoolVar(&o.quick, "quick", false, "tiny sizes, to check that the benchmarks still run")
	flag.BoolVar(&o.settle, "settle-memory", true, "pause the guest's free page reporting for the run and touch free memory once before the sections, so a VM's lazily backed memory does not land on whichever section draws on it (off with -quick)")
	flag.Parse()
	o.size = size << 20
	if o.quick {
		o.size = 1 << 20
	}
	for _, t := range strings.Split(targets, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(t))
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtool: -targets:", err)
			os.Exit(2)
		}
		o.targets = append(o.targets, n)
	}
	if err := run(o, out, only); err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

type section struct {
	name string
	fn   func(o options) (string, error)
}

func sections() []section {
	return []section{
		// Peak RSS is read from the children's rusage, which also counts
		// this process's memory at fork: the memory-hungry scale section
		// runs last.
		{"stage", func(o options) (string, error) { return stageBench(o.bin, o.size, o.quick) }},
		{"agent", agentBench},
		{"noop", noopBench},
		{"components", componentsBench},
		{"delta", deltaBench},
		{"serve", serveBench},
		// Offline bundles and site mirrors (peak RSS: before scale).
		{"offline", offlineBench},
		{"scale", scaleBench},
		// After scale, for the same reason: 100,000 device keys.
		{"fleet", fleetBench},
		// The dashboard's pages on a fleet of 100,000 devices.
		{"dashboard", dashboardBench},
	}
}

func run(o options, out, only string) (err error) {
	// Nothing the benchmarks start outlives them: a section that left a
	// child running (it should stop its own) fails the run.
	defer func() {
		if n := liveChildren(); n > 0 {
			err = errors.Join(err, fmt.Errorf("%d child processes were still running after the benchmarks", n))
		}
		err = errors.Join(err, stopAll())
	}()
	// The document is written only when every section ran and passed its
	// checks, so its tables always come from one run.
	load := loadavg()
	var st settled
	if o.settle && !o.quick {
		fmt.Println("== settling memory")
		handleInterrupts()
		defer runAtExit()
		st.reporting = pauseReporting()
		if st, err = settleMemory(st); err != nil {
			// The run goes on: its note says the memory was not touched.
			st.err = err
			fmt.Fprintln(os.Stderr, "benchtool: warning:", err)
		}
		fmt.Println(st)
	}
	tables := map[string]string{"run": runInfo(only, load, st)}
	var names []string
	for _, s := range sections() {
		if only != "" && !strings.Contains(","+only+",", ","+s.name+",") {
			continue
		}
		fmt.Printf("== %s\n", s.name)
		table, err := s.fn(o)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Println(table)
		tables[s.name] = table
		names = append(names, s.name)
	}
	if out == "" {
		return nil
	}
	if only != "" {
		fmt.Fprintf(os.Stderr, "benchtool: -only %s: %s now mixes runs; its run note says so\n", only, out)
	}
	for _, name := range append([]string{"run"}, names...) {
		if err := updateDoc(out, name, tables[name]); err != nil {
			return err
		}
	}
	return nil
}

// runInfo says where and when the tables come from: date, machine, load
// when the run started, commit and Go version.
func runInfo(only, load string, st settled) string {
	commit, _ := exec.Command("git", "describe", "--always", "--dirty").Output()
	what := "Every table below comes from one `make bench` run"
	if only != "" {
		what = "The tables of " + only + " come from a `benchtool -only` run (the others from earlier runs)"
	}
	return fmt.Sprintf("%s: %s UTC on %s, load average %s when it started; commit %s, %s; %s.\n",
		what, time.Now().UTC().Format("2006-01-02 15:04"), machine(), load, strings.TrimSpace(string(commit)), runtime.Version(), st)
}

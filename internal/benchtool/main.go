// Command benchtool runs bcupdate's benchmarks end to end with the real
// binaries, prints each table and, with -out, writes them into a markdown
// file between <!-- bench:NAME --> markers. `make bench` runs it; a test
// runs it on tiny sizes so it cannot rot. Nothing here asserts on time:
// the numbers are reported beside their comparison and target.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
)

type options struct {
	bin      string
	size     int64 // stage artifact, bytes
	targets  []int // repository sizes
	duration string
	quick    bool
}

func main() {
	var o options
	var size int64
	var targets, out, only string
	flag.StringVar(&o.bin, "bin", "bin", "directory with bcpublish and bcagent")
	flag.Int64Var(&size, "size", 512, "stage artifact size in MiB")
	flag.StringVar(&targets, "targets", "1000,10000,100000", "repository sizes (targets)")
	flag.StringVar(&o.duration, "duration", "5s", "load generator duration per server")
	flag.StringVar(&out, "out", "", "markdown file to update")
	flag.StringVar(&only, "only", "", "comma-separated sections to run (default all)")
	flag.BoolVar(&o.quick, "quick", false, "tiny sizes, to check that the benchmarks still run")
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
		{"scale", scaleBench},
	}
}

func run(o options, out, only string) error {
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
		if out != "" {
			if err := updateDoc(out, s.name, table); err != nil {
				return err
			}
		}
	}
	return nil
}

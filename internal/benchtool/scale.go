package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// noopBench: a no-op `bcagent check` (nothing new): requests and bytes,
// against go-tuf's default fetcher refreshing the same repository.
func noopBench(o options) (string, error) {
	w, err := newWorld(0)
	if err != nil {
		return "", err
	}
	defer w.close()
	f, err := w.artifact("notification-client-1.0.0.tar.gz", []byte("release"))
	if err != nil {
		return "", err
	}
	if _, out, err := w.releaseAdd(o.bin, "1.0.0", f); err != nil {
		return "", fmt.Errorf("%v %s", err, out)
	}
	url, c, state, stop, err := w.serveAgent(o.bin)
	if err != nil {
		return "", err
	}
	defer stop()
	agent := filepath.Join(o.bin, "bcagent")
	if _, _, err := timed(agent, "--state", state, "check"); err != nil {
		return "", err
	}
	c.reset()
	if _, _, err := timed(agent, "--state", state, "check"); err != nil {
		return "", err
	}
	ours, oursBytes := c.requests.Load(), c.bytes.Load()

	// go-tuf's default fetcher, from the same cached state.
	cache := filepath.Join(w.dir, "gotuf")
	if err := copyDir(filepath.Join(state, "tuf"), cache); err != nil {
		return "", err
	}
	root, err := os.ReadFile(filepath.Join(cache, "root.json"))
	if err != nil {
		return "", err
	}
	cfg, err := config.New(url+"/metadata", root)
	if err != nil {
		return "", err
	}
	cfg.LocalMetadataDir, cfg.LocalTargetsDir, cfg.RemoteTargetsURL = cache, filepath.Join(cache, "t"), url+"/targets"
	up, err := updater.New(cfg)
	if err != nil {
		return "", err
	}
	c.reset()
	if err := up.Refresh(); err != nil {
		return "", err
	}
	def, defBytes := c.requests.Load(), c.bytes.Load()
	// Both must have done the same work: trust the repository's current
	// timestamp.json.
	want, err := timestampVersion(filepath.Join(w.store.Dir, "metadata", "timestamp.json"))
	if err != nil {
		return "", err
	}
	if got, err := timestampVersion(filepath.Join(state, "tuf", "timestamp.json")); err != nil || got != want {
		return "", fmt.Errorf("bcagent check trusts timestamp version %d (%v), the repository's is %d", got, err, want)
	}
	if got := up.GetTrustedMetadataSet().Timestamp.Signed.Version; got != want {
		return "", fmt.Errorf("go-tuf's refresh trusts timestamp version %d, the repository's is %d", got, want)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| client | HTTP requests | bytes | target |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| `bcagent check`, nothing new | %d | %s | root probe and timestamp.json only, ≤ 2 KiB |\n", ours, kib(oursBytes))
	fmt.Fprintf(&b, "| go-tuf default fetcher, same refresh | %d | %s | |\n", def, kib(defBytes))
	return b.String(), nil
}

// scaleBench: a check that finds one new release, and release add, in
// repositories of growing size, flat and with hashed bins.
func scaleBench(o options) (string, error) {
	type row struct {
		n, bins    int
		add, check time.Duration
		bytes      int64
		metadata   int64
		note       string
	}
	var rows []row
	for _, n := range o.targets {
		for _, bins := range []int{0, binsFor(n)} {
			r := row{n: n, bins: bins}
			if err := func() error {
				w, err := newWorld(bins)
				if err != nil {
					return err
				}
				defer w.close()
				if err := w.fill(n); err != nil {
					return err
				}
				r.metadata = dirSize(filepath.Join(w.store.Dir, "metadata"))
				// The agent is set up before the releases are added:
				// `bcagent init` looks at the repository once, and an
				// agent set up afterwards would already hold the metadata
				// that names the new release, so its check would fetch
				// nothing but timestamp.json (what this table once showed).
				_, c, state, stop, err := w.serveAgent(o.bin)
				if err != nil {
					return err
				}
				defer stop()
				// Several releases, one after another: the median time.
				var adds []time.Duration
				var last string
				for i := 0; i < addRuns(o); i++ {
					last = fmt.Sprintf("1.0.%d", i)
					f, err := w.artifact("notification-client-"+last+".tar.gz", []byte("new release "+last))
					if err != nil {
						return err
					}
					m, out, err := w.releaseAdd(o.bin, last, f)
					if err != nil {
						if strings.Contains(out, "larger than") {
							r.note = fmt.Sprintf("its metadata is %s: targets.json passes the 16 MiB bound, so agents cannot use it", kib(r.metadata))
							return nil
						}
						return err
					}
					adds = append(adds, m.wall)
				}
				slices.Sort(adds)
				r.add = adds[len(adds)/2]
				c.reset()
				cm, out, err := timed(filepath.Join(o.bin, "bcagent"), "--state", state, "check")
				if err != nil {
					return fmt.Errorf("%v %s", err, out)
				}
				if !strings.Contains(out, last+" available") {
					return fmt.Errorf("check did not find the release: %s", out)
				}
				r.check, r.bytes = cm.wall, c.bytes.Load()
				return nil
			}(); err != nil {
				return "", fmt.Errorf("%d targets, %d bins: %w", n, bins, err)
			}
			rows = append(rows, r)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| targets | layout | `release add` | `bcagent check` (finds it) | bytes downloaded | note |\n|---|---|---|---|---|---|\n")
	flat := map[int]int64{}
	var addFirst, addLast time.Duration
	for _, r := range rows {
		layout := "flat"
		if r.bins > 0 {
			layout = fmt.Sprintf("%d bins", r.bins)
			if addFirst == 0 {
				addFirst = r.add
			}
			addLast = r.add
		} else {
			flat[r.n] = r.bytes
			if r.note != "" {
				flat[r.n] = r.metadata // what a flat check would have to fetch
			}
		}
		note := r.note
		if r.bins > 0 && flat[r.n] > 0 {
			note = fmt.Sprintf("%.2f%% of the flat bytes", 100*float64(r.bytes)/float64(flat[r.n]))
		}
		if r.note != "" {
			fmt.Fprintf(&b, "| %d | %s | n/a | n/a | n/a | %s |\n", r.n, layout, note)
			continue
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s |\n", r.n, layout, ms(r.add), ms(r.check), kib(r.bytes), note)
	}
	if addFirst > 0 {
		fmt.Fprintf(&b, "\n`release add` times are the median of %d releases published one after another. With bins, `release add` at %d targets takes %.1fx its time at %d targets (target: within 3x). Target for bytes: bins under 2%% of flat at 100,000 targets (flat cannot go there: its targets.json passes the 16 MiB bound).\n",
			addRuns(o), o.targets[len(o.targets)-1], addLast.Seconds()/addFirst.Seconds(), o.targets[0])
	}
	return b.String(), nil
}

// addRuns is how many releases each scale row publishes (median taken).
func addRuns(o options) int {
	if o.quick {
		return 2
	}
	return 5
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

func copyDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// timestampVersion is the signed version of a timestamp.json file.
func timestampVersion(file string) (int64, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	var ts struct {
		Signed struct {
			Version int64 `json:"version"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(data, &ts); err != nil {
		return 0, fmt.Errorf("%s: %w", file, err)
	}
	return ts.Signed.Version, nil
}

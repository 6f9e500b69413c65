package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// offlineBench (issue 18): an offline bundle that carries one large
// artifact, created and imported, against `openssl dgst -sha256` over the
// same bytes; and a site mirror's sync of one new release into a
// repository of 10,000 releases, in bytes against what an agent fetches
// for the same release.
func offlineBench(o options) (string, error) {
	var b strings.Builder
	if err := bundleBench(o, &b); err != nil {
		return "", err
	}
	if err := mirrorBench(o, &b); err != nil {
		return "", err
	}
	return b.String(), nil
}

func bundleBench(o options, b *strings.Builder) error {
	rounds := 5
	if o.quick {
		rounds = 1
	}
	pub, agent := filepath.Join(o.bin, "bcpublish"), filepath.Join(o.bin, "bcagent")
	work, err := os.MkdirTemp("", "bcupdate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	keys, repoDir := filepath.Join(work, "keys"), filepath.Join(work, "repo")
	for _, args := range [][]string{{"keys", "generate", "--out", keys}, {"init", "--repo", repoDir, "--keys", keys}} {
		if _, out, err := timed(pub, args...); err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
	}
	keyData, err := os.ReadFile("keys.example/pki/leaf.key")
	if err != nil {
		return fmt.Errorf("run from the repository root: %w", err)
	}
	if err := os.WriteFile(filepath.Join(work, "leaf.key"), keyData, 0o600); err != nil {
		return err
	}
	// The artifact, streamed from the random source (this process must
	// not hold it: children's peak RSS counts what it holds at fork).
	artifact := filepath.Join(work, "notification-client.bin")
	f, err := os.Create(artifact)
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, o.size); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	want := hex.EncodeToString(h.Sum(nil))
	for _, args := range [][]string{
		{"codesign", "sign", "--cert", "keys.example/pki/chain.pem", "--key", filepath.Join(work, "leaf.key"), "--file", artifact},
		{"release", "add", "--repo", repoDir, "--keys", keys, "--trust", "keys.example/trust", "--component", "notification-client",
			"--version", "1.0.0", "--platform", "linux-amd64", "--file", artifact, "--install", "file"},
	} {
		if _, out, err := timed(pub, args...); err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
	}
	bundle := filepath.Join(work, "offline.bcbundle")
	openssl := func() (measure, error) {
		m, out, err := timed("openssl", "dgst", "-sha256", artifact)
		if err == nil && !strings.Contains(out, want) {
			err = fmt.Errorf("openssl dgst -sha256 %s: want %s, got %s", artifact, want, out)
		}
		return m, err
	}
	var sslC, create, sslI, imp []measure
	loadBefore := loadavg()
	for r := 0; r < rounds; r++ {
		m, err := openssl()
		if err != nil {
			return err
		}
		sslC = append(sslC, m)
		os.Remove(bundle)
		m, out, err := timed(pub, "bundle", "create", "--repo", repoDir, "--keys", keys, "--component", "notification-client",
			"--version", "1.0.0", "--platform", "linux-amd64", "--out", bundle)
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		if fi, err := os.Stat(bundle); err != nil || fi.Size() < o.size {
			return fmt.Errorf("bcpublish bundle create exited 0 but %s is not there or holds less than the artifact: %v", bundle, err)
		}
		create = append(create, m)
		if m, err = openssl(); err != nil {
			return err
		}
		sslI = append(sslI, m)
		// A fresh agent whose repository nothing answers: the import
		// cannot reach a network.
		state := filepath.Join(work, fmt.Sprintf("agent-%d", r))
		if _, out, err := timed(agent, "--state", state, "init", "--repo-url", "http://127.0.0.1:9", "--root", filepath.Join(repoDir, "metadata", "1.root.json"),
			"--trust", "keys.example/trust", "--component", "notification-client", "--device-id", "BENCH-1", "--device-model", "DxH 900",
			"--platform", "linux-amd64", "--install-root", filepath.Join(work, fmt.Sprintf("install-%d", r))); err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		m, out, err = timed(agent, "--state", state, "import", bundle)
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		staged := filepath.Join(state, "staging", "notification-client", "1.0.0", "notification-client.bin")
		if err := checkFile(staged, o.size, want); err != nil {
			return fmt.Errorf("bcagent import exited 0 but: %w\n%s", err, out)
		}
		imp = append(imp, m)
		os.RemoveAll(state)
		os.RemoveAll(filepath.Join(work, fmt.Sprintf("install-%d", r)))
	}
	fi, err := os.Stat(bundle)
	if err != nil {
		return err
	}
	mib := float64(o.size) / (1 << 20)
	med, wall, cpu, peak, ratio := medianOf, wallOf, cpuOf, peakRSS, ratiosTo
	fmt.Fprintf(b, "Bundle: one release of notification-client, a %d MiB artifact of random bytes with its detached CMS signature; the bundle file %s. "+
		"%d interleaved rounds (openssl, create, openssl, import, ...), each import into a fresh agent state whose repository URL nothing answers, and checked (exit 0, staged file with the signed length and sha256); "+
		"times are medians, ratios min-median-max of the per-round ratios to the openssl before it. Measured %s on %s; load average %s before, %s after.\n\n",
		o.size>>20, kib(fi.Size()), rounds, time.Now().UTC().Format("2006-01-02"), machine(), loadBefore, loadavg())
	b.WriteString("| measurement | time | throughput | ratio to openssl (min-median-max) | CPU (user+sys) | peak RSS | target |\n|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(b, "| `openssl dgst -sha256` of the artifact (baseline) | %.2fs | %.0f MiB/s | 1.00 | %.2fs | %d MiB | |\n",
		med(sslC, wall).Seconds(), mib/med(sslC, wall).Seconds(), med(sslC, cpu).Seconds(), peak(sslC))
	for _, row := range []struct {
		name     string
		ssl, got []measure
	}{
		{"`bcpublish bundle create` (sha256 of the artifact checked against the signed metadata while it is copied in)", sslC, create},
		{"`bcagent import` (TUF and code signature verified, artifact staged)", sslI, imp},
	} {
		lo, mid, hi := ratio(row.ssl, row.got)
		verdict := "met"
		if mid < 0.5 || peak(row.got) >= 64 {
			verdict = "**not met**"
		}
		fmt.Fprintf(b, "| %s | %.2fs | %.0f MiB/s | %.2f-**%.2f**-%.2f | %.2fs | %d MiB | ratio ≥ 0.5, RSS < 64 MiB: %s |\n",
			row.name, med(row.got, wall).Seconds(), mib/med(row.got, wall).Seconds(), lo, mid, hi, med(row.got, cpu).Seconds(), peak(row.got), verdict)
	}
	return nil
}

// mirrorBench: a mirror of a repository with 10,000 releases (hashed
// bins) syncs one new release; an agent that was up to date checks and
// stages the same release. Both read from the same counting server.
func mirrorBench(o options, b *strings.Builder) error {
	n := 10000
	if o.quick {
		n = 100
	}
	w, err := newWorld(binsFor(n))
	if err != nil {
		return err
	}
	defer w.close()
	if err := w.fill(n); err != nil {
		return err
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	f, err := w.artifact("notification-client-1.0.0.bin", data)
	if err != nil {
		return err
	}
	if _, out, err := w.releaseAdd(o.bin, "1.0.0", f); err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	url, c, state, stop, err := w.serveAgent(o.bin)
	if err != nil {
		return err
	}
	defer stop()
	pub, agent := filepath.Join(o.bin, "bcpublish"), filepath.Join(o.bin, "bcagent")
	mirrorDir := filepath.Join(w.dir, "mirror")
	mirror := func() (measure, error) {
		m, out, err := timed(pub, "mirror", "--from", url, "--to", mirrorDir, "--root", filepath.Join(w.store.Dir, "metadata", "1.root.json"),
			"--component", "notification-client")
		if err != nil {
			return m, fmt.Errorf("%v\n%s", err, out)
		}
		return m, nil
	}
	// The starting point: the mirror holds the repository, the agent has
	// checked and staged 1.0.0.
	c.reset()
	first, err := mirror()
	if err != nil {
		return err
	}
	firstReq, firstBytes := c.requests.Load(), c.bytes.Load()
	for _, cmd := range []string{"check", "stage"} {
		if _, out, err := timed(agent, "--state", state, cmd); err != nil {
			return fmt.Errorf("bcagent %s: %v\n%s", cmd, err, out)
		}
	}
	// One new release.
	rand.Read(data)
	if f, err = w.artifact("notification-client-1.0.1.bin", data); err != nil {
		return err
	}
	if _, out, err := w.releaseAdd(o.bin, "1.0.1", f); err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	c.reset()
	sync, err := mirror()
	if err != nil {
		return err
	}
	syncReq, syncBytes := c.requests.Load(), c.bytes.Load()
	// The mirror now holds what the repository does.
	up, err := timestampVersion(filepath.Join(w.store.Dir, "metadata", "timestamp.json"))
	if err != nil {
		return err
	}
	down, err := timestampVersion(filepath.Join(mirrorDir, "metadata", "timestamp.json"))
	if err != nil || down != up {
		return fmt.Errorf("after the sync the mirror's timestamp is version %d, the repository's %d (%v)", down, up, err)
	}
	sum := sha256.Sum256(data)
	if matches, _ := filepath.Glob(filepath.Join(mirrorDir, "targets", "notification-client", "linux-amd64", "1.0.1", hex.EncodeToString(sum[:])+".*")); len(matches) == 0 {
		return fmt.Errorf("after the sync the mirror lacks notification-client 1.0.1's artifact")
	}
	c.reset()
	for _, cmd := range []string{"check", "stage"} {
		if _, out, err := timed(agent, "--state", state, cmd); err != nil {
			return fmt.Errorf("bcagent %s: %v\n%s", cmd, err, out)
		}
	}
	agentReq, agentBytes := c.requests.Load(), c.bytes.Load()
	if agentBytes == 0 {
		return fmt.Errorf("the agent fetched nothing for 1.0.1")
	}
	r := float64(syncBytes) / float64(agentBytes)
	verdict := "met"
	if r >= 2 {
		verdict = "**not met**"
	}
	fmt.Fprintf(b, "\nMirror: a repository of %d releases in %d hashed bins, plus notification-client 1.0.0 and then 1.0.1 (1 MiB artifacts), served over HTTP on loopback by a server that counts requests and bytes; `bcpublish mirror --component notification-client` into a directory. "+
		"The agent was up to date (1.0.0 checked and staged) and then checks and stages 1.0.1.\n\n", n, binsFor(n))
	b.WriteString("| measurement | requests | bytes | time | peak RSS | target |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(b, "| first sync of the mirror (all metadata, notification-client's artifacts) | %d | %s | %s | %d MiB | |\n", firstReq, kib(firstBytes), ms(first.wall), first.rssKB>>10)
	fmt.Fprintf(b, "| the agent's check and stage of 1.0.1 | %d | %s | | | |\n", agentReq, kib(agentBytes))
	fmt.Fprintf(b, "| the mirror's sync of 1.0.1 | %d | %s | %s | %d MiB | bytes < 2× the agent's: %.2f×, %s |\n", syncReq, kib(syncBytes), ms(sync.wall), sync.rssKB>>10, r, verdict)
	return nil
}

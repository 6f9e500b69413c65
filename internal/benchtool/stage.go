package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

type measure struct {
	wall  time.Duration
	rssKB int64
}

func timed(name string, args ...string) (measure, string, error) {
	cmd := exec.Command(name, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err := cmd.Run()
	m := measure{wall: time.Since(start)}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.rssKB = ru.Maxrss
	}
	if err != nil {
		return m, buf.String(), fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, buf.String())
	}
	return m, buf.String(), nil
}

// stageBench: `bcagent stage` and `apply` of a large artifact served on
// loopback: wall time, throughput as a ratio to `openssl dgst -sha256` of
// the same file, peak RSS (ru_maxrss), and the disk floor.
func stageBench(bin string, size int64) (string, error) {
	bin, _ = filepath.Abs(bin)
	pub, agent := filepath.Join(bin, "bcpublish"), filepath.Join(bin, "bcagent")
	work, err := os.MkdirTemp("", "bcupdate-bench-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	ex := func(name string, args ...string) (string, error) {
		_, o, err := timed(name, args...)
		return o, err
	}
	// Keys, example PKI, repository.
	if _, err := ex(pub, "keys", "generate", "--out", filepath.Join(work, "keys")); err != nil {
		return "", err
	}
	if _, err := ex(pub, "init", "--repo", filepath.Join(work, "repo"), "--keys", filepath.Join(work, "keys")); err != nil {
		return "", err
	}
	keyData, err := os.ReadFile("keys.example/pki/leaf.key")
	if err != nil {
		return "", fmt.Errorf("run from the repository root: %w", err)
	}
	os.WriteFile(filepath.Join(work, "leaf.key"), keyData, 0o600)
	artifact := filepath.Join(work, "notification-client.bin")
	f, err := os.Create(artifact)
	if err != nil {
		return "", err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		return "", err
	}
	f.Close()
	if _, err := ex(pub, "codesign", "sign", "--cert", "keys.example/pki/chain.pem", "--key", filepath.Join(work, "leaf.key"), "--file", artifact); err != nil {
		return "", err
	}
	if _, err := ex(pub, "release", "add", "--repo", filepath.Join(work, "repo"), "--keys", filepath.Join(work, "keys"),
		"--trust", "keys.example/trust", "--component", "notification-client", "--version", "1.0.0",
		"--platform", "linux-amd64", "--file", artifact, "--install", "file"); err != nil {
		return "", err
	}
	// Serve on loopback.
	srv := exec.Command(pub, "serve", "--repo", filepath.Join(work, "repo"), "--addr", "127.0.0.1:0")
	srvOut := &syncBuffer{}
	srv.Stdout = srvOut
	if err := srv.Start(); err != nil {
		return "", err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	var url string
	re := regexp.MustCompile(`at (http://[0-9.:]+) `)
	for i := 0; i < 100 && url == ""; i++ {
		time.Sleep(50 * time.Millisecond)
		if m := re.FindStringSubmatch(srvOut.String()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		return "", fmt.Errorf("server did not start: %s", srvOut.String())
	}
	state := filepath.Join(work, "agent")
	if _, err := ex(agent, "--state", state, "init", "--repo-url", url, "--root", filepath.Join(work, "repo", "metadata", "1.root.json"),
		"--trust", "keys.example/trust", "--component", "notification-client", "--device-id", "BENCH-1", "--device-model", "DxH 900", "--platform", "linux-amd64"); err != nil {
		return "", err
	}
	if _, err := ex(agent, "--state", state, "check"); err != nil {
		return "", err
	}
	// Warm the page cache for both sides alike, then measure.
	ex("openssl", "dgst", "-sha256", artifact)
	dgst, _, err := timed("openssl", "dgst", "-sha256", artifact)
	if err != nil {
		return "", err
	}
	// The disk floor: writing the same bytes with fsync, nothing else.
	floorStart := time.Now()
	if err := copySync(artifact, filepath.Join(work, "floor.bin")); err != nil {
		return "", err
	}
	floor := time.Since(floorStart)
	os.Remove(filepath.Join(work, "floor.bin"))
	stage, _, err := timed(agent, "--state", state, "stage")
	if err != nil {
		return "", err
	}
	apply, _, err := timed(agent, "--state", state, "apply", "--no-prompt")
	if err != nil {
		return "", err
	}
	mib := float64(size) / (1 << 20)
	rate := func(d time.Duration) float64 { return mib / d.Seconds() }
	var b strings.Builder
	fmt.Fprintf(&b, "Artifact: %d MiB of random bytes, detached CMS (sha256), served by `bcpublish serve` on 127.0.0.1; measured %s on %s.\n\n",
		size>>20, time.Now().UTC().Format("2006-01-02"), machine())
	fmt.Fprintf(&b, "| measurement | time | throughput | ratio to openssl | peak RSS | target |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| `openssl dgst -sha256` (baseline) | %.2fs | %.0f MiB/s | 1.00 | %d MiB | |\n", dgst.wall.Seconds(), rate(dgst.wall), dgst.rssKB>>10)
	fmt.Fprintf(&b, "| disk: copy the file and fsync, nothing else | %.2fs | %.0f MiB/s | %.2f | | |\n",
		floor.Seconds(), rate(floor), dgst.wall.Seconds()/floor.Seconds())
	fmt.Fprintf(&b, "| `bcagent stage` (download; sha256, disk write and network in parallel; CMS on that sha256) | %.2fs | %.0f MiB/s | %.2f | %d MiB | ratio ≥ 0.5, RSS < 64 MiB |\n",
		stage.wall.Seconds(), rate(stage.wall), dgst.wall.Seconds()/stage.wall.Seconds(), stage.rssKB>>10)
	fmt.Fprintf(&b, "| `bcagent apply` right after (re-verify in one pass, fsync, link into place, switch) | %.2fs | %.0f MiB/s | %.2f | %d MiB | RSS < 64 MiB |\n",
		apply.wall.Seconds(), rate(apply.wall), dgst.wall.Seconds()/apply.wall.Seconds(), apply.rssKB>>10)
	return b.String(), nil
}

func machine() string {
	n, _ := exec.Command("nproc").Output()
	m, _ := exec.Command("sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").Output()
	return fmt.Sprintf("%s cores, %s", strings.TrimSpace(string(n)), strings.TrimSpace(string(m)))
}

func updateDoc(path, section, table string) error {
	begin, end := "<!-- bench:"+section+" -->", "<!-- /bench:"+section+" -->"
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	block := begin + "\n" + table + end
	if i < 0 || j < i {
		s += "\n" + block + "\n"
	} else {
		s = s[:i] + block + s[j+len(end):]
	}
	return os.WriteFile(path, []byte(s), 0o644)
}

func copySync(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(out, in, make([]byte, 1<<20)); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// syncBuffer is a bytes.Buffer a child process may write while we read.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

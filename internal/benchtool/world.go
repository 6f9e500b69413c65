package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

// world is a benchmark repository with its keys, signed with the example
// PKI of keys.example/ (run from the repository root).
type world struct {
	dir   string
	keys  repo.Keys
	store *publisher.DirStore
	leaf  crypto.Signer
	chain string
	trust *signer.Trust
}

func newWorld(bins int) (*world, error) {
	dir, err := os.MkdirTemp("", "bcupdate-bench-")
	if err != nil {
		return nil, err
	}
	w := &world{dir: dir, store: &publisher.DirStore{Dir: filepath.Join(dir, "repo")}, chain: "keys.example/pki/chain.pem"}
	if _, err := publisher.GenerateKeys(filepath.Join(dir, "keys"), signer.KeyTypeEd25519); err != nil {
		return nil, err
	}
	if w.keys, err = publisher.LoadKeys(filepath.Join(dir, "keys"), repo.TopLevelRoles...); err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile("keys.example/pki/leaf.key")
	if err != nil {
		return nil, fmt.Errorf("run from the repository root: %w", err)
	}
	if w.leaf, err = signer.ParsePrivateKey(keyPEM, "keys.example/pki/leaf.key"); err != nil {
		return nil, err
	}
	if w.trust, err = signer.LoadTrust("keys.example/trust"); err != nil {
		return nil, err
	}
	if _, err := publisher.InitBins(context.Background(), w.store, w.keys, time.Now(), bins); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *world) close() { os.RemoveAll(w.dir) }

// fill adds n synthetic release targets (metadata only) in one commit.
func (w *world) fill(n int) error {
	if n == 0 {
		return nil
	}
	r, err := repo.Load(func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(w.store.Dir, "metadata", name)) })
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		comp := fmt.Sprintf("component-%02d", i%50)
		v := fmt.Sprintf("1.%d.%d", i/1000, i%1000)
		rel := &repo.Release{Component: comp, Version: v, Platform: "windows-amd64", Install: repo.InstallArchive,
			Codesign: repo.CodesignCMS, Released: "2026-11-26T10:00:00Z"}
		custom, err := rel.Custom()
		if err != nil {
			return err
		}
		sum := sha256.Sum256([]byte(v + comp))
		if _, err := r.AddImmutable(repo.Target{Path: repo.ArtifactPath(comp, "windows-amd64", v, comp+"-"+v+".zip"),
			Length: 1 << 20, SHA256: hex.EncodeToString(sum[:]), Custom: custom}); err != nil {
			return err
		}
	}
	files, err := r.Commit(w.keys, time.Now())
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(w.store.Dir, "metadata", f.Name), f.Data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// artifact writes a signed artifact of size bytes and returns its path.
func (w *world) artifact(name string, data []byte) (string, error) {
	f := filepath.Join(w.dir, name)
	if strings.HasSuffix(name, ".tar.gz") {
		// release add unpacks archives as the agents do: a real one, with
		// data as its VERSION file.
		var err error
		if data, err = tarGz("VERSION", data); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(f, data, 0o644); err != nil {
		return "", err
	}
	chain, err := signer.LoadCertificates(w.chain)
	if err != nil {
		return "", err
	}
	sig, err := signer.SignDetached(bytes.NewReader(data), chain, w.leaf)
	if err != nil {
		return "", err
	}
	return f, os.WriteFile(f+".p7s", sig, 0o644)
}

// counter serves the repository and counts requests and bytes.
type counter struct {
	next     http.Handler
	requests atomic.Int64
	bytes    atomic.Int64
}

type countWriter struct {
	http.ResponseWriter
	c *counter
}

func (cw countWriter) Write(p []byte) (int, error) {
	n, err := cw.ResponseWriter.Write(p)
	cw.c.bytes.Add(int64(n))
	return n, err
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.requests.Add(1)
	c.next.ServeHTTP(countWriter{w, c}, r)
}

func (c *counter) reset() { c.requests.Store(0); c.bytes.Store(0) }

// serve starts an in-process counting server for the world's repository.
func (w *world) serve() (string, *counter, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	c := &counter{next: publisher.Handler(w.store, nil)}
	srv := &http.Server{Handler: c}
	go srv.Serve(l)
	return "http://" + l.Addr().String(), c, func() { srv.Close() }, nil
}

// releaseAdd publishes file as version of notification-client with the
// real bcpublish and times it.
func (w *world) releaseAdd(bin, version, file string) (measure, string, error) {
	return timed(filepath.Join(bin, "bcpublish"), "release", "add", "--repo", w.store.Dir, "--keys", filepath.Join(w.dir, "keys"),
		"--trust", "keys.example/trust", "--component", "notification-client", "--version", version, "--platform", "linux-amd64", "--file", file)
}

// serveAgent serves the world's repository and initializes an agent state
// for it; stop ends the server.
func (w *world) serveAgent(bin string) (url string, c *counter, state string, stop func(), err error) {
	url, c, stop, err = w.serve()
	if err != nil {
		return "", nil, "", nil, err
	}
	state = filepath.Join(w.dir, "agent")
	if err := w.agentInit(bin, url, state); err != nil {
		stop()
		return "", nil, "", nil, err
	}
	return url, c, state, stop, nil
}

// agentInit initializes an agent state for the world's repository.
func (w *world) agentInit(bin, url, state string) error {
	_, _, err := timed(filepath.Join(bin, "bcagent"), "--state", state, "init", "--repo-url", url,
		"--root", filepath.Join(w.store.Dir, "metadata", "1.root.json"), "--trust", "keys.example/trust",
		"--component", "notification-client", "--device-id", "BENCH-1", "--device-model", "DxH 900", "--platform", "linux-amd64")
	return err
}

func binsFor(n int) int {
	b := 2
	for float64(b) < math.Sqrt(float64(n)) {
		b *= 2
	}
	return b
}

func kib(n int64) string {
	if n < 10<<10 {
		return fmt.Sprintf("%d B", n)
	}
	if n < 10<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// tarGz is a .tar.gz holding one file.
func tarGz(name string, body []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(body); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/s3test"
	"github.com/beckmanconnect/bcupdate/publisher"
	"github.com/beckmanconnect/bcupdate/signer"
)

// s3env is a repository in a real versitygw bucket, served to agents over
// plain HTTP by `bcpublish serve` (the read-through gateway): the agents
// have no AWS credentials.
type s3env struct {
	*env
	srv   *s3test.Server
	ref   string
	s3    publisher.Store
	opts  publisher.S3Options
	agent *httptest.Server
}

func newS3Env(t *testing.T) *s3env {
	t.Helper()
	srv := s3test.Versity(t)
	srv.Env(t)
	bucket := srv.Bucket(t)
	ref := "s3://" + bucket + "/bcupdate"
	opts := publisher.S3Options{Endpoint: srv.Endpoint, PathStyle: true}
	st, err := publisher.OpenStore(context.Background(), ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t) // keys, PKI; its own directory repository is not used below
	if _, err := publisher.Init(context.Background(), st, e.keys, time.Now()); err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(publisher.Handler(st, nil))
	t.Cleanup(gw.Close)
	// Re-initialize the agent on the S3 repository's root, through the gateway.
	root, _, err := st.Read(context.Background(), "metadata/1.root.json", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	rootFile := filepath.Join(t.TempDir(), "1.root.json")
	os.WriteFile(rootFile, root, 0o644)
	e.state = filepath.Join(t.TempDir(), "agent")
	e.install = filepath.Join(e.state, "install")
	if err := client.Init(e.state, client.InitOptions{RootFile: rootFile, Config: client.Config{
		RepositoryURL: gw.URL, Components: []string{component}, Platform: platform, Channel: "stable",
		DeviceID: "INST-0042", DeviceModel: "DxH 900", TrustDir: e.world.TrustDir}}); err != nil {
		t.Fatal(err)
	}
	return &s3env{env: e, srv: srv, ref: ref, s3: st, opts: opts, agent: gw}
}

func (se *s3env) add(t *testing.T, v string) (*publisher.ReleaseResult, error) {
	data := tarball(t, v)
	f := filepath.Join(t.TempDir(), artifactName(v))
	os.WriteFile(f, data, 0o644)
	os.WriteFile(f+".p7s", sign(t, data, se.pki.Leaf), 0o644)
	return publisher.AddRelease(context.Background(), se.s3, se.keys, se.trust, publisher.ReleaseOptions{
		Component: component, Version: v, Platform: platform, File: f}, nil)
}

func TestS3EndToEnd(t *testing.T) {
	se := newS3Env(t)
	if _, err := se.add(t, "1.0.0"); err != nil {
		t.Fatal(err)
	}
	se.mustInstall("1.0.0")
	if _, err := se.add(t, "1.1.0"); err != nil {
		t.Fatal(err)
	}
	se.mustInstall("1.1.0")

	// Objects carry server-side encryption and CDN-friendly headers.
	c := se.srv.Client(t)
	bucket := strings.SplitN(se.ref, "/", 4)[2]
	head, err := c.HeadObject(context.Background(), headInput(bucket, "bcupdate/metadata/timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cc := deref(head.CacheControl); cc != "no-cache" {
		t.Errorf("timestamp.json Cache-Control %q", cc)
	}

	// Copy to a directory and back to a new bucket: both verify.
	dir := &publisher.DirStore{Dir: filepath.Join(t.TempDir(), "mirror")}
	if _, err := publisher.Copy(context.Background(), se.s3, dir); err != nil {
		t.Fatal(err)
	}
	other, _ := publisher.OpenStore(context.Background(), "s3://"+se.srv.Bucket(t)+"/copy", se.opts)
	if res, err := publisher.Copy(context.Background(), dir, other); err != nil || res.Copied == 0 {
		t.Fatalf("copy back: %+v %v", res, err)
	}
	if _, err := publisher.Status(context.Background(), other, time.Now(), 0); err != nil {
		t.Fatal(err)
	}

	// Wrong credentials: a clear error, and nothing published.
	before, _ := se.s3.List(context.Background(), "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	bad, _ := publisher.OpenStore(context.Background(), se.ref, se.opts)
	data := tarball(t, "1.2.0")
	f := filepath.Join(t.TempDir(), artifactName("1.2.0"))
	os.WriteFile(f, data, 0o644)
	os.WriteFile(f+".p7s", sign(t, data, se.pki.Leaf), 0o644)
	_, err = publisher.AddRelease(context.Background(), bad, se.keys, se.trust, publisher.ReleaseOptions{Component: component, Version: "1.2.0", Platform: platform, File: f}, nil)
	if err == nil || !strings.Contains(err.Error(), "access denied") || !strings.Contains(err.Error(), "AWS credentials") {
		t.Fatalf("wrong credentials: want a clear access-denied error, got %v", err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", se.srv.SecretKey)
	after, _ := se.s3.List(context.Background(), "")
	if strings.Join(before, ",") != strings.Join(after, ",") {
		t.Fatal("a refused publish wrote objects")
	}
}

// TestS3ConcurrentPublishers: 8 publishers add 8 releases at once, three
// times; every release whose add reported success is there afterwards, the
// repository verifies and the agent installs what the channel names.
func TestS3ConcurrentPublishers(t *testing.T) {
	se := newS3Env(t)
	ctx := context.Background()
	var mu sync.Mutex
	ok := map[string]bool{}
	lost := 0
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func(v string) {
				defer wg.Done()
				err := publisher.Retry(ctx, 30, func() error { _, err := se.add(t, v); return err })
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					ok[v] = true
				} else if errors.Is(err, publisher.ErrChanged) {
					lost++
				} else {
					t.Errorf("publish %s: %v", v, err)
				}
			}(fmt.Sprintf("1.%d.%d", round, i))
		}
		wg.Wait()
	}
	list, err := publisher.ListReleases(ctx, se.s3)
	if err != nil {
		t.Fatalf("the repository does not verify: %v", err)
	}
	present := map[string]bool{}
	for _, r := range list {
		present[r.Version] = true
	}
	for v := range ok {
		if !present[v] {
			t.Errorf("%s reported success but is missing", v)
		}
	}
	t.Logf("%d publishes succeeded, %d gave up after 30 retries", len(ok), lost)
	if len(ok) < 20 {
		t.Fatalf("only %d of 24 publishes succeeded", len(ok))
	}
	se.check()
	var stable string
	se.do(func(a *client.Agent) error {
		rep, err := a.Check(ctx)
		if err == nil && len(rep.Components) > 0 {
			stable = rep.Components[0].Available
		}
		return err
	})
	if stable == "" || !ok[stable] {
		t.Fatalf("stable names %q", stable)
	}
	se.mustInstall(stable)
}

// TestS3KilledPublish: kill the real bcpublish release add at several
// moments; the repository still verifies and the next publish succeeds.
func TestS3KilledPublish(t *testing.T) {
	se := newS3Env(t)
	bin := filepath.Join(t.TempDir(), "bcpublish")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/beckmanconnect/bcupdate/cmd/bcpublish").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	keysDir := filepath.Join(se.dir, "keys") // the env's role keys
	big := make([]byte, 24<<20)
	rand.Read(big)
	for i, delay := range []time.Duration{0, 20 * time.Millisecond, 60 * time.Millisecond, 120 * time.Millisecond, 250 * time.Millisecond, 400 * time.Millisecond, 700 * time.Millisecond, 1200 * time.Millisecond} {
		v := fmt.Sprintf("2.0.%d", i)
		f := filepath.Join(t.TempDir(), "nc-"+v+".bin")
		os.WriteFile(f, big[:len(big)-i], 0o644)
		sig, _ := signer.SignDetached(bytes.NewReader(big[:len(big)-i]), se.pki.Leaf.Chain, se.pki.Leaf.Key)
		os.WriteFile(f+".p7s", sig, 0o644)
		cmd := exec.Command(bin, "release", "add", "--repo", se.ref, "--s3-endpoint", se.srv.Endpoint, "--s3-path-style",
			"--keys", keysDir, "--trust", se.world.TrustDir, "--component", component, "--version", v, "--platform", platform, "--file", f)
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if _, err := publisher.Status(context.Background(), se.s3, time.Now(), 0); err != nil {
			t.Fatalf("after a kill at %s the repository does not verify: %v", delay, err)
		}
	}
	if _, err := se.add(t, "3.0.0"); err != nil {
		t.Fatalf("the next publish after the kills: %v", err)
	}
	se.mustInstall("3.0.0")
}

// Package kmstest starts a real KMS-compatible server for tests:
// local-kms (github.com/nsmithuk/local-kms, installed by make deps) on a
// free port with its data in a temporary directory, stopped when the test
// ends. A test that needs it is skipped with a message when local-kms is
// missing, and fails instead under BCUPDATE_REQUIRE_TOOLS=1 (as in CI).
//
// local-kms speaks the KMS JSON protocol and keeps real AES-256-GCM keys,
// encryption context included; it checks no signature, so any
// credentials do. It listens on every interface (it has no bind address
// setting); tests reach it on 127.0.0.1 only.
package kmstest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
)

// Version is the local-kms that make deps installs (a pseudo-version: the
// project tags no releases as Go modules).
const Version = "v0.0.0-20260228092603-2a5e92d09ab6"

// Region and Account are the server's.
const (
	Region  = "eu-west-1"
	Account = "111122223333"
)

var (
	findOnce sync.Once
	bin      string
	findErr  error
)

// localKMS finds local-kms on PATH or in GOPATH/bin, where make deps
// (go install) puts it.
func localKMS() (string, error) {
	findOnce.Do(func() {
		if p, err := exec.LookPath("local-kms"); err == nil {
			bin = p
			return
		}
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "local-kms")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			bin = p
			return
		}
		findErr = fmt.Errorf("local-kms is not installed (on PATH or in GOPATH/bin): run make deps (go install github.com/nsmithuk/local-kms@%s)", Version)
	})
	return bin, findErr
}

// Server is a running local-kms.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	cmd      *exec.Cmd
	done     chan struct{}
}

// Start starts local-kms; it is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	path, err := localKMS()
	if err != nil {
		testutil.MissingTool(t, err.Error())
		return nil
	}
	dir := t.TempDir()
	cmd := exec.Command(path)
	// PORT=0: the kernel picks a free port, and the server logs it.
	cmd.Env = append(os.Environ(), "PORT=0", "KMS_REGION="+Region, "KMS_ACCOUNT_ID="+Account,
		"KMS_DATA_PATH="+filepath.Join(dir, "data"), "KMS_SEED_PATH="+filepath.Join(dir, "no-seed.yaml"))
	logf, err := os.Create(filepath.Join(dir, "local-kms.log"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{cmd: cmd, done: make(chan struct{})}
	port := make(chan string, 1)
	go func() {
		// The log goes to the file; the first "started on" line says
		// the port.
		re := regexp.MustCompile(`started on [0-9.:\[\]]*:([0-9]+)`)
		sc := bufio.NewScanner(io.TeeReader(out, logf))
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				port <- m[1]
				break
			}
		}
		io.Copy(logf, out)
	}()
	go func() { cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.Stop(); logf.Close() })
	select {
	case p := <-port:
		s.Endpoint = "http://127.0.0.1:" + p
	case <-s.done:
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("local-kms exited at start:\n%s", b)
	case <-time.After(30 * time.Second):
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("local-kms did not start within 30s:\n%s", b)
	}
	return s
}

// Stop stops the server (the test's cleanup does too); later calls do
// nothing.
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Kill()
	<-s.done
}

// Env sets the AWS environment a KMS client needs for the server (any
// credentials; the server checks none) and keeps the user's AWS
// configuration out of the test.
func Env(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "bcupdate-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "bcupdate-test-secret")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", Region)
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_KMS", "")
	t.Setenv("AWS_CA_BUNDLE", "")
}

// Client is a KMS client for the server, for setting up keys.
func (s *Server) Client(t testing.TB) *kms.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion(Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("bcupdate-test", "bcupdate-test-secret", "")))
	if err != nil {
		t.Fatal(err)
	}
	return kms.NewFromConfig(cfg, func(o *kms.Options) { o.BaseEndpoint = aws.String(s.Endpoint) })
}

// Key creates a symmetric encryption key and returns its ARN.
func (s *Server) Key(t testing.TB) string {
	t.Helper()
	out, err := s.Client(t).CreateKey(context.Background(), &kms.CreateKeyInput{Description: aws.String("bcupdate test key-encryption key")})
	if err != nil {
		t.Fatalf("local-kms CreateKey: %v", err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}

// Alias names key with alias/NAME.
func (s *Server) Alias(t testing.TB, name, key string) {
	t.Helper()
	if _, err := s.Client(t).CreateAlias(context.Background(), &kms.CreateAliasInput{AliasName: aws.String("alias/" + name), TargetKeyId: aws.String(key)}); err != nil {
		t.Fatalf("local-kms CreateAlias: %v", err)
	}
}

// URI is the --kek URI of key on the server.
func (s *Server) URI(key string) string {
	return fmt.Sprintf("awskms:///%s?endpoint=%s", key, strings.TrimSuffix(s.Endpoint, "/"))
}

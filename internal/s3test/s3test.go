// Package s3test starts S3 servers for tests: gofakes3 in process (fast)
// and a real versitygw (installed with go install if missing) on a random
// 127.0.0.1 port with a temporary directory.
package s3test

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
)

// VersityVersion is the versitygw the tests run.
const VersityVersion = "v1.8.0"

// Server is a running S3-compatible server.
type Server struct {
	Endpoint  string
	AccessKey string
	SecretKey string
}

// Env sets the AWS environment for the server's credentials.
func (s *Server) Env(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// Client returns an S3 client for setup (creating buckets).
func (s *Server) Client(t *testing.T) *s3.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, "")))
	if err != nil {
		t.Fatal(err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.Endpoint)
		o.UsePathStyle = true
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
}

// Bucket creates a new bucket and returns its name.
func (s *Server) Bucket(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("bc-%d", time.Now().UnixNano())
	if _, err := s.Client(t).CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return name
}

// Fake starts an in-process gofakes3 server.
func Fake(t *testing.T) *Server {
	t.Helper()
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	return &Server{Endpoint: srv.URL, AccessKey: "fake", SecretKey: "fake-secret"}
}

var (
	installOnce sync.Once
	versityBin  string
	installErr  error
)

// versitygw finds a versitygw of VersityVersion or later on PATH or in
// GOPATH/bin (the version its build information records), else installs
// VersityVersion with go install (about two minutes, once), as make deps
// does.
func versitygw() (string, error) {
	installOnce.Do(func() {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		gobin := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "versitygw")
		var found []string
		candidates := []string{gobin}
		if p, err := exec.LookPath("versitygw"); err == nil && p != gobin {
			candidates = []string{p, gobin}
		}
		for _, p := range candidates {
			if _, err := os.Stat(p); err != nil {
				continue
			}
			v := "an unknown version"
			if info, err := buildinfo.ReadFile(p); err == nil && info.Main.Version != "" {
				v = info.Main.Version
				if strings.HasPrefix(v, "v") && testutil.CompareVersions(v, VersityVersion) >= 0 {
					versityBin = p
					return
				}
			}
			found = append(found, fmt.Sprintf("%s is %s", p, v))
		}
		cmd := exec.Command("go", "install", "github.com/versity/versitygw/cmd/versitygw@"+VersityVersion)
		cmd.Env = append(os.Environ(), "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			have := "none on PATH or in GOPATH/bin"
			if len(found) > 0 {
				have = strings.Join(found, ", ")
			}
			installErr = fmt.Errorf("versitygw %s or later is not installed (%s) and go install failed (%v): run make deps\n%s",
				VersityVersion, have, err, bytes.TrimSpace(out))
			return
		}
		versityBin = gobin
	})
	return versityBin, installErr
}

// Versity starts a real versitygw (posix backend) on a random loopback
// port; it is stopped when the test ends.
func Versity(t *testing.T) *Server {
	t.Helper()
	bin, err := versitygw()
	if err != nil {
		testutil.MissingTool(t, err.Error())
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	s := &Server{Endpoint: "http://" + addr, AccessKey: "bcupdate-test", SecretKey: "bcupdate-test-secret"}
	cmd := exec.Command(bin, "--port", addr, "posix", dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	logf, _ := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(logf.Name())
	t.Fatalf("versitygw did not start:\n%s", b)
	return nil
}

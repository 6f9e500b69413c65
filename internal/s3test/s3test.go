// Package s3test starts S3 servers for tests: gofakes3 in process (fast)
// and a real versitygw (installed with go install if missing) on a random
// 127.0.0.1 port with a temporary directory.
package s3test

import (
	"context"
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

// versitygw finds the versitygw binary, installing it with go install if
// it is not on PATH or in GOPATH/bin (about two minutes, once).
func versitygw() (string, error) {
	installOnce.Do(func() {
		if p, err := exec.LookPath("versitygw"); err == nil {
			versityBin = p
			return
		}
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			versityBin = p
			return
		}
		cmd := exec.Command("go", "install", "github.com/versity/versitygw/cmd/versitygw@"+VersityVersion)
		cmd.Env = append(os.Environ(), "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			installErr = fmt.Errorf("go install versitygw: %v\n%s", err, out)
			return
		}
		versityBin = p
	})
	return versityBin, installErr
}

// Versity starts a real versitygw (posix backend) on a random loopback
// port; it is stopped when the test ends.
func Versity(t *testing.T) *Server {
	t.Helper()
	bin, err := versitygw()
	if err != nil {
		t.Fatal(err)
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

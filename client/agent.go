package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

// Limits on metadata the agent downloads (go-tuf's own defaults are
// larger than any repository of ours needs).
const (
	maxRootSize      = 512 << 10
	maxTimestampSize = 16 << 10
	maxSnapshotSize  = 2 << 20
	maxTargetsSize   = 16 << 20
)

// Agent is an open state directory. One Agent at a time holds its lock.
type Agent struct {
	dir        string
	cfg        *Config
	trust      *signer.Trust
	log        *slog.Logger
	lock       *os.File
	http       *http.Client
	stateBytes []byte
	progress   func(component string, done, total int64)
	selfPath   string
	restart    bool
}

// SetProgress sets a callback for download progress (a progress bar at a
// terminal; the service leaves it unset).
func (a *Agent) SetProgress(fn func(component string, done, total int64)) { a.progress = fn }

// InitOptions are the inputs of `bcagent init`.
type InitOptions struct {
	Config
	RootFile string // the repository's trusted root.json
	// AgentVersion is the running agent's version: if the agent manages
	// itself (component "bcagent"), it starts as installed.
	AgentVersion string
}

// Init creates a state directory (0700) with config.json and the trusted
// root in tuf/root.json. It refuses a directory that is already set up.
func Init(stateDir string, o InitOptions) error {
	if stateDir == "" {
		return usagef("--state is required")
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return err
	}
	c := o.Config
	c.RepositoryURL = strings.TrimRight(c.RepositoryURL, "/")
	if c.Platform == "" {
		c.Platform = DefaultPlatform()
	}
	if c.Channel == "" {
		c.Channel = "stable"
	}
	if c.TrustDir != "" {
		if c.TrustDir, err = filepath.Abs(c.TrustDir); err != nil {
			return err
		}
	}
	if c.InstallRoot == "" {
		c.InstallRoot = filepath.Join(abs, "install")
	} else if c.InstallRoot, err = filepath.Abs(c.InstallRoot); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	// Refuse a trust or state directory others could change before
	// writing anything; the state directory may not exist yet.
	if err := c.checkPermissions(abs); err != nil {
		return err
	}
	if _, err := signer.LoadTrust(c.TrustDir); err != nil {
		return usagef("--trust: %v", err)
	}
	if o.RootFile == "" {
		return usagef("--root is required (the repository's trusted root.json)")
	}
	rootBytes, err := readFileLimited(o.RootFile, maxRootSize)
	if err != nil {
		return usagef("--root: %v", err)
	}
	root, err := metadata.Root().FromBytes(rootBytes)
	if err != nil {
		return usagef("--root %s: not a TUF root: %v", o.RootFile, err)
	}
	if err := root.VerifyDelegate(repo.RoleRoot, root); err != nil {
		return usagef("--root %s: not signed by its own root keys: %v", o.RootFile, err)
	}
	if _, err := os.Stat(filepath.Join(abs, "config.json")); err == nil {
		return usagef("--state %s is already initialized (config.json exists)", abs)
	}
	for _, d := range []string{abs, filepath.Join(abs, "tuf"), filepath.Join(abs, "staging")} {
		if err := ensureDir(d); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return err
		}
	}
	if err := restrictStateDir(abs); err != nil {
		return err
	}
	if err := os.MkdirAll(c.InstallRoot, 0o755); err != nil {
		return fmt.Errorf("install root: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(abs, "tuf", "root.json"), rootBytes, 0o600); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(abs, "config.json"), &c, 0o600); err != nil {
		return err
	}
	if _, err := repo.ParseVersion(o.AgentVersion); err == nil && slices.Contains(c.Components, SelfComponent) {
		st := State{Components: map[string]*ComponentState{SelfComponent: {Installed: o.AgentVersion, State: StateUpToDate}}}
		if err := writeJSON(filepath.Join(abs, "state.json"), &st, 0o600); err != nil {
			return err
		}
	}
	return c.checkPermissions(abs)
}

// SelfComponent is the component name of the agent itself.
const SelfComponent = "bcagent"

// Open opens an initialized state directory and takes its lock.
func Open(stateDir string, log *slog.Logger) (*Agent, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, err
	}
	cfg, err := loadConfig(abs)
	if err != nil {
		return nil, err
	}
	if err := cfg.checkPermissions(abs); err != nil {
		return nil, err
	}
	lock, err := lockFile(filepath.Join(abs, "agent.lock"))
	if err != nil {
		return nil, err
	}
	trust, err := signer.LoadTrust(cfg.TrustDir)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("config trust_dir: %w", err)
	}
	hc, err := newHTTPClient(cfg.RepositoryURL, cfg.AllowedHosts)
	if err != nil {
		lock.Close()
		return nil, err
	}
	a := &Agent{dir: abs, cfg: cfg, trust: trust, log: log, lock: lock, http: hc}
	if err := a.recover(); err != nil {
		lock.Close()
		return nil, fmt.Errorf("recovering an interrupted apply: %w", err)
	}
	// What is active is derived from the verified consent log and signed
	// metadata at every start, never taken from features.json.
	if err := a.reconcile(); err != nil {
		a.log.Error("reconciling active features", "err", err)
	}
	return a, nil
}

// Close releases the lock.
func (a *Agent) Close() error { return a.lock.Close() }

// Config returns the agent's configuration.
func (a *Agent) Config() Config { return *a.cfg }

// SetHTTPClient replaces the agent's HTTP client (tests with a TLS server).
// The allow list and TLS floor are the caller's responsibility.
func (a *Agent) SetHTTPClient(c *http.Client) { a.http = c }

// session is one verified view of the repository: a fresh go-tuf Updater
// (it does a single Refresh and is not safe for concurrent use).
type session struct {
	up       *updater.Updater
	f        *httpFetcher
	url      string
	cacheDir string // small targets by sha256
}

func (a *Agent) refresh(ctx context.Context) (*session, error) {
	rootBytes, err := readFileLimited(filepath.Join(a.dir, "tuf", "root.json"), maxRootSize)
	if err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	base := a.cfg.RepositoryURL
	cfg, err := config.New(base+"/metadata", rootBytes)
	if err != nil {
		return nil, err
	}
	f := &httpFetcher{ctx: ctx, client: a.http}
	named := &namingFetcher{Fetcher: f}
	cfg.Fetcher = named
	cfg.RemoteTargetsURL = base + "/targets"
	cfg.LocalMetadataDir = filepath.Join(a.dir, "tuf")
	cfg.LocalTargetsDir = filepath.Join(a.dir, "tuf", "targets")
	cfg.PrefixTargetsWithHash = true
	cfg.RootMaxLength = maxRootSize
	cfg.TimestampMaxLength = maxTimestampSize
	cfg.SnapshotMaxLength = maxSnapshotSize
	cfg.TargetsMaxLength = maxTargetsSize
	up, err := updater.New(cfg)
	if err != nil {
		return nil, classifyTUF(err)
	}
	if err := up.Refresh(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("refresh %s: %w", base, named.blame(classifyTUF(err)))
	}
	// go-tuf writes its cache without fsync; the cached versions are the
	// rollback protection, so make them durable.
	syncCache(cfg.LocalMetadataDir)
	return &session{up: up, f: f, url: base, cacheDir: filepath.Join(a.dir, "tuf", "cache")}, nil
}

// errTargetNotFound: verified metadata has no such target.
var errTargetNotFound = errors.New("target not found in signed metadata")

// lookup finds a target in the verified metadata.
func (s *session) lookup(p string) (*metadata.TargetFiles, error) {
	if err := repo.ValidateTargetPath(p); err != nil {
		return nil, verifyf("%v", err)
	}
	top := s.up.GetTrustedMetadataSet().Targets[metadata.TARGETS]
	if tf, ok := top.Signed.Targets[p]; ok {
		tf.Path = p
		return tf, nil
	}
	if top.Signed.Delegations == nil {
		return nil, fmt.Errorf("%s: %w", p, errTargetNotFound)
	}
	// Hashed bins: go-tuf downloads (and verifies) only the bin p lives in.
	tf, err := s.up.GetTargetInfo(p)
	if err != nil {
		if walkFailed(err) {
			return nil, classifyTUF(err)
		}
		return nil, fmt.Errorf("%s: %w", p, errTargetNotFound)
	}
	return tf, nil
}

// walkFailed tells a failed delegation walk from a target that is not
// there: go-tuf reports the latter with an untyped error, and every real
// failure (verification, download, network) with a typed one.
func walkFailed(err error) bool {
	var (
		repoErr *metadata.ErrRepository
		dl      *metadata.ErrDownload
		dlHTTP  *metadata.ErrDownloadHTTP
		dlLen   *metadata.ErrDownloadLengthMismatch
		val     *metadata.ErrValue
		typ     *metadata.ErrType
		rt      *metadata.ErrRuntime
		uerr    *neturl.Error
	)
	return errors.As(err, &repoErr) || errors.As(err, &dl) || errors.As(err, &dlHTTP) || errors.As(err, &dlLen) ||
		errors.As(err, &val) || errors.As(err, &typ) || errors.As(err, &rt) || errors.As(err, &uerr) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func syncCache(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") {
			if f, err := os.Open(filepath.Join(dir, e.Name())); err == nil {
				f.Sync()
				f.Close()
			}
		}
	}
	atomicfile.SyncDir(dir)
}

// targetURL is where a target's bytes live (consistent snapshots).
func (s *session) targetURL(tf *metadata.TargetFiles, sha string) string {
	return s.url + "/targets/" + repo.ConsistentName(tf.Path, sha)
}

// fetchSmall downloads a small target into memory and checks it against
// its TUF length and hashes.
func (s *session) fetchSmall(ctx context.Context, path string, limit int64) ([]byte, *metadata.TargetFiles, error) {
	tf, err := s.lookup(path)
	if err != nil {
		return nil, nil, err
	}
	if tf.Length > limit {
		return nil, nil, verifyf("%s: signed length %d is larger than the limit %d", path, tf.Length, limit)
	}
	sha, err := targetSHA256(tf)
	if err != nil {
		return nil, nil, err
	}
	// Small targets (channel pointers, the device policy, CRLs) are cached
	// by their signed sha256: a check that finds nothing new downloads
	// only the root probe and timestamp.json.
	cached := filepath.Join(s.cacheDir, sha)
	if data, err := readFileLimited(cached, limit); err == nil && tf.VerifyLengthHashes(data) == nil {
		return data, tf, nil
	}
	data, err := s.f.DownloadFile(s.targetURL(tf, sha), tf.Length, 0)
	if err != nil {
		return nil, nil, classifyTUF(fmt.Errorf("download %s: %w", path, err))
	}
	if err := tf.VerifyLengthHashes(data); err != nil {
		return nil, nil, verifyf("%s does not match its signed length and sha256 (this may be an attack): %v", path, err)
	}
	if os.MkdirAll(s.cacheDir, 0o700) == nil {
		atomicfile.WriteFile(cached, data, 0o600)
	}
	return data, tf, nil
}

// download streams a target into f, resuming from what f already holds
// (an earlier, interrupted download of the same target) with an HTTP Range
// request, and checks the full length and sha256 as it goes: the bytes
// already on disk are hashed first. It never holds the target in memory and
// returns the sha256 it computed, for the code signature.
func (s *session) download(ctx context.Context, tf *metadata.TargetFiles, f *os.File, rate int64, progress func(done, total int64)) ([]byte, error) {
	sha, err := targetSHA256(tf)
	if err != nil {
		return nil, err
	}
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	if off > tf.Length {
		// Longer than the signed length: start again. Truncate only then:
		// on ext4 a truncate to zero marks the file for a flush at close
		// (auto_da_alloc), which would make staging wait for the disk.
		if err := f.Truncate(0); err != nil {
			return nil, err
		}
		off = 0
	}
	if off > 0 {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		if _, err := io.CopyN(h, f, off); err != nil {
			return nil, fmt.Errorf("re-reading the partial download: %w", err)
		}
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	url := s.targetURL(tf, sha)
	pipe := newPipeline(f, h)
	defer pipe.Close()
	var last error
	for attempt := 0; attempt < maxAttempts && off < tf.Length; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(retryBase << (attempt - 1)):
			}
		}
		n, restarted, err := s.f.fetchRange(ctx, url, off, tf.Length, &meteredWriter{w: pipe, rate: rate, start: time.Now(), base: off, total: tf.Length, progress: progress}, func() error {
			h.Reset()
			if err := f.Truncate(0); err != nil {
				return err
			}
			_, err := f.Seek(0, io.SeekStart)
			return err
		})
		if ferr := pipe.Flush(); ferr != nil {
			// A disk error is not retried: the next stage resumes from
			// what the file really holds.
			return nil, fmt.Errorf("write %s: %w", f.Name(), ferr)
		}
		if restarted {
			off = 0
		}
		off += n
		if err == nil {
			last = nil
			break
		}
		last = err
		var p permanent
		if errors.As(err, &p) {
			last = p.error
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if last != nil {
		return nil, classifyTUF(fmt.Errorf("download %s (%d of %d bytes so far, kept to resume): %w", tf.Path, off, tf.Length, last))
	}
	if off != tf.Length {
		return nil, verifyf("%s: got %d bytes, signed length is %d (this may be an attack)", tf.Path, off, tf.Length)
	}
	sum := h.Sum(nil)
	if got := hex.EncodeToString(sum); got != sha {
		return nil, verifyf("%s: sha256 %s does not match the signed %s (this may be an attack)", tf.Path, got, sha)
	}
	return sum, nil
}

func targetSHA256(tf *metadata.TargetFiles) (string, error) {
	h, ok := tf.Hashes["sha256"]
	if !ok || len(h) != 32 {
		return "", verifyf("target %s has no sha256 hash", tf.Path)
	}
	return fmt.Sprintf("%x", []byte(h)), nil
}

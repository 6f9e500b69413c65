package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

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
	progressMu sync.Mutex
	selfPath   string
	restart    bool
	act        *activity     // <state>/activity.json, what this agent is doing
	batch      *batch        // while set, audit events and notifications wait for flush (batch.go)
	bundle     *bundleSource // while set, the repository is an offline bundle (bundle_import.go)
	events     EventSink     // notifications and audit entries also go here (eventlog.go); nil: nowhere
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
	if _, err := os.Stat(filepath.Join(abs, "config.json")); err == nil {
		return usagef("--state %s is already initialized (config.json exists): change its settings with bcagent config set KEY VALUE (bcagent config show lists them)", abs)
	}
	c := o.Config
	c.RepositoryURL = strings.TrimRight(c.RepositoryURL, "/")
	for i, m := range c.RepositoryMirrors {
		c.RepositoryMirrors[i] = strings.TrimRight(m, "/")
	}
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
		return usagef("--root %s: %s; give the repository's root metadata, metadata/1.root.json as bcpublish init wrote it", o.RootFile, notARoot(rootBytes))
	}
	if err := root.VerifyDelegate(repo.RoleRoot, root); err != nil {
		return usagef("--root %s: not signed by its own root keys: %v", o.RootFile, err)
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

// OpenOptions are what the program opening the agent tells it; a nil
// *OpenOptions (tests) means the zero value.
type OpenOptions struct {
	// Log receives the agent's log (nil: discarded).
	Log *slog.Logger
	// UserAgent is sent with every request, e.g. "bcagent/1.4.0"
	// (empty: "bcagent/dev").
	UserAgent string
	// Events receives every notification raised and audit entry
	// appended (the Windows Event Log, eventlog.go); nil: the sink Log's
	// handler carries (EventSinkCarrier), if any.
	Events EventSink
}

// Open opens an initialized state directory and takes its lock.
func Open(stateDir string, opts *OpenOptions) (*Agent, error) {
	var o OpenOptions
	if opts != nil {
		o = *opts
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, cfg, err := openConfig(stateDir)
	if err != nil {
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
	hc, err := newHTTPClient(cfg.RepositoryURL, append(slices.Clone(cfg.AllowedHosts), cfg.mirrorHosts()...))
	if err != nil {
		lock.Close()
		return nil, err
	}
	if o.UserAgent != "" {
		hc.Transport.(*guardedTransport).userAgent = o.UserAgent
	}
	a := &Agent{dir: abs, cfg: cfg, trust: trust, log: log, lock: lock, http: hc, events: eventSinkOf(o)}
	a.SetMinRate(cfg.MinRateRule())
	a.startActivity()
	if err := a.recover(); err != nil {
		a.Close()
		return nil, fmt.Errorf("recovering an interrupted apply: %w", err)
	}
	if err := a.recoverParked(); err != nil {
		a.log.Error("recovering an interrupted import", "err", err)
	}
	// What is active is derived from the verified consent log and signed
	// metadata at every start, never taken from features.json.
	if err := a.reconcile(); err != nil {
		a.log.Error("reconciling active features", "err", err)
	}
	return a, nil
}

// Close releases the lock (and first removes activity.json).
func (a *Agent) Close() error {
	a.stopActivity()
	return a.lock.Close()
}

// Config returns the agent's configuration.
func (a *Agent) Config() Config { return *a.cfg }

// refresh opens a session on the agent's repository: go-tuf's top-level
// refresh over the metadata cache in <state>/tuf (tufspec.go), from the
// first repository mirror that answers.
func (a *Agent) refresh(ctx context.Context) (*session, error) {
	if a.bundle != nil {
		return a.bundle.session(ctx, a)
	}
	// The first of the repository's mirrors that answers (mirror.go).
	return a.refreshMirrors(ctx)
}

// lookup finds a target in the verified metadata: the top-level targets,
// then the delegation graph (findTarget, tufspec.go). Any name the TUF
// specification allows is looked up as it is; names are validated where
// they become local file paths or installed artifacts (stage, saveCRLs,
// the channel pointer's release path), not here.
func (s *session) lookup(p string) (*metadata.TargetFiles, error) {
	tf, err := s.findTarget(p)
	if err != nil {
		if errors.Is(err, errTargetNotFound) {
			return nil, err
		}
		return nil, classifyTUF(err)
	}
	return tf, nil
}

// syncCache makes the top-level metadata go-tuf's refresh cached durable
// (go-tuf writes it without fsync): the versions in it are the rollback
// protection. Delegated roles are written durably when they are fetched
// (tufspec.go). An error is the refresh's: what was verified may not
// survive a power cut.
func syncCache(dir string) error {
	for _, name := range []string{"root.json", "timestamp.json", "snapshot.json", "targets.json"} {
		// Read-write: Windows flushes only handles opened for writing.
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue // not fetched yet (a refresh that stopped early)
		}
		if err != nil {
			return fmt.Errorf("metadata cache: %w", err)
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("metadata cache: fsync %s: %w", name, err)
		}
	}
	return atomicfile.SyncDir(dir)
}

// fetchSmall downloads a small target into memory and checks it against
// its TUF length and every hash it lists.
func (s *session) fetchSmall(ctx context.Context, path string, limit int64) ([]byte, *metadata.TargetFiles, error) {
	tf, err := s.lookup(path)
	if err != nil {
		return nil, nil, err
	}
	if tf.Length > limit {
		return nil, nil, verifyf("%s: signed length %d is larger than the limit %d", path, tf.Length, limit)
	}
	key, err := targetKey(tf)
	if err != nil {
		return nil, nil, err
	}
	// Small targets (channel pointers, the device policy, CRLs) are cached
	// by their signed hash: a check that finds nothing new downloads only
	// the root probe and timestamp.json.
	var cached string
	if s.cacheDir != "" {
		cached = filepath.Join(s.cacheDir, key)
		if data, err := readFileLimited(cached, limit); err == nil && verifyTargetBytes(tf, data) == nil {
			return data, tf, nil
		}
	}
	data, err := s.fetchTargetBytes(ctx, tf) // from any mirror (mirror.go)
	if err != nil {
		return nil, nil, err
	}
	if cached != "" && os.MkdirAll(s.cacheDir, 0o700) == nil {
		// No fsync: a cached copy is checked against its signed hash on
		// every read, so one lost in a power cut is only downloaded again.
		replaceFile(s.cacheDir, key, data)
	}
	return data, tf, nil
}

// downloadFrom streams a target from url into f, resuming from what f already holds
// (an earlier, interrupted download of the same target) with an HTTP Range
// request, and checks the full length and every hash the target lists
// (sha256, sha512) as it goes: the bytes already on disk are hashed first.
// It never holds the target in memory and returns the sha256 it computed,
// for the code signature.
func (s *session) downloadFrom(ctx context.Context, url string, tf *metadata.TargetFiles, f *os.File, rate int64, progress func(done, total int64)) ([]byte, error) {
	h, err := newTargetHasher(tf)
	if err != nil {
		return nil, err
	}
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}
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
	if err := h.verify(); err != nil {
		return nil, err
	}
	return h.Sum256(), nil
}

// targetSHA256 is a release artifact's sha256: the repository format
// (DESIGN.md) gives every artifact one, and the agent names releases,
// staged files and deltas by it. The TUF layer itself needs none
// (targetKey, targetHasher).
func targetSHA256(tf *metadata.TargetFiles) (string, error) {
	h, ok := tf.Hashes["sha256"]
	if !ok || len(h) != 32 {
		return "", verifyf("target %s has no sha256 hash", tf.Path)
	}
	return fmt.Sprintf("%x", []byte(h)), nil
}

// notARoot says what a file given as --root holds instead of a TUF root.
func notARoot(data []byte) string {
	var probe struct {
		Signed struct {
			Type string `json:"_type"`
		} `json:"signed"`
	}
	switch {
	case bytes.Contains(data, []byte("-----BEGIN ")):
		return "it is a PEM file (a key or a certificate), not TUF metadata"
	case json.Unmarshal(data, &probe) != nil:
		return "it is not TUF metadata (not JSON)"
	case probe.Signed.Type != "" && probe.Signed.Type != "root":
		return fmt.Sprintf("it is %s metadata, not the root", probe.Signed.Type)
	}
	return "it is not valid TUF root metadata"
}

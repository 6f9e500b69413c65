package client

// Repository mirrors (issue 18; TUF's mirrors): config.json may list
// several repository URLs, repository_url first and then
// repository_mirrors, and the agent fails over between them in that
// order. Every one serves the same publisher-signed repository, so any of
// them will do and none is trusted: the metadata a mirror serves is
// verified against the PC's trusted root and cached versions exactly as
// from the one repository, targets against their signed length and hashes
// and then their code signature.
//
// A check opens its session (go-tuf's refresh) on the first mirror that
// answers with metadata that verifies. A mirror that fails at the
// connection level, answers 5xx (or any status but the 404 that means
// "no such version yet", which go-tuf treats as an answer), or serves bytes
// that do not verify is skipped for the rest of that check or stage, and
// the next one is tried: for the refresh, for each target and for each
// hashed bin. Which mirror was used and which failed, and why, is kept in
// <state>/mirrors.json for `bcagent status`.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// mirrorsFile is <state>/mirrors.json: the mirror the last check or stage
// used and those it skipped (MirrorReport). Not fsynced: it only informs.
const mirrorsFile = "mirrors.json"

// MirrorReport is which repository mirror the last check or stage used
// (Used, "" when none could be used) and which it skipped, and why.
type MirrorReport struct {
	At     time.Time       `json:"at"`
	Used   string          `json:"used,omitempty"`
	Failed []MirrorFailure `json:"failed,omitempty"`
}

// MirrorFailure is one mirror skipped, how (unreachable, verification,
// error) and why.
type MirrorFailure struct {
	URL   string       `json:"url"`
	Kind  CheckFailure `json:"kind"`
	Error string       `json:"error"`
}

// mirrorSet is the mirrors of one check or stage: the configured order,
// those skipped, and the one in use.
type mirrorSet struct {
	mu     sync.Mutex
	urls   []string
	report MirrorReport
	save   func(MirrorReport)
}

// RepositoryURLs is the repository and its mirrors, in the order the
// agent tries them: repository_url, then repository_mirrors.
func (c *Config) RepositoryURLs() []string {
	return append([]string{c.RepositoryURL}, c.RepositoryMirrors...)
}

// mirrorHosts are the hosts of repository_mirrors: the agent may connect
// to them as to the repository's host.
func (c *Config) mirrorHosts() []string {
	var out []string
	for _, m := range c.RepositoryMirrors {
		out = append(out, hostOf(m))
	}
	return out
}

// failover says whether an error of one mirror sends the agent to the
// next: a network failure or HTTP error, or bytes that do not verify.
func failover(err error) bool {
	return isNetwork(err) || errors.Is(err, ErrVerification)
}

// failureOf describes a mirror's failure in a few words.
func failureOf(url string, err error) MirrorFailure {
	f := MirrorFailure{URL: url, Kind: checkFailure(err), Error: err.Error()}
	if f.Kind == CheckUnreachable {
		f.Error = networkCause(err)
	}
	return f
}

func (m *mirrorSet) fail(url string, err error) {
	if m == nil {
		return
	}
	m.mu.Lock()
	if !slices.ContainsFunc(m.report.Failed, func(f MirrorFailure) bool { return f.URL == url }) {
		m.report.Failed = append(m.report.Failed, failureOf(url, err))
	}
	if m.report.Used == url {
		m.report.Used = ""
	}
	r := m.snapshot()
	m.mu.Unlock()
	m.save(r)
}

func (m *mirrorSet) use(url string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	changed := m.report.Used != url
	m.report.Used = url
	r := m.snapshot()
	m.mu.Unlock()
	if changed {
		m.save(r)
	}
}

// snapshot copies the report; called with mu held.
func (m *mirrorSet) snapshot() MirrorReport {
	r := m.report
	r.At = time.Now().UTC().Truncate(time.Second)
	r.Failed = slices.Clone(r.Failed)
	return r
}

// order is the mirrors to try for one download: the one in use first,
// then the others in configured order, none that failed.
func (m *mirrorSet) order(current string) []string {
	if m == nil {
		return []string{current}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	failed := func(u string) bool {
		return slices.ContainsFunc(m.report.Failed, func(f MirrorFailure) bool { return f.URL == u })
	}
	var out []string
	if !failed(current) {
		out = append(out, current)
	}
	for _, u := range m.urls {
		if u != current && !failed(u) {
			out = append(out, u)
		}
	}
	return out
}

// saveMirrors writes mirrors.json; a failure is only logged.
func (a *Agent) saveMirrors(r MirrorReport) {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return
	}
	root, err := a.openRoot()
	if err == nil {
		defer root.Close()
		err = writeFileRoot(root, mirrorsFile, append(data, '\n'), 0o600)
	}
	if err != nil {
		a.log.Error("recording the mirrors used", "err", err)
	}
}

// lastMirrors reads mirrors.json (nil: none recorded, or unreadable).
func (a *Agent) lastMirrors() *MirrorReport {
	root, err := a.openRoot()
	if err != nil {
		return nil
	}
	defer root.Close()
	data, err := readFileRoot(root, mirrorsFile, 1<<20)
	if err != nil {
		return nil
	}
	var r MirrorReport
	if json.Unmarshal(data, &r) != nil {
		return nil
	}
	return &r
}

// mirrorsError is the failure of every mirror, each named with its cause.
type mirrorsError struct {
	failures []MirrorFailure
	errs     []error
}

func (e *mirrorsError) Error() string {
	parts := make([]string, len(e.failures))
	for i, f := range e.failures {
		parts[i] = fmt.Sprintf("%s: %s", f.URL, f.Error)
	}
	return fmt.Sprintf("no repository mirror could be used (%d tried, in order): %s", len(e.failures), strings.Join(parts, "; "))
}

func (e *mirrorsError) Unwrap() []error { return e.errs }

// refreshMirrors opens a session on the first mirror that answers with
// metadata that verifies (refresh, agent.go).
func (a *Agent) refreshMirrors(ctx context.Context) (*session, error) {
	ms := &mirrorSet{urls: a.cfg.RepositoryURLs(), save: a.saveMirrors}
	if len(ms.urls) == 1 {
		ms.save = func(MirrorReport) {} // one repository: last-check.json says it all
	}
	var errs []error
	for _, base := range ms.urls {
		// Read afresh for each: a refresh that failed half-way may have
		// moved the trusted root on (to a verified newer one).
		rootBytes, err := readFileLimited(filepath.Join(a.dir, "tuf", "root.json"), maxRootSize)
		if err != nil {
			return nil, fmt.Errorf("trusted root: %w", err)
		}
		s, err := openSession(ctx, sessionConfig{
			root:        rootBytes,
			metadataDir: filepath.Join(a.dir, "tuf"),
			metadataURL: base + "/metadata",
			targetsURL:  base + "/targets",
			client:      a.http,
			name:        base,
		})
		if err == nil {
			s.cacheDir = filepath.Join(a.dir, "tuf", "cache")
			s.mirrors, s.base = ms, base
			ms.use(base)
			return s, nil
		}
		if ctx.Err() != nil || !failover(err) {
			return nil, err
		}
		a.log.Warn("repository mirror skipped", "url", base, "err", err)
		ms.fail(base, err)
		errs = append(errs, err)
	}
	if len(ms.urls) == 1 {
		return nil, errs[0]
	}
	all := &mirrorsError{failures: ms.snapshot().Failed, errs: errs}
	if !errors.Is(all, ErrVerification) {
		return nil, &unreachableError{url: strings.Join(ms.urls, ", "), cause: "every mirror failed", err: all}
	}
	return nil, all
}

// otherTargetsURL is a target's URL on the mirror base (the session's
// own, s.base, is also the only one of a session without mirrors).
func (s *session) otherTargetsURL(base string, tf *metadata.TargetFiles) (string, error) {
	u, err := s.targetURL(tf)
	if err != nil || base == s.base {
		return u, err
	}
	return base + "/targets" + strings.TrimPrefix(u, s.targetsURL), nil
}

// fetchTargetBytes downloads a small target and checks it against its
// signed length and hashes, from the mirror in use or the next one.
func (s *session) fetchTargetBytes(ctx context.Context, tf *metadata.TargetFiles) ([]byte, error) {
	var last error
	for _, base := range s.mirrors.order(s.base) {
		url, err := s.otherTargetsURL(base, tf)
		if err != nil {
			return nil, err
		}
		data, err := s.f.DownloadFile(url, tf.Length, 0)
		if err != nil {
			err = classifyTUF(fmt.Errorf("download %s: %w", tf.Path, err))
		} else if err = verifyTargetBytes(tf, data); err == nil {
			s.mirrors.use(base)
			return data, nil
		}
		if ctx.Err() != nil || !failover(err) || s.mirrors == nil {
			return nil, err
		}
		s.mirrors.fail(base, err)
		last = err
	}
	if last == nil {
		last = fmt.Errorf("download %s: every repository mirror has failed in this check", tf.Path)
	}
	return nil, last
}

// download streams a target into f (downloadFrom), from the mirror in use
// or, when it fails, the next one. Bytes are only ever built on from the
// mirror that sent them: a download cut off on one mirror is resumed on
// that mirror (downloadFrom's retries), and starts again from zero on the
// next, since a hostile mirror could send wrong bytes and then cut the
// connection to have the honest mirror's resumed download fail its hashes
// and be blamed for it. Bytes f already held (an earlier stage's, from a
// mirror not known) are resumed, but a resumed download that does not
// verify is fetched once more whole from the same mirror before that
// mirror is blamed.
func (s *session) download(ctx context.Context, tf *metadata.TargetFiles, f *os.File, rate int64, progress func(done, total int64)) ([]byte, error) {
	var last error
	for i, base := range s.mirrors.order(s.base) {
		url, err := s.otherTargetsURL(base, tf)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			// What f holds came from a mirror that just failed.
			if err := truncateAll(f); err != nil {
				return nil, err
			}
		}
		kept, err := partialSize(f, tf)
		if err != nil {
			return nil, err
		}
		sum, err := s.downloadFrom(ctx, url, tf, f, rate, progress)
		if err != nil && kept > 0 && errors.Is(err, ErrVerification) && ctx.Err() == nil {
			if terr := truncateAll(f); terr != nil {
				return nil, terr
			}
			sum, err = s.downloadFrom(ctx, url, tf, f, rate, progress)
		}
		if err == nil {
			s.mirrors.use(base)
			return sum, nil
		}
		if ctx.Err() != nil || !failover(err) || s.mirrors == nil || len(s.mirrors.urls) == 1 {
			return nil, err
		}
		s.mirrors.fail(base, err)
		last = err
	}
	if last == nil {
		last = fmt.Errorf("download %s: every repository mirror has failed in this stage", tf.Path)
	}
	return nil, last
}

// partialSize is how many bytes of f downloadFrom will resume from (0:
// none, or more than the signed length, which it starts again).
func partialSize(f *os.File, tf *metadata.TargetFiles) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Size() > tf.Length {
		return 0, nil
	}
	return fi.Size(), nil
}

// truncateAll empties f, if it holds anything (a truncate to zero can
// make ext4 flush the file at close: not done when there is no need).
func truncateAll(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		return nil
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}

// fetchRoleFrom downloads a delegated role (a hashed bin) and verifies it,
// from the mirror in use or the next one. Called with s.mu held.
func (s *session) fetchRoleFrom(name, delegator, remote string, length int64) (*metadata.Metadata[metadata.TargetsType], []byte, error) {
	var last error
	for _, base := range s.mirrors.order(s.base) {
		u := remote
		if base != s.base {
			u = base + "/metadata" + strings.TrimPrefix(remote, s.metadataURL)
		}
		data, err := s.fetchRole(u, length)
		if err != nil {
			err = classifyTUF(fmt.Errorf("metadata/%s: %w", roleFileName(name), err))
		} else {
			if role, ok := s.loaded(name, delegator); ok {
				// Another walk loaded it while this one waited.
				r, err := role()
				return r, nil, err
			}
			role, verr := s.trusted.UpdateDelegatedTargets(data, name, delegator)
			if verr == nil {
				s.mirrors.use(base)
				return role, data, nil
			}
			// UpdateDelegatedTargets does no I/O: whatever it refuses is
			// the repository's data, including what does not parse.
			err = classifyTUF(fmt.Errorf("metadata/%s: %w", roleFileName(name), verr))
			if !errors.Is(err, ErrVerification) {
				err = fmt.Errorf("%w: %w; this may be an attack", ErrVerification, err)
			}
		}
		if !failover(err) || s.mirrors == nil || len(s.mirrors.urls) == 1 {
			return nil, nil, err
		}
		s.mirrors.fail(base, err)
		last = err
	}
	if last == nil {
		last = fmt.Errorf("metadata/%s: every repository mirror has failed in this check", roleFileName(name))
	}
	return nil, nil, last
}

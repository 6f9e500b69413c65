package client

import (
	"context"
	"errors"
	"fmt"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
)

// TUF is the agent's TUF layer on its own, over a plain metadata directory
// instead of a state directory: the same refresh, delegation walk and
// streaming, hash-checked download the agent uses (tufspec.go), with no
// release selection, code signing or install. It exists for the TUF
// conformance suite's adapter (internal/conformance), which must exercise
// exactly the agent's code. A TUF is not safe for concurrent use.
type TUF struct {
	o TUFOptions
	s *session
}

// TUFOptions configure a TUF.
type TUFOptions struct {
	// MetadataDir holds the trusted metadata under unversioned names
	// (root.json, timestamp.json, ..., <escaped role>.json); InitTUF puts
	// the first trusted root there.
	MetadataDir string
	// MetadataURL and TargetsURL are the repository's metadata and target
	// locations. Only their hosts are contacted, plain http only on
	// loopback (the agent's allow list and TLS rules).
	MetadataURL string
	TargetsURL  string
	// Now is the time expiry is judged at; zero means the current time.
	Now time.Time
}

// InitTUF makes metadataDir (0700) and writes root, unchecked, as its
// trusted root.json. It makes no request.
func InitTUF(metadataDir string, root []byte) error {
	if metadataDir == "" {
		return usagef("no metadata directory given")
	}
	if len(root) > maxRootSize {
		return usagef("trusted root is larger than %d bytes", maxRootSize)
	}
	if err := os.MkdirAll(metadataDir, 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(metadataDir, "root.json"), root, 0o600)
}

// NewTUF returns a TUF for o. It makes no request.
func NewTUF(o TUFOptions) (*TUF, error) {
	if o.MetadataDir == "" || o.MetadataURL == "" {
		return nil, usagef("a metadata directory and a metadata URL are required")
	}
	o.MetadataURL = strings.TrimRight(o.MetadataURL, "/")
	o.TargetsURL = strings.TrimRight(o.TargetsURL, "/")
	return &TUF{o: o}, nil
}

// Refresh updates the top-level metadata from the repository (client
// workflow 5.3 to 5.6) and keeps the verified metadata for Download. It
// can be called once; Download calls it if it was not.
func (t *TUF) Refresh(ctx context.Context) error {
	if t.s != nil {
		return errors.New("the metadata was already refreshed")
	}
	root, err := readFileLimited(filepath.Join(t.o.MetadataDir, "root.json"), maxRootSize)
	if err != nil {
		return fmt.Errorf("trusted root: %w", err)
	}
	var extra []string
	if t.o.TargetsURL != "" {
		u, err := neturl.Parse(t.o.TargetsURL)
		if err != nil {
			return usagef("targets URL: %v", err)
		}
		extra = append(extra, u.Host)
	}
	hc, err := newHTTPClient(t.o.MetadataURL, extra)
	if err != nil {
		return usagef("metadata URL: %v", err)
	}
	s, err := openSession(ctx, sessionConfig{
		root:        root,
		metadataDir: t.o.MetadataDir,
		metadataURL: t.o.MetadataURL,
		targetsURL:  t.o.TargetsURL,
		client:      hc,
		refTime:     t.o.Now,
		name:        t.o.MetadataURL,
	})
	if err != nil {
		return err
	}
	t.s = s
	return nil
}

// Download finds target in the verified metadata (through delegations)
// and makes dir/<name> that target, where name is the target path
// URL-escaped (no '/' survives, so every target is one file directly in
// dir). A file already there whose length and hashes match is kept and
// nothing is downloaded; otherwise the target streams into a temporary
// file in dir, every listed hash is checked, and only then is it renamed
// into place. It returns the file's path.
func (t *TUF) Download(ctx context.Context, target, dir string) (string, error) {
	if t.s == nil {
		if err := t.Refresh(ctx); err != nil {
			return "", err
		}
	}
	if t.o.TargetsURL == "" {
		return "", usagef("no targets URL given")
	}
	name, err := localTargetName(target)
	if err != nil {
		return "", err
	}
	tf, err := t.s.lookup(target)
	if err != nil {
		return "", err
	}
	final := filepath.Join(dir, name)
	if verifyTargetFile(tf, final) == nil {
		return final, nil // already there, verified
	}
	f, err := os.CreateTemp(dir, "."+name+".partial-*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := t.s.download(ctx, tf, f, 0, nil); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	err = f.Close()
	f = nil
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := atomicfile.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return final, nil
}

// localTargetName is the file a target is stored as: its path
// URL-escaped, one segment. The names "." and ".." (and the empty name)
// are refused here, where the target becomes a file path; the TUF
// specification allows them as target paths.
func localTargetName(target string) (string, error) {
	name := neturl.PathEscape(target)
	if name == "" || name == "." || name == ".." {
		return "", usagef("target %q cannot be stored as a file", target)
	}
	return name, nil
}

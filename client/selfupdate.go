package client

import (
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/minio/selfupdate"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
)

// ErrRestart: the agent replaced its own binary; the process should exit
// so that the service manager starts the new one.
var ErrRestart = errors.New("the agent updated itself; restart it")

// selfCheckTimeout bounds the new binary's --version check.
const selfCheckTimeout = 30 * time.Second

// SetSelfPath gives the agent the real path of its own executable,
// resolved at start-up (after one self-update os.Executable() would name
// the old file, and minio/selfupdate would replace a symlink with a file).
func (a *Agent) SetSelfPath(p string) { a.selfPath = p }

// SelfPath resolves the running executable's real path.
func SelfPath() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(p)
}

// selfUpdate replaces the agent's binary with a staged, verified release:
// minio/selfupdate with the TUF sha256 as checksum, the old binary kept as
// <path>.old, the new one checked (--version must print the release
// version) before the update is committed; otherwise the old binary is put
// back and the release is marked failed.
func (a *Agent) selfUpdate(ctx context.Context, st *State, name string, c *ComponentState) error {
	rel := c.Staged
	if a.selfPath == "" {
		return errors.New("self-update: the agent's executable path is unknown")
	}
	sum, err := hex.DecodeString(rel.SHA256)
	if err != nil {
		return err
	}
	f, err := a.openStaged(rel.File)
	if err != nil {
		return err
	}
	old := a.selfPath + ".old"
	err = selfupdate.Apply(f, selfupdate.Options{TargetPath: a.selfPath, OldSavePath: old, Checksum: sum, Hash: crypto.SHA256})
	f.Close()
	if err != nil {
		if rerr := selfupdate.RollbackError(err); rerr != nil {
			return fmt.Errorf("self-update failed (%v) and restoring %s also failed: %w; restore it from %s by hand", err, a.selfPath, rerr, old)
		}
		return fmt.Errorf("self-update: %w", err)
	}
	// minio/selfupdate does not fsync.
	if nf, err := os.Open(a.selfPath); err == nil {
		nf.Sync()
		nf.Close()
	}
	atomicfile.SyncDir(filepath.Dir(a.selfPath))
	if err := checkSelf(ctx, a.selfPath, rel.Version); err != nil {
		if rerr := atomicfile.Rename(old, a.selfPath); rerr != nil {
			return fmt.Errorf("the new agent binary is broken (%v) and restoring %s failed: %w", err, old, rerr)
		}
		from, why := c.Installed, "the new agent binary did not come up: "+err.Error()
		if terr := a.markRolledBack(name, c, rel, from, why, why,
			fmt.Sprintf("the agent could not update itself to %s (%v); it keeps running %s", rel.Version, err, orNone(from))); terr != nil {
			return terr
		}
		a.dropStaged(name, c)
		if err := a.saveState(st); err != nil {
			return err
		}
		return fmt.Errorf("%w to %s: the new agent binary did not come up: %v", errRolledBack, orNone(from), err)
	}
	if err := a.commitInstalled(name, c, rel, nil); err != nil {
		return err
	}
	if err := a.saveState(st); err != nil {
		return err
	}
	a.dropStaged(name, c)
	a.restart = true
	return nil
}

// checkSelf runs the new binary with --version and wants the version in
// what it prints.
func checkSelf(parent context.Context, path, version string) error {
	ctx, cancel := context.WithTimeout(parent, selfCheckTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s --version: %v", path, err)
	}
	if !strings.Contains(string(out), version) {
		return fmt.Errorf("%s --version printed %q, not %s", path, strings.TrimSpace(string(out)), version)
	}
	return nil
}

// RestartRequired says whether the agent replaced its own binary.
func (a *Agent) RestartRequired() bool { return a.restart }

package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// CheckPermissions refuses a state directory or trust directory that
// someone other than the agent's user could change, like OpenSSH's
// StrictModes: a world-writable roots/ would let any local user add a root
// certificate and have their code verify, a symlinked staging/ would lead
// the agent's writes outside its directory.
//
// The rules, checked on the real path (symbolic links in the path itself
// are resolved, and on Unix every link followed must belong to the agent's
// user or root):
//
//   - Every directory above the state directory and above the trust
//     directory, up to the root of the file system, must belong to the
//     agent's user or root (on Windows: the user, SYSTEM, Administrators or
//     TrustedInstaller) and must not be writable by anyone else, unless,
//     like /tmp, it has the sticky bit (on Windows: others may only create
//     new entries in it, not delete, rename or re-permission existing ones).
//   - The state directory itself and the entries in it the agent relies on
//     (config.json, tuf/ and all it holds, staging/ and cache/ and all they
//     hold, state.json, journal.json, consent.jsonl, audit.jsonl and their
//     .head files, notifications.json, activity.json, agent.lock,
//     service.lock, and the fleet's fleet.json, fleet.key and
//     fleet-queue/ with all it holds), when they exist, must belong to the
//     agent's user or root and be writable by nobody else (Unix: no group
//     or other write bit; Windows: no ACE granting a write-type right to
//     another account, and a DACL present).
//   - The device's private key (fleet.key) may not even be read by anyone
//     else (Unix: 0600 or stricter; Windows: no ACE granting read to an
//     account other than SYSTEM, Administrators and the agent's user;
//     enroll gives it a protected DACL of its own).
//   - The trust directory and everything in it, recursively (roots/,
//     tsa-roots/, publishers, crl/), follow the same rule.
//   - None of those entries, under the state directory or anywhere inside
//     the trust directory, may be a symbolic link (on Windows: a symbolic
//     link, junction or other reparse point).
//
// A violation is an error wrapping ErrVerification whose one-line message
// names the path, what is wrong and the command that fixes it. Entries
// that do not exist are not an error (the agent creates them, or reports
// them missing, itself). There is deliberately no switch to turn the
// checks off.
func CheckPermissions(stateDir, trustDir string) error {
	if stateDir == "" || trustDir == "" {
		return usagef("permission check: the state and trust directories are required")
	}
	if err := checkStateDirPerms(stateDir); err != nil {
		return err
	}
	return checkTrustDirPerms(trustDir)
}

// stateEntry is an entry directly under the state directory.
type stateEntry struct {
	name  string
	tree  bool   // a directory: check everything in it too
	fix   string // what to do when it is a link
	inner string // what to do when something inside it is a link
}

const fixReplace = "replace it with the regular file it points to"

// stateEntries are the entries of the state directory the agent relies on
// (see the filepath.Join(a.dir, ...) calls).
var stateEntries = []stateEntry{
	{"config.json", false, fixReplace, ""},
	{"tuf", true, "replace it with the directory it points to (it holds the trusted root, tuf/root.json; if that is lost, run bcagent init again)",
		fixReplace + " (tuf/root.json is the trusted root; if it is lost, run bcagent init again)"},
	{"staging", true, "remove it (the agent recreates staging/)", "remove it (the agent downloads it again)"},
	{"cache", true, "remove it (the agent recreates cache/)", "remove it (the agent recreates it)"},
	{"state.json", false, fixReplace, ""},
	{"journal.json", false, fixReplace, ""},
	{"consent.jsonl", false, fixReplace, ""},
	{"consent.jsonl.head", false, fixReplace, ""},
	{"audit.jsonl", false, fixReplace, ""},
	{"audit.jsonl.head", false, fixReplace, ""},
	{"notifications.json", false, fixReplace, ""},
	{"last-check.json", false, fixReplace, ""},
	{"last-import.json", false, fixReplace, ""},
	{"watched.json", false, fixReplace, ""},
	{"mirrors.json", false, fixReplace, ""},
	{"activity.json", false, "remove it (the agent holding the lock rewrites it)", ""},
	{"agent.lock", false, "remove it (the agent recreates it)", ""},
	{"service.lock", false, "remove it (the agent recreates it)", ""},
	{"fleet.json", false, fixReplace, ""},
	{"fleet.key", false, fixReplace + " (or enroll again: bcagent enroll)", ""},
	{"fleet.key.new", false, fixReplace + " (it is the new key of an unfinished rotation: bcagent report finishes it)", ""},
	{"fleet.key.enroll", false, "remove it (a key an interrupted enrollment left)", ""},
	{"fleet-queue", true, "remove it (the agent recreates fleet-queue/)", "remove it (a queued report)"},
}

// secretEntries are the state directory's entries that others may not
// even read: the device's private key.
var secretEntries = []string{"fleet.key", "fleet.key.new", "fleet.key.enroll"}

// checkStateDirPerms checks the state directory, the directories above it
// and the entries of stateEntries.
func checkStateDirPerms(dir string) error {
	real, fi, err := resolvePerms(dir)
	if err != nil || fi == nil {
		return err
	}
	if err := checkOwnerMode(real, fi, false); err != nil {
		return err
	}
	for _, e := range stateEntries {
		p := filepath.Join(real, e.name)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("permission check: %w", err)
		}
		if isLink(fi) {
			return verifyf("%s is a %s; the agent refuses to follow links in its state directory: %s", p, linkWord, e.fix)
		}
		if err := checkOwnerMode(p, fi, false); err != nil {
			return err
		}
		if e.tree && fi.IsDir() {
			if err := checkTree(p, "state directory", e.inner); err != nil {
				return err
			}
		}
		if slices.Contains(secretEntries, e.name) {
			if err := checkSecret(p, fi); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkTrustDirPerms checks the trust directory, the directories above it
// and everything in it.
func checkTrustDirPerms(dir string) error {
	real, fi, err := resolvePerms(dir)
	if err != nil || fi == nil {
		return err
	}
	if err := checkOwnerMode(real, fi, false); err != nil {
		return err
	}
	if !fi.IsDir() {
		return nil // signer.LoadTrust reports it
	}
	return checkTree(real, "trust directory", fixReplace)
}

// resolvePerms resolves dir to its real path, checking every directory
// above it (and on Unix every link on the way), and returns the real path
// and its Lstat. A dir that does not exist is not an error: fi is nil.
func resolvePerms(dir string) (string, fs.FileInfo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, err
	}
	real, err := resolveDir(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	fi, err := os.Lstat(real)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("permission check: %w", err)
	}
	return real, fi, nil
}

// checkTree checks everything below root (root itself is checked by the
// caller): no links, owner and mode as for the state directory. Entries
// that vanish while it walks (the agent's own temporary files) are skipped.
func checkTree(root, what, fix string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("permission check: %w", err)
		}
		if p == root {
			return nil
		}
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("permission check: %w", err)
		}
		if isLink(fi) {
			return verifyf("%s is a %s; the agent refuses to follow links in its %s: %s", p, linkWord, what, fix)
		}
		return checkOwnerMode(p, fi, false)
	})
}

// CheckInstallPermissions applies the same rules to the install root and
// what the agent keeps in it: the root and the directories above it, each
// component's directory, its features.json, its `current` (a link by
// design on Unix: the link itself must be the agent's) and its version
// directories. Someone who could write there could swap the running
// version or list a feature as active between two of the agent's checks.
// The files inside a version directory come from a verified artifact and
// are not walked.
func CheckInstallPermissions(installRoot string, components []string) error {
	real, fi, err := resolvePerms(installRoot)
	if err != nil || fi == nil {
		return err
	}
	if err := checkOwnerMode(real, fi, false); err != nil {
		return err
	}
	for _, c := range components {
		dir := filepath.Join(real, c)
		fi, err := os.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("permission check: %w", err)
		}
		if isLink(fi) {
			return verifyf("%s is a %s; the agent refuses to follow links in its install root: %s", dir, linkWord, "replace it with the directory it points to")
		}
		if err := checkOwnerMode(dir, fi, false); err != nil {
			return err
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("permission check: %w", err)
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			fi, err := os.Lstat(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("permission check: %w", err)
			}
			if isLink(fi) {
				// current is a link by design; .current.tmp is the link
				// switchCurrent renames over it, left behind when the
				// agent is stopped between the two steps. The agent never
				// follows it: recovery and the next switch remove it.
				if e.Name() != "current" && e.Name() != ".current.tmp" {
					return verifyf("%s is a %s; the agent refuses to follow links in its install root: %s", p, linkWord, "remove it")
				}
				if err := checkOwnerMode(p, fi, false); err != nil {
					return err
				}
				continue
			}
			if err := checkOwnerMode(p, fi, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkPermissions runs every permission check for an agent configured so
// with state directory dir.
func (c *Config) checkPermissions(dir string) error {
	if err := CheckPermissions(dir, c.TrustDir); err != nil {
		return err
	}
	return CheckInstallPermissions(c.InstallRoot, c.Components)
}

// openConfig is the first step of every way to open a state directory:
// its absolute path, its configuration, and the permission checks.
func openConfig(stateDir string) (string, *Config, error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return "", nil, err
	}
	cfg, err := loadConfig(abs)
	if err != nil {
		return "", nil, err
	}
	if err := cfg.checkPermissions(abs); err != nil {
		return "", nil, err
	}
	return abs, cfg, nil
}

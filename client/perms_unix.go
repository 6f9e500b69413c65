//go:build !windows

package client

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

const linkWord = "symbolic link"

// maxLinks bounds the links resolveDir follows (Linux's MAXSYMLINKS is 40).
const maxLinks = 40

func isLink(fi fs.FileInfo) bool { return fi.Mode()&fs.ModeSymlink != 0 }

// checkOwnerMode checks that p belongs to the effective user or root and,
// unless it is a symbolic link (whose mode means nothing), that neither
// group nor others may write it. A directory above the agent's
// (parent=true) may be writable by all if it has the sticky bit, like
// /tmp: others can add entries there but not rename or remove ours.
func checkOwnerMode(p string, fi fs.FileInfo, parent bool) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("permission check: %s: no owner information", p)
	}
	euid := os.Geteuid()
	if uid := int(st.Uid); uid != 0 && uid != euid {
		chown := "chown"
		if fi.Mode()&fs.ModeSymlink != 0 {
			chown = "chown -h"
		}
		return verifyf("%s: owned by uid %d, not by the agent's user (uid %d) or root; run %s %d %s", p, uid, euid, chown, euid, p)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil
	}
	perm := fi.Mode().Perm()
	if perm&0o022 == 0 {
		return nil
	}
	if parent {
		if fi.IsDir() && fi.Mode()&fs.ModeSticky != 0 {
			return nil
		}
		return verifyf("%s: permissions %04o are too open for a directory above the agent's files (writable by group or others, no sticky bit); run chmod go-w %s", p, perm, p)
	}
	return verifyf("%s: permissions %04o are too open (writable by group or others); run chmod go-w %s", p, perm, p)
}

// resolveDir resolves the absolute path p one component at a time, as the
// kernel does, and checks with checkOwnerMode(parent=true) every directory
// it walks through on the way to the last one and every symbolic link it
// follows, so neither the directories above nor a link can be changed by
// another user. It returns the real path; the last directory is the
// caller's to check.
func resolveDir(p string) (string, error) {
	todo := splitPath(p)
	cur := string(filepath.Separator)
	links := 0
	checked := map[string]bool{}
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // cur has no links in it: its parent is its real parent
			continue
		}
		// The directory we look into is above the target.
		if !checked[cur] {
			fi, err := os.Lstat(cur)
			if err != nil {
				return "", err
			}
			if !fi.IsDir() {
				return "", &fs.PathError{Op: "lstat", Path: cur, Err: syscall.ENOTDIR}
			}
			if err := checkOwnerMode(cur, fi, true); err != nil {
				return "", err
			}
			checked[cur] = true
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if err := checkOwnerMode(next, fi, true); err != nil {
			return "", err
		}
		if links++; links > maxLinks {
			return "", &fs.PathError{Op: "resolve", Path: p, Err: syscall.ELOOP}
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			cur = string(filepath.Separator)
		}
		todo = append(splitPath(target), todo...)
	}
	return cur, nil
}

func splitPath(p string) []string {
	return strings.Split(p, string(filepath.Separator))
}

// restrictStateDir is a no-op on Unix: Init creates the state directory
// 0700 itself. (On Windows it sets a protected DACL.)
func restrictStateDir(string) error { return nil }

// restrictSecret: on Unix a secret file is written 0600 and checkSecret
// holds it there.
func restrictSecret(string) error { return nil }

// checkSecret refuses a secret file (the device's private key) that group
// or others may read.
func checkSecret(p string, fi fs.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return verifyf("%s: permissions %04o let group or others read the device's private key; run chmod 600 %s", p, perm, p)
	}
	return nil
}

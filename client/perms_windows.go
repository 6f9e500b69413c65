//go:build windows

package client

// The Windows side of CheckPermissions reads owners and DACLs. It is built
// (GOOS=windows go build ./...) but has not been run here: the tests of
// perms_test.go are Unix-only, and this code needs a Windows machine to
// test.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

const linkWord = "symbolic link or junction (reparse point)"

// Access rights that let an account change a file or directory, or what a
// directory holds (winnt.h).
const (
	fileWriteData       = 0x0002 // FILE_WRITE_DATA, FILE_ADD_FILE
	fileAppendData      = 0x0004 // FILE_APPEND_DATA, FILE_ADD_SUBDIRECTORY
	fileWriteEA         = 0x0010
	fileDeleteChild     = 0x0040
	fileWriteAttributes = 0x0100
	accessDelete        = 0x00010000
	accessWriteDAC      = 0x00040000
	accessWriteOwner    = 0x00080000
	genericAll          = 0x10000000
	genericWrite        = 0x40000000
	fileAllAccess       = 0x001F01FF

	// writeRights may not be granted to another account on the agent's
	// files and directories.
	writeRights = fileWriteData | fileAppendData | fileWriteEA | fileDeleteChild | fileWriteAttributes |
		accessDelete | accessWriteDAC | accessWriteOwner | genericAll | genericWrite
	// parentWriteRights may not be granted to another account on a
	// directory above them: adding new entries (C:\ and C:\ProgramData
	// let all users create folders) is like the sticky bit of /tmp, but
	// deleting, renaming or re-permissioning existing ones is not.
	parentWriteRights = fileDeleteChild | accessDelete | accessWriteDAC | accessWriteOwner | genericAll | genericWrite
)

// ACE types that grant access (winnt.h); the object ones never appear on
// files, and their SID is not at SidStart.
const (
	aceAllowed              = 0x0
	aceAllowedObject        = 0x5
	aceAllowedCallback      = 0x9
	aceAllowedCallbackObjec = 0xB
)

const trustedInstallerSID = "S-1-5-80-956008885-3425870976-2464413176-3188889466-1758722599"

// trustedSIDs are the accounts that may own or write the agent's files:
// SYSTEM, Administrators, TrustedInstaller and the process's user.
var trustedSIDs = sync.OnceValues(func() ([]*windows.SID, error) {
	system, err := windows.CreateWellKnownSid(windows.WinLocalSystemSid)
	if err != nil {
		return nil, err
	}
	admins, err := windows.CreateWellKnownSid(windows.WinBuiltinAdministratorsSid)
	if err != nil {
		return nil, err
	}
	ti, err := windows.StringToSid(trustedInstallerSID)
	if err != nil {
		return nil, err
	}
	tu, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return nil, err
	}
	me, err := tu.User.Sid.Copy()
	if err != nil {
		return nil, err
	}
	return []*windows.SID{me, system, admins, ti}, nil
})

func isTrustedSID(sid *windows.SID, trusted []*windows.SID) bool {
	if sid == nil {
		return false
	}
	for _, t := range trusted {
		if sid.Equals(t) {
			return true
		}
	}
	return false
}

func sidName(sid *windows.SID) string {
	if sid == nil {
		return "nobody"
	}
	if acct, dom, _, err := sid.LookupAccount(""); err == nil {
		if dom != "" {
			return dom + `\` + acct
		}
		return acct
	}
	return sid.String()
}

// isLink: symbolic links, junctions and other name-surrogate reparse
// points (Go reports junctions as ModeIrregular). Deduplicated files are
// reparse points too, but Go reports them as regular files: allowed.
func isLink(fi fs.FileInfo) bool {
	if fi.Mode()&(fs.ModeSymlink|fs.ModeIrregular) != 0 {
		return true
	}
	d, ok := fi.Sys().(*syscall.Win32FileAttributeData)
	return ok && d.FileAttributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0 && !fi.Mode().IsRegular()
}

// checkOwnerMode checks p's owner and DACL: the owner must be trusted, a
// DACL must be present, and no ACE that applies to p itself may allow
// another account a write-type right (for a directory above the agent's
// files, parent=true, only the rights that touch existing entries).
func checkOwnerMode(p string, fi fs.FileInfo, parent bool) error {
	trusted, err := trustedSIDs()
	if err != nil {
		return fmt.Errorf("permission check: the agent's own account: %w", err)
	}
	sd, err := windows.GetNamedSecurityInfo(p, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("permission check: %s: %w", p, err)
	}
	owner, _, err := sd.Owner()
	if err != nil {
		return fmt.Errorf("permission check: %s: owner: %w", p, err)
	}
	if !isTrustedSID(owner, trusted) {
		return verifyf(`%s: owned by %s, not by the agent's user (%s), SYSTEM, Administrators or TrustedInstaller; run icacls "%s" /setowner *S-1-5-32-544`,
			p, sidName(owner), sidName(trusted[0]), p)
	}
	dacl, _, err := sd.DACL()
	if errors.Is(err, windows.ERROR_OBJECT_NOT_FOUND) || (err == nil && dacl == nil) {
		return verifyf(`%s has no DACL (everyone has full access); run icacls "%s" /inheritance:r /grant:r *S-1-5-18:(OI)(CI)F *S-1-5-32-544:(OI)(CI)F`, p, p)
	}
	if err != nil {
		return fmt.Errorf("permission check: %s: DACL: %w", p, err)
	}
	bad := uint32(writeRights)
	if parent {
		bad = parentWriteRights
	}
	for i := uint32(0); i < uint32(dacl.AceCount); i++ {
		var ace *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(dacl, i, &ace); err != nil {
			return fmt.Errorf("permission check: %s: ACE %d: %w", p, i, err)
		}
		if ace.Header.AceFlags&windows.INHERIT_ONLY_ACE != 0 {
			continue // applies to what is created inside, not to p
		}
		mask := uint32(ace.Mask) & bad
		if mask == 0 {
			continue
		}
		switch ace.Header.AceType {
		case aceAllowed, aceAllowedCallback:
			sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart))
			if isTrustedSID(sid, trusted) {
				continue
			}
			what := "may change it"
			if parent {
				what = "may delete, rename or re-permission what it holds"
			}
			return verifyf(`%s: %s %s (access mask 0x%08x); only SYSTEM, Administrators, TrustedInstaller and the agent's user (%s) may; run icacls "%s" /inheritance:d and then icacls "%s" /remove:g *%s`,
				p, sidName(sid), what, mask, sidName(trusted[0]), p, p, sid.String())
		case aceAllowedObject, aceAllowedCallbackObjec:
			return verifyf(`%s: an object ACE grants write access (access mask 0x%08x); remove it with icacls "%s"`, p, mask, p)
		}
	}
	return nil
}

// resolveDir resolves p's links (filepath.EvalSymlinks) and checks every
// directory above the real path. The last directory is the caller's to
// check.
func resolveDir(p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return "", err
	}
	for d := filepath.Dir(real); ; d = filepath.Dir(d) {
		fi, err := os.Lstat(d)
		if err != nil {
			return "", err
		}
		if err := checkOwnerMode(d, fi, true); err != nil {
			return "", err
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	return real, nil
}

// restrictStateDir gives the state directory Init creates a protected
// DACL, inherited by everything in it: full control for SYSTEM,
// Administrators and the agent's user, nothing for anyone else. Without
// it the directory would inherit its parent's ACL (C:\ProgramData lets
// all users create files in its subdirectories) and CheckPermissions
// would refuse it.
func restrictStateDir(dir string) error {
	return protectDACL(dir, windows.SUB_CONTAINERS_AND_OBJECTS_INHERIT)
}

// restrictSecret gives a secret file (the device's private key) a
// protected DACL of its own: readable by SYSTEM, Administrators and the
// agent's user only, whatever the state directory lets others do.
func restrictSecret(p string) error {
	return protectDACL(p, windows.NO_INHERITANCE)
}

func protectDACL(p string, inherit uint32) error {
	trusted, err := trustedSIDs()
	if err != nil {
		return fmt.Errorf("the agent's own account: %w", err)
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	var entries []windows.EXPLICIT_ACCESS
	seen := map[string]bool{}
	for _, sid := range trusted[:3] { // the user, SYSTEM, Administrators
		if seen[sid.String()] {
			continue
		}
		seen[sid.String()] = true
		pin.Pin(sid)
		entries = append(entries, windows.EXPLICIT_ACCESS{
			AccessPermissions: fileAllAccess,
			AccessMode:        windows.GRANT_ACCESS,
			Inheritance:       inherit,
			Trustee: windows.TRUSTEE{
				TrusteeForm:  windows.TRUSTEE_IS_SID,
				TrusteeType:  windows.TRUSTEE_IS_UNKNOWN,
				TrusteeValue: windows.TrusteeValueFromSID(sid),
			},
		})
	}
	acl, err := windows.ACLFromEntries(entries, nil)
	if err != nil {
		return fmt.Errorf("%s: build ACL: %w", p, err)
	}
	if err := windows.SetNamedSecurityInfo(p, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, acl, nil); err != nil {
		return fmt.Errorf("%s: set ACL: %w", p, err)
	}
	return nil
}

// readRights are the rights that let an account read a file's contents.
const readRights = 0x0001 | 0x80000000 | genericAll // FILE_READ_DATA, GENERIC_READ, GENERIC_ALL

// checkSecret refuses a secret file that an account other than SYSTEM,
// Administrators, TrustedInstaller and the agent's user may read.
func checkSecret(p string, fi fs.FileInfo) error {
	trusted, err := trustedSIDs()
	if err != nil {
		return fmt.Errorf("permission check: the agent's own account: %w", err)
	}
	sd, err := windows.GetNamedSecurityInfo(p, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("permission check: %s: %w", p, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil || dacl == nil {
		return verifyf(`%s is the device's private key and has no DACL; run icacls "%s" /inheritance:r /grant:r *S-1-5-18:F *S-1-5-32-544:F`, p, p)
	}
	for i := uint32(0); i < uint32(dacl.AceCount); i++ {
		var ace *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(dacl, i, &ace); err != nil {
			return fmt.Errorf("permission check: %s: ACE %d: %w", p, i, err)
		}
		if ace.Header.AceFlags&windows.INHERIT_ONLY_ACE != 0 || uint32(ace.Mask)&readRights == 0 {
			continue
		}
		switch ace.Header.AceType {
		case aceAllowed, aceAllowedCallback:
		case aceAllowedObject, aceAllowedCallbackObjec:
			return verifyf(`%s is the device's private key and an object ACE grants read access (access mask 0x%08x); run icacls "%s" /inheritance:r /grant:r *S-1-5-18:F *S-1-5-32-544:F`, p, uint32(ace.Mask), p)
		default:
			continue
		}
		sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart))
		if !isTrustedSID(sid, trusted) {
			return verifyf(`%s is the device's private key and %s may read it; run icacls "%s" /inheritance:r /grant:r *S-1-5-18:F *S-1-5-32-544:F`, p, sidName(sid), p)
		}
	}
	return nil
}

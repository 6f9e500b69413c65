package client

import (
	"os"

	"golang.org/x/sys/windows"
)

// openBundleNoFollow opens path for reading, the reparse point itself
// when path is one (a symbolic link or junction: errBundleLink, never
// followed), and checks on the handle that it is a file on disk (not a
// pipe, a console or a directory: the caller's Stat refuses those). Other
// programs may read it meanwhile, not write it (no FILE_SHARE_WRITE): a
// program still copying it makes the open fail with a sharing violation
// (inUse), and nobody can change it while it is imported.
func openBundleNoFollow(path string) (*os.File, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	h, err := windows.CreateFile(p, windows.GENERIC_READ, windows.FILE_SHARE_READ|windows.FILE_SHARE_DELETE, nil,
		windows.OPEN_EXISTING, windows.FILE_ATTRIBUTE_NORMAL|windows.FILE_FLAG_OPEN_REPARSE_POINT, 0)
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && fi.IsDir() {
			// Not opened without FILE_FLAG_BACKUP_SEMANTICS: say what it is.
			return nil, &notRegularError{kind: "a directory"}
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &info); err != nil {
		windows.CloseHandle(h)
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if info.FileAttributes&windows.FILE_ATTRIBUTE_REPARSE_POINT != 0 {
		windows.CloseHandle(h)
		return nil, errBundleLink
	}
	if t, err := windows.GetFileType(h); err != nil || t != windows.FILE_TYPE_DISK {
		windows.CloseHandle(h)
		return nil, &notRegularError{kind: "not a file on disk (a pipe or a device)"}
	}
	return os.NewFile(uintptr(h), path), nil
}

package client

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Limits on what an archive may unpack to.
const (
	MaxArchiveEntries   = 100_000
	MaxArchiveBytes     = 8 << 30
	maxSymlinkTargetLen = 4096
)

// ErrUnsafeArchive marks an archive entry that would escape the install
// directory or is of a kind we do not install. The archive passed TUF and
// code signing, so this is a publisher mistake or an attack: exit code 3.
var ErrUnsafeArchive = errors.New("unsafe archive entry")

func unsafeEntry(name, why string) error {
	return fmt.Errorf("%w %q: %s", ErrUnsafeArchive, name, why)
}

// cleanEntryName validates an archive entry name and returns it cleaned,
// relative, '/'-separated. "" means the archive root itself.
func cleanEntryName(name string) (string, error) {
	if strings.ContainsRune(name, '\\') {
		return "", unsafeEntry(name, "backslash in name")
	}
	if strings.ContainsRune(name, 0) {
		return "", unsafeEntry(name, "NUL in name")
	}
	if strings.HasPrefix(name, "/") || (len(name) >= 2 && name[1] == ':') {
		return "", unsafeEntry(name, "absolute path")
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." {
			return "", unsafeEntry(name, "contains ..")
		}
	}
	c := path.Clean(name)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// checkLinkTarget refuses a symlink whose target is absolute or leaves the
// root when resolved lexically from the link's directory.
func checkLinkTarget(name, target string) error {
	if target == "" || len(target) > maxSymlinkTargetLen || strings.ContainsAny(target, "\\\x00") {
		return unsafeEntry(name, "bad symlink target")
	}
	if strings.HasPrefix(target, "/") || (len(target) >= 2 && target[1] == ':') {
		return unsafeEntry(name, "symlink to an absolute path "+target)
	}
	resolved := path.Join(path.Dir(name), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return unsafeEntry(name, "symlink escapes the install directory: "+target)
	}
	return nil
}

type extractor struct {
	root    *os.Root
	dir     string
	entries int
	bytes   int64
	files   map[string]bool // regular files written, for hard links
	links   []string
}

func newExtractor(dest string) (*extractor, error) {
	root, err := os.OpenRoot(dest)
	if err != nil {
		return nil, err
	}
	return &extractor{root: root, dir: dest, files: map[string]bool{}}, nil
}

func (x *extractor) count(name string) error {
	x.entries++
	if x.entries > MaxArchiveEntries {
		return unsafeEntry(name, fmt.Sprintf("more than %d entries", MaxArchiveEntries))
	}
	return nil
}

func (x *extractor) mkdirAll(name string) error {
	if name == "" {
		return nil
	}
	return x.root.MkdirAll(filepath.FromSlash(name), 0o755)
}

func (x *extractor) file(name string, mode fs.FileMode, r io.Reader) error {
	if name == "" {
		return unsafeEntry(name, "file with an empty name")
	}
	if err := x.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	if fi, err := x.root.Lstat(filepath.FromSlash(name)); err == nil {
		return unsafeEntry(name, "duplicate entry ("+fi.Mode().Type().String()+" already there)")
	}
	perm := fs.FileMode(0o644)
	if mode&0o111 != 0 {
		perm = 0o755
	}
	f, err := x.root.OpenFile(filepath.FromSlash(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	budget := MaxArchiveBytes - x.bytes
	n, err := io.Copy(f, io.LimitReader(r, budget+1))
	x.bytes += n
	if err == nil && n > budget {
		err = unsafeEntry(name, fmt.Sprintf("archive unpacks to more than %d bytes", int64(MaxArchiveBytes)))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	x.files[name] = true
	return nil
}

func (x *extractor) symlink(name, target string) error {
	if name == "" {
		return unsafeEntry(name, "symlink with an empty name")
	}
	if err := checkLinkTarget(name, target); err != nil {
		return err
	}
	if err := x.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	if err := x.root.Symlink(target, filepath.FromSlash(name)); err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	x.links = append(x.links, name)
	return nil
}

func (x *extractor) hardlink(name, target string) error {
	t, err := cleanEntryName(target)
	if err != nil {
		return unsafeEntry(name, "hard link to "+target)
	}
	if !x.files[t] {
		return unsafeEntry(name, "hard link to "+target+", which is not a file extracted before it")
	}
	if err := x.mkdirAll(path.Dir(name)); err != nil {
		return err
	}
	if err := x.root.Link(filepath.FromSlash(t), filepath.FromSlash(name)); err != nil {
		return fmt.Errorf("extract %s: %w", name, err)
	}
	return nil
}

// finish checks every symlink once all are in place: a chain of links that
// are each harmless alone may still resolve outside the root.
func (x *extractor) finish() error {
	defer x.root.Close()
	base, err := filepath.EvalSymlinks(x.dir)
	if err != nil {
		return err
	}
	for _, l := range x.links {
		real, err := filepath.EvalSymlinks(filepath.Join(x.dir, filepath.FromSlash(l)))
		if err != nil {
			return unsafeEntry(l, "symlink does not resolve inside the archive")
		}
		rel, err := filepath.Rel(base, real)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return unsafeEntry(l, "symlink resolves outside the install directory")
		}
	}
	return syncTree(x.dir)
}

// ExtractTarGz unpacks a .tar.gz into dest, an existing empty directory.
// On error dest is emptied again.
func ExtractTarGz(r io.Reader, dest string) (err error) {
	defer cleanupOnError(dest, &err)
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("%w: not a gzip stream: %v", ErrUnsafeArchive, err)
	}
	x, err := newExtractor(dest)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			x.root.Close()
			return fmt.Errorf("%w: bad tar stream: %v", ErrUnsafeArchive, err)
		}
		if err := x.tarEntry(h, tr); err != nil {
			x.root.Close()
			return err
		}
	}
	return x.finish()
}

func (x *extractor) tarEntry(h *tar.Header, r io.Reader) error {
	if err := x.count(h.Name); err != nil {
		return err
	}
	name, err := cleanEntryName(h.Name)
	if err != nil {
		return err
	}
	switch h.Typeflag {
	case tar.TypeDir:
		return x.mkdirAll(name)
	case tar.TypeReg:
		return x.file(name, fs.FileMode(h.Mode), r)
	case tar.TypeSymlink:
		return x.symlink(name, h.Linkname)
	case tar.TypeLink:
		return x.hardlink(name, h.Linkname)
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return unsafeEntry(h.Name, fmt.Sprintf("entry type %q is not installed (devices, fifos and the like)", h.Typeflag))
	}
}

// ExtractZip unpacks a .zip file into dest, an existing empty directory.
// On error dest is emptied again.
func ExtractZip(src string, dest string) (err error) {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return ExtractZipReader(f, fi.Size(), dest)
}

// ExtractZipReader is ExtractZip on an open file of size bytes.
func ExtractZipReader(src io.ReaderAt, size int64, dest string) (err error) {
	defer cleanupOnError(dest, &err)
	zr, err := zip.NewReader(src, size)
	if err != nil {
		return fmt.Errorf("%w: not a zip file: %v", ErrUnsafeArchive, err)
	}
	x, err := newExtractor(dest)
	if err != nil {
		return err
	}
	for _, f := range zr.File {
		if err := x.zipEntry(f); err != nil {
			x.root.Close()
			return err
		}
	}
	return x.finish()
}

func (x *extractor) zipEntry(f *zip.File) error {
	if err := x.count(f.Name); err != nil {
		return err
	}
	name, err := cleanEntryName(f.Name)
	if err != nil {
		return err
	}
	mode := f.Mode()
	switch {
	case mode.IsDir():
		return x.mkdirAll(name)
	case mode&fs.ModeSymlink != 0:
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrUnsafeArchive, f.Name, err)
		}
		target, err := io.ReadAll(io.LimitReader(rc, maxSymlinkTargetLen+1))
		rc.Close()
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrUnsafeArchive, f.Name, err)
		}
		return x.symlink(name, string(target))
	case mode.IsRegular():
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrUnsafeArchive, f.Name, err)
		}
		defer rc.Close()
		return x.file(name, mode, rc)
	default:
		return unsafeEntry(f.Name, "entry type "+mode.Type().String()+" is not installed")
	}
}

// cleanupOnError removes what a failed extraction wrote into dest.
func cleanupOnError(dest string, err *error) {
	if *err == nil {
		return
	}
	entries, rerr := os.ReadDir(dest)
	if rerr != nil {
		return
	}
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dest, e.Name()))
	}
}

// syncTree fsyncs every directory under dir (files were fsynced as written).
func syncTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Sync()
		}
		return nil
	})
}

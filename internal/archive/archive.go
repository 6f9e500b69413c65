package archive

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
	"syscall"
)

// Limits on what an archive may unpack to.
const (
	MaxEntries          = 100_000
	MaxBytes            = 8 << 30
	maxSymlinkTargetLen = 4096
	// maxTrailer bounds what is read of a gzip stream after the tar
	// end-of-archive marker (the rest of the tar blocking factor), so that
	// the gzip checksum is always checked.
	maxTrailer = 1 << 20
)

// ErrUnsafe marks an archive that is refused: an entry that would escape
// the destination or is of a kind never installed, or a stream that is
// not a valid archive. Match it with errors.Is.
var ErrUnsafe = errors.New("unsafe or malformed archive")

// Error is a refused archive: the entry at fault ("" for the archive as a
// whole) and why.
type Error struct {
	Entry  string
	Reason string
}

func (e *Error) Error() string {
	if e.Entry == "" {
		return e.Reason
	}
	return fmt.Sprintf("archive entry %q: %s", e.Entry, e.Reason)
}

// Is makes errors.Is(err, ErrUnsafe) true.
func (e *Error) Is(target error) bool { return target == ErrUnsafe }

func unsafeEntry(name, why string) error { return &Error{Entry: name, Reason: why} }

func malformed(format string, args ...any) error {
	return &Error{Reason: fmt.Sprintf(format, args...)}
}

// Kind is the archive kind of a file name: "zip", "tar.gz" (also for .tgz)
// or "" for a file that is not an archive.
func Kind(name string) string {
	lower := strings.ToLower(name)
	switch {
	case strings.HasSuffix(lower, ".zip"):
		return "zip"
	case strings.HasSuffix(lower, ".tar.gz"), strings.HasSuffix(lower, ".tgz"):
		return "tar.gz"
	}
	return ""
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

// dataReader tags errors that come from reading the archive (a corrupt or
// truncated stream, a size that lies) apart from errors writing the
// destination.
type dataReader struct {
	r   io.Reader
	err error
}

func (d *dataReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		d.err = err
	}
	return n, err
}

type extractor struct {
	root    *os.Root
	dir     string
	entries int
	bytes   int64
	files   map[string]bool // regular files written, for hard links
	links   []string
	isLink  map[string]bool
}

func newExtractor(dest string) (*extractor, error) {
	root, err := os.OpenRoot(dest)
	if err != nil {
		return nil, err
	}
	return &extractor{root: root, dir: dest, files: map[string]bool{}, isLink: map[string]bool{}}, nil
}

func (x *extractor) count(name string) error {
	x.entries++
	if x.entries > MaxEntries {
		return unsafeEntry(name, fmt.Sprintf("more than %d entries", MaxEntries))
	}
	return nil
}

// explain turns an error from creating entry name in the root into a
// refusal when the archive caused it: a path through one of its own
// symlinks that leads out of the destination or nowhere (os.Root refuses
// to follow it), or a clash with an earlier entry. Anything else (a full
// disk) is a local failure.
func (x *extractor) explain(name string, err error) error {
	if err == nil {
		return nil
	}
	elems := strings.Split(name, "/")
	for i := 1; i <= len(elems); i++ {
		if p := strings.Join(elems[:i], "/"); x.isLink[p] {
			return unsafeEntry(name, "goes through the symlink "+p+", which leads outside the install directory or nowhere")
		}
	}
	if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP) {
		return unsafeEntry(name, "clashes with an earlier entry: "+err.Error())
	}
	return fmt.Errorf("extract %s: %w", name, err)
}

// mkdirAll makes directory dir (and its parents) for entry name.
func (x *extractor) mkdirAll(name, dir string) error {
	if dir == "" || dir == "." {
		return nil
	}
	return x.explain(name, x.root.MkdirAll(filepath.FromSlash(dir), 0o755))
}

func (x *extractor) file(name string, mode fs.FileMode, r io.Reader) error {
	if name == "" {
		return unsafeEntry(name, "file with an empty name")
	}
	if err := x.mkdirAll(name, path.Dir(name)); err != nil {
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
		return x.explain(name, err)
	}
	budget := MaxBytes - x.bytes
	src := &dataReader{r: r}
	n, err := io.Copy(f, io.LimitReader(src, budget+1))
	x.bytes += n
	switch {
	case src.err != nil:
		err = unsafeEntry(name, "the archive's data is corrupt or does not match its header: "+src.err.Error())
	case err == nil && n > budget:
		err = unsafeEntry(name, fmt.Sprintf("archive unpacks to more than %d bytes", int64(MaxBytes)))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, ErrUnsafe) {
			return err
		}
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
	if err := x.mkdirAll(name, path.Dir(name)); err != nil {
		return err
	}
	if err := x.root.Symlink(target, filepath.FromSlash(name)); err != nil {
		return x.explain(name, err)
	}
	x.links = append(x.links, name)
	x.isLink[name] = true
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
	if err := x.mkdirAll(name, path.Dir(name)); err != nil {
		return err
	}
	if err := x.root.Link(filepath.FromSlash(t), filepath.FromSlash(name)); err != nil {
		return x.explain(name, err)
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
	return nil
}

// ExtractTarGz unpacks a .tar.gz into dest, an existing empty directory.
// On error dest is emptied again.
func ExtractTarGz(r io.Reader, dest string) (err error) {
	defer cleanupOnError(dest, &err)
	zr, err := gzip.NewReader(r)
	if err != nil {
		return malformed("not a valid .tar.gz: %v", eofIsUnexpected(err))
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
			return malformed("not a valid .tar.gz: %v", err)
		}
		if err := x.tarEntry(h, tr); err != nil {
			x.root.Close()
			return err
		}
	}
	// The tar end marker comes before the end of the gzip stream: read to
	// its end so that the gzip checksum and length are checked too.
	n, err := io.Copy(io.Discard, io.LimitReader(zr, maxTrailer+1))
	if err == nil && n > maxTrailer {
		err = fmt.Errorf("more than %d bytes after the end of the tar archive", maxTrailer)
	}
	if err != nil {
		x.root.Close()
		return malformed("not a valid .tar.gz: %v", err)
	}
	return x.finish()
}

// eofIsUnexpected reports an empty stream as what it is: a file cut short.
func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
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
		return x.mkdirAll(name, name)
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
		return malformed("not a valid .zip: %v", err)
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
		return x.mkdirAll(name, name)
	case mode&fs.ModeSymlink != 0:
		rc, err := f.Open()
		if err != nil {
			return unsafeEntry(f.Name, err.Error())
		}
		target, err := io.ReadAll(io.LimitReader(rc, maxSymlinkTargetLen+1))
		rc.Close()
		if err != nil {
			return unsafeEntry(f.Name, "the archive's data is corrupt or does not match its header: "+err.Error())
		}
		return x.symlink(name, string(target))
	case mode.IsRegular():
		rc, err := f.Open()
		if err != nil {
			return unsafeEntry(f.Name, err.Error())
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

// SyncTree fsyncs every regular file and directory under dir (dir too),
// files first, each directory after what it holds. Extraction itself does
// not fsync: the agent unpacks every component it installs and then makes
// all of it durable in this one pass, before anything points at it; the
// publisher only unpacks to inspect.
func SyncTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			dirs = append(dirs, p)
		case d.Type().IsRegular():
			return syncPath(p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syncPath(dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

func syncPath(p string) error {
	// Read-write for files: Windows flushes only handles opened for writing.
	flag := os.O_RDONLY
	if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(p, flag, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", p, err)
	}
	return nil
}

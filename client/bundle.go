package client

// Reading an offline bundle (issue 18; the format is in
// publisher/bundle.go and docs/design.md). A bundle is untrusted bytes
// until the agent's own TUF code has verified it: openBundle only checks
// its shape, with named limits, and never turns an entry's name into a
// file path. The bytes then reach the ordinary refresh, delegation walk
// and streaming download through bundleTransport, an http.RoundTripper
// that answers the agent's /metadata/ and /targets/ requests from the
// bundle file (as net/http's NewFileTransport answers file:// URLs):
// nothing of the online verification is skipped or copied.

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strings"

	"github.com/beckmanconnect/bcupdate/repo"
)

// bundleHost is the host of the URLs the agent's TUF code requests while
// importing a bundle; bundleTransport answers them, nothing goes to the
// network.
const bundleHost = "bundle.invalid"

// Limits on a bundle's metadata entries: the agent's own download limits.
func bundleMetadataLimit(name string) int64 {
	switch {
	case strings.HasSuffix(name, ".root.json"):
		return maxRootSize
	case name == "metadata/timestamp.json":
		return maxTimestampSize
	case strings.HasSuffix(name, ".snapshot.json"):
		return maxSnapshotSize
	}
	return maxTargetsSize
}

// bundleSpan is where an entry's bytes lie in the bundle file.
type bundleSpan struct {
	off, length int64
	sha256      string // metadata entries: the sha256 openBundle checked
}

// bundleFile is an opened bundle whose shape has been checked: the tar
// holds exactly the entries its statement lists, in order, as regular
// files within the file, and every metadata entry matches the sha256 the
// statement gives it. The statement itself is not verified yet
// (bundleSource.session does that against the trusted root).
type bundleFile struct {
	f       *os.File
	path    string
	size    int64
	raw     []byte // bundle.json as read
	stmt    *repo.SignedBundleStatement
	entries map[string]bundleSpan
}

// posReader is the bundle file as tar reads it, keeping track of the
// offset: after tar.Reader.Next the offset is where the entry's data
// starts (archive/tar reads headers block by block and skips data by
// seeking, so it reads nothing ahead).
type posReader struct {
	r   *io.SectionReader // the bundle file, up to its size at open
	pos int64
	err error // the first error reading the file (not its end)
}

func (p *posReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.pos += int64(n)
	if err != nil && err != io.EOF && p.err == nil {
		p.err = err
	}
	return n, err
}

// bundleReadError: the bundle file could not be read (an I/O error, not
// its content): for bcagent import a FILE that cannot be read (exit 2),
// for the drop folder an operational failure, tried again.
type bundleReadError struct {
	path string
	err  error
}

func (e *bundleReadError) Error() string { return "read " + e.path + ": " + e.err.Error() }
func (e *bundleReadError) Unwrap() error { return e.err }

func (p *posReader) Seek(off int64, whence int) (int64, error) {
	n, err := p.r.Seek(off, whence)
	if err == nil {
		p.pos = n
	}
	return n, err
}

// notBundle is a refusal of a file that is not a well-formed bundle: a
// verification failure (exit 3), naming the file and what is wrong.
func notBundle(path, format string, args ...any) error {
	return verifyf("bundle %s: %s; it is refused (a damaged copy, another kind of file, or an attack)", path, fmt.Sprintf(format, args...))
}

// errBundleLink: the path of a bundle is a symbolic link (or, on Windows,
// another reparse point). It is not followed: whoever can write the folder
// the link is in could point it at a FIFO, a device or a file only the
// agent may read.
var errBundleLink = errors.New("a symbolic link, not a regular file")

// notRegularError: the path of a bundle names a directory, a FIFO, a
// device or a socket.
type notRegularError struct{ kind string }

func (e *notRegularError) Error() string { return e.kind + ", not a regular file" }

// openBundleFile opens a bundle once, without following a link and
// without blocking (openBundleNoFollow, per platform), and checks on the
// opened handle that it is a regular file. Everything the import reads
// (the drop folder's sha256 included) is read from this handle and only
// up to fi.Size(), the size it had when it was opened: swapping the name
// for a link, a FIFO or /dev/zero afterwards changes nothing, and a file
// that grows meanwhile is not read past that size. The caller closes it.
func openBundleFile(path string) (*os.File, fs.FileInfo, error) {
	f, err := openBundleNoFollow(path)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, &notRegularError{kind: fileKind(fi.Mode())}
	}
	return f, fi, nil
}

// fileKind names what a non-regular file is.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file (" + m.Type().String() + ")"
}

// isBundleRefusal says whether an error of openBundleFile is a refusal of
// what the path is (a link, not a regular file) rather than a failure to
// read it.
func isBundleRefusal(err error) bool {
	var nr *notRegularError
	return errors.Is(err, errBundleLink) || errors.As(err, &nr)
}

// openBundle checks the shape of the bundle f, opened by openBundleFile
// with size bytes; path names it in messages. It reads f only through a
// section of size bytes, never by name.
func openBundle(f *os.File, path string, size int64) (_ *bundleFile, err error) {
	b := &bundleFile{f: f, path: path, size: size, entries: map[string]bundleSpan{}}
	pr := &posReader{r: io.NewSectionReader(f, 0, size)}
	defer func() {
		if err != nil && pr.err != nil {
			// The file could not be read: that is no verdict on it.
			err = &bundleReadError{path: path, err: pr.err}
		}
	}()
	tr := tar.NewReader(pr)
	hdr, err := tr.Next()
	if err != nil {
		return nil, notBundle(path, "not a bcupdate bundle (not a tar archive: %v)", err)
	}
	if hdr.Name != repo.BundleStatementName {
		return nil, notBundle(path, "not a bcupdate bundle (its first entry is %q, not %s)", hdr.Name, repo.BundleStatementName)
	}
	if err := checkBundleHeader(hdr, pr.pos, b.size); err != nil {
		return nil, notBundle(path, "%s: %v", hdr.Name, err)
	}
	if hdr.Size > repo.MaxBundleStatementSize {
		return nil, notBundle(path, "%s declares %d bytes, more than the limit of %d", hdr.Name, hdr.Size, repo.MaxBundleStatementSize)
	}
	if b.raw, err = io.ReadAll(io.LimitReader(tr, hdr.Size)); err != nil || int64(len(b.raw)) != hdr.Size {
		return nil, notBundle(path, "%s is cut short", hdr.Name)
	}
	if b.stmt, err = repo.ParseBundleStatement(b.raw); err != nil {
		return nil, notBundle(path, "%s: %v", hdr.Name, err)
	}
	if err := checkBundleReleases(b.stmt.Signed.Releases); err != nil {
		return nil, notBundle(path, "%s lists a bad release: %v", hdr.Name, err)
	}
	list := b.stmt.Signed.Entries
	if len(list) == 0 || len(list) >= repo.MaxBundleEntries {
		return nil, notBundle(path, "%s lists %d entries (want 1 to %d)", hdr.Name, len(list), repo.MaxBundleEntries-1)
	}
	for i, want := range list {
		if err := repo.ValidateBundleEntryName(want.Name); err != nil {
			return nil, notBundle(path, "%s lists a bad entry name: %v", hdr.Name, err)
		}
		if _, dup := b.entries[want.Name]; dup {
			return nil, notBundle(path, "%s lists %s twice", hdr.Name, want.Name)
		}
		if sum, err := hex.DecodeString(want.SHA256); err != nil || len(sum) != sha256.Size {
			return nil, notBundle(path, "%s lists %s without a sha256", hdr.Name, want.Name)
		}
		if want.Length < 0 || want.Length > b.size {
			return nil, notBundle(path, "%s declares %d bytes for %s, but the bundle has %d bytes (truncated or forged)", hdr.Name, want.Length, want.Name, b.size)
		}
		if strings.HasPrefix(want.Name, "metadata/") && want.Length > bundleMetadataLimit(want.Name) {
			return nil, notBundle(path, "%s declares %d bytes for %s, more than the limit of %d", hdr.Name, want.Length, want.Name, bundleMetadataLimit(want.Name))
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil, notBundle(path, "truncated: it ends after %d of the %d entries its statement lists (%s is missing)", i, len(list), want.Name)
		}
		if err != nil {
			return nil, notBundle(path, "truncated or damaged before %s: %v", want.Name, err)
		}
		if h.Name != want.Name {
			return nil, notBundle(path, "entry %d is %q where its statement lists %s (a file was swapped, added or renamed)", i+1, h.Name, want.Name)
		}
		if err := checkBundleHeader(h, pr.pos, b.size); err != nil {
			return nil, notBundle(path, "%s: %v", h.Name, err)
		}
		if h.Size != want.Length {
			return nil, notBundle(path, "%s has %d bytes, its statement says %d", h.Name, h.Size, want.Length)
		}
		span := bundleSpan{off: pr.pos, length: h.Size}
		if strings.HasPrefix(want.Name, "metadata/") {
			span.sha256 = want.SHA256
			// Small and bounded: checked now, so a changed metadata file
			// is named before anything else happens.
			data, err := io.ReadAll(io.LimitReader(tr, h.Size))
			if err != nil || int64(len(data)) != h.Size {
				return nil, notBundle(path, "%s is cut short", h.Name)
			}
			if repo.SHA256Hex(data) != want.SHA256 {
				return nil, notBundle(path, "%s does not match the sha256 its statement lists (the file was changed)", h.Name)
			}
		}
		b.entries[want.Name] = span
	}
	h, err := tr.Next()
	switch {
	case err == nil:
		return nil, notBundle(path, "it holds %q, which its statement does not list", h.Name)
	case err != io.EOF:
		return nil, notBundle(path, "damaged after its last entry: %v", err)
	}
	return b, nil
}

// checkBundleReleases checks the releases a statement lists before
// anything shows or compares them: at most as many as a bundle may hold
// entries, each a valid component, platform, version, channel and target
// path. (Which ones are real is known only once the statement's signature
// and the metadata verified: bundleRelease.)
func checkBundleReleases(list []repo.BundleRelease) error {
	if len(list) >= repo.MaxBundleEntries {
		return fmt.Errorf("%d releases, more than a bundle can hold", len(list))
	}
	for _, r := range list {
		if err := repo.ValidateName("component", r.Component); err != nil {
			return err
		}
		if err := repo.ValidatePlatform(r.Platform); err != nil {
			return err
		}
		if _, err := repo.ParseVersion(r.Version); err != nil {
			return fmt.Errorf("%s: version %q: %v", r.Component, r.Version, err)
		}
		if err := repo.ValidateTargetPath(r.Path); err != nil {
			return err
		}
		if r.Channel != "" {
			if err := repo.ValidateName("channel", r.Channel); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkBundleHeader refuses anything but a plain regular file whose data
// lies inside the bundle: links, devices, directories, sparse files, and
// sizes beyond the end of the file.
func checkBundleHeader(h *tar.Header, off, size int64) error {
	if h.Typeflag != tar.TypeReg {
		kind := map[byte]string{tar.TypeSymlink: "a symbolic link", tar.TypeLink: "a hard link", tar.TypeDir: "a directory",
			tar.TypeChar: "a device", tar.TypeBlock: "a device", tar.TypeFifo: "a FIFO", tar.TypeGNUSparse: "a sparse file"}[h.Typeflag]
		if kind == "" {
			kind = fmt.Sprintf("entry type %q", h.Typeflag)
		}
		return fmt.Errorf("%s, not a regular file", kind)
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse") {
			return errors.New("a sparse file, not a regular file")
		}
	}
	if h.Size < 0 || h.Size > size-off {
		return fmt.Errorf("declares %d bytes, more than the %d left in the bundle (truncated, or a forged size)", h.Size, max(size-off, 0))
	}
	return nil
}

// bundleTransport answers GET https://bundle.invalid/metadata/NAME and
// /targets/PATH from the bundle: 200 with the entry's bytes, 404 for
// anything the bundle does not hold. It is the only RoundTripper of an
// import's session. A target is read from the file as it is consumed,
// never whole (the download hashes it against its signed sha256). A
// metadata entry is small and bounded: it is read whole and served only if
// it still has the sha256 the statement lists, the one openBundle checked,
// so go-tuf verifies exactly the bytes the shape check saw, even if
// whoever owns the file rewrote it in place meanwhile.
type bundleTransport struct{ b *bundleFile }

// errBundleChanged: a metadata entry no longer has the bytes openBundle
// checked.
var errBundleChanged = errors.New("changed while it was imported")

func (t *bundleTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	resp := &http.Response{Request: req, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}}
	span, ok := t.b.entries[strings.TrimPrefix(req.URL.Path, "/")]
	if req.URL.Host != bundleHost || req.Method != http.MethodGet || !ok {
		resp.StatusCode, resp.Status = http.StatusNotFound, "404 Not Found"
		resp.Body = io.NopCloser(bytes.NewReader(nil))
		return resp, nil
	}
	sec := io.NewSectionReader(t.b.f, span.off, span.length)
	resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
	resp.ContentLength = span.length
	if span.sha256 != "" {
		data, err := io.ReadAll(sec)
		if err != nil {
			return nil, &bundleReadError{path: t.b.path, err: err}
		}
		if int64(len(data)) != span.length || repo.SHA256Hex(data) != span.sha256 {
			return nil, verifyf("bundle %s: %s %v", t.b.path, req.URL.Path[1:], errBundleChanged)
		}
		resp.Body = io.NopCloser(bytes.NewReader(data))
		return resp, nil
	}
	resp.Body = io.NopCloser(sec)
	return resp, nil
}

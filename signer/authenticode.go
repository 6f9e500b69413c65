package signer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/beckmanconnect/bcupdate/internal/regfile"
	"github.com/beckmanconnect/bcupdate/internal/third_party/relic/authenticode"
)

// Code-signing kinds, as in the release metadata.
const (
	KindCMS          = "cms"
	KindAuthenticode = "authenticode"
)

// Limits for embedded signatures.
const (
	// maxAuthenticodeSize bounds the PE certificate table we read.
	maxAuthenticodeSize = 1 << 20
)

var msiMagic = []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}

// KindFor returns how a file is signed: embedded Authenticode for Windows
// executables and installers, a detached CMS signature for everything else.
func KindFor(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".exe", ".msi", ".dll", ".sys":
		return KindAuthenticode
	}
	return KindCMS
}

// VerifyAuthenticode checks the embedded Authenticode signature of a PE
// (.exe, .dll) or MSI file: the file's digest, the signature, its RFC 3161
// timestamp, and then the same chain, revocation and publisher rules as
// detached signatures.
func (t *Trust) VerifyAuthenticode(f *os.File) (res *Result, err error) {
	// relic's PE and compound-document parsers can panic on hostile input
	// (found by FuzzVerifyAuthenticode): a panic is a refusal, not a crash.
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, verr("%s is malformed (parser failed: %v)", filepath.Base(f.Name()), p)
		}
	}()
	head := make([]byte, 8)
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, verr("%s is not a signed PE or MSI file: %v", f.Name(), err)
	}
	switch {
	case bytes.HasPrefix(head, []byte("MZ")):
		if err := checkPECertTable(f); err != nil {
			return nil, err
		}
		sigs, err := authenticode.VerifyPE(f, false)
		if err != nil {
			return nil, verr("Authenticode signature of %s does not verify (changed after signing, or not signed): %v", filepath.Base(f.Name()), err)
		}
		if len(sigs) != 1 {
			return nil, verr("%s has %d Authenticode signatures; exactly one is accepted", filepath.Base(f.Name()), len(sigs))
		}
		return t.finish(sigs[0].TimestampedSignature, sigs[0].ImageHashFunc, "Authenticode (PE)")
	case bytes.Equal(head, msiMagic):
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if err := checkCFB(f, fi.Size()); err != nil {
			return nil, err
		}
		sig, err := authenticode.VerifyMSI(f, false)
		if err != nil {
			return nil, verr("Authenticode signature of %s does not verify (changed after signing, or not signed): %v", filepath.Base(f.Name()), err)
		}
		return t.finish(sig.TimestampedSignature, sig.HashFunc, "Authenticode (MSI)")
	default:
		return nil, verr("%s is neither a PE nor an MSI file; Authenticode applies to .exe and .msi only", filepath.Base(f.Name()))
	}
}

// checkPECertTable reads just enough of the PE headers to bound the
// certificate table before relic allocates it: a hostile header could
// otherwise ask for gigabytes.
func checkPECertTable(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	rd := func(off int64, n int) ([]byte, error) {
		if off < 0 || off+int64(n) > size {
			return nil, verr("%s: truncated PE header", filepath.Base(f.Name()))
		}
		b := make([]byte, n)
		if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
			return nil, err
		}
		return b, nil
	}
	b, err := rd(0x3c, 4)
	if err != nil {
		return err
	}
	pe := int64(binary.LittleEndian.Uint32(b))
	hdr, err := rd(pe, 24)
	if err != nil {
		return err
	}
	if !bytes.Equal(hdr[:4], []byte("PE\x00\x00")) {
		return verr("%s: not a PE file (no PE signature)", filepath.Base(f.Name()))
	}
	optSize := int64(binary.LittleEndian.Uint16(hdr[20:22]))
	opt := pe + 24
	magic, err := rd(opt, 2)
	if err != nil {
		return err
	}
	var dirs int64
	switch binary.LittleEndian.Uint16(magic) {
	case 0x10b:
		dirs = opt + 96
	case 0x20b:
		dirs = opt + 112
	default:
		return verr("%s: unknown PE optional header", filepath.Base(f.Name()))
	}
	sec := dirs + 4*8 // IMAGE_DIRECTORY_ENTRY_SECURITY
	if sec+8 > opt+optSize {
		return verr("%s is not signed (no certificate table)", filepath.Base(f.Name()))
	}
	d, err := rd(sec, 8)
	if err != nil {
		return err
	}
	start, n := int64(binary.LittleEndian.Uint32(d[:4])), int64(binary.LittleEndian.Uint32(d[4:]))
	switch {
	case n == 0:
		return verr("%s is not signed (empty certificate table)", filepath.Base(f.Name()))
	case n > maxAuthenticodeSize:
		return verr("%s: certificate table of %d bytes is larger than the limit %d", filepath.Base(f.Name()), n, maxAuthenticodeSize)
	case start+n > size:
		return verr("%s: certificate table points past the end of the file", filepath.Base(f.Name()))
	}
	return nil
}

// VerifyFile checks a file's code signature by kind: Authenticode (sig is
// ignored) or detached CMS (sig is the .p7s).
func (t *Trust) VerifyFile(path, kind string, sig []byte) (*Result, error) {
	f, _, err := regfile.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	switch kind {
	case KindAuthenticode:
		return t.VerifyAuthenticode(f)
	case KindCMS:
		return t.VerifyDetached(f, sig)
	default:
		return nil, fmt.Errorf("code-signing kind %q is not supported (want cms or authenticode)", kind)
	}
}

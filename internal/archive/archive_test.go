package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type entry struct {
	name     string
	typ      byte // tar type flag
	body     string
	linkname string
	mode     int64
}

func makeTarGz(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: mode, Linkname: e.linkname, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func makeZip(t testing.TB, entries []entry) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "a.zip")
	f, _ := os.Create(p)
	zw := zip.NewWriter(f)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		switch e.typ {
		case tar.TypeDir:
			h.SetMode(fs.ModeDir | 0o755)
		case tar.TypeSymlink:
			h.SetMode(fs.ModeSymlink | 0o777)
		default:
			h.SetMode(0o644)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeSymlink {
			w.Write([]byte(e.linkname))
		} else {
			w.Write([]byte(e.body))
		}
	}
	zw.Close()
	f.Close()
	return p
}

var archiveCases = []struct {
	name    string
	entries []entry
	ok      bool
}{
	{"plain", []entry{{name: "bin/", typ: tar.TypeDir}, {name: "bin/nc", typ: tar.TypeReg, body: "#!/bin/sh\n", mode: 0o755}, {name: "VERSION", typ: tar.TypeReg, body: "1"}}, true},
	{"inner symlink", []entry{{name: "lib/libx.so.1", typ: tar.TypeReg, body: "x"}, {name: "lib/libx.so", typ: tar.TypeSymlink, linkname: "libx.so.1"}, {name: "bin/x", typ: tar.TypeSymlink, linkname: "../lib/libx.so"}}, true},
	{"hard link inside", []entry{{name: "a", typ: tar.TypeReg, body: "x"}, {name: "b", typ: tar.TypeLink, linkname: "a"}}, true},
	{"dot-dot entry", []entry{{name: "../evil", typ: tar.TypeReg, body: "x"}}, false},
	{"dot-dot in the middle", []entry{{name: "a/../../evil", typ: tar.TypeReg, body: "x"}}, false},
	{"absolute entry", []entry{{name: "/tmp/evil", typ: tar.TypeReg, body: "x"}}, false},
	{"backslash entry", []entry{{name: `..\evil`, typ: tar.TypeReg, body: "x"}}, false},
	{"symlink to absolute", []entry{{name: "etc", typ: tar.TypeSymlink, linkname: "/etc"}}, false},
	{"symlink escaping", []entry{{name: "up", typ: tar.TypeSymlink, linkname: "../../.."}}, false},
	{"write through escaping symlink", []entry{{name: "d", typ: tar.TypeSymlink, linkname: ".."}, {name: "d/evil", typ: tar.TypeReg, body: "x"}}, false},
	{"symlink chain escaping", []entry{{name: "x", typ: tar.TypeSymlink, linkname: "."}, {name: "q", typ: tar.TypeSymlink, linkname: "x/.."}}, false},
	{"dangling symlink", []entry{{name: "d", typ: tar.TypeSymlink, linkname: "nothere"}}, false},
	{"hard link escaping", []entry{{name: "h", typ: tar.TypeLink, linkname: "../../etc/passwd"}}, false},
	{"hard link to unknown", []entry{{name: "h", typ: tar.TypeLink, linkname: "nothere"}}, false},
	{"device", []entry{{name: "dev", typ: tar.TypeChar}}, false},
	{"duplicate file", []entry{{name: "a", typ: tar.TypeReg, body: "1"}, {name: "a", typ: tar.TypeReg, body: "2"}}, false},
}

func checkConfined(t *testing.T, parent, dest string) {
	t.Helper()
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("something was written beside the install directory: %v", names)
	}
	base, _ := filepath.EvalSymlinks(dest)
	filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Errorf("dangling symlink %s left behind", p)
			return nil
		}
		if rel, _ := filepath.Rel(base, real); strings.HasPrefix(rel, "..") {
			t.Errorf("symlink %s resolves outside: %s", p, real)
		}
		return nil
	})
}

func TestExtract(t *testing.T) {
	for _, tc := range archiveCases {
		for _, kind := range []string{"tar.gz", "zip"} {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				if kind == "zip" && (tc.entries[0].typ == tar.TypeLink || tc.entries[0].typ == tar.TypeChar || tc.name == "hard link inside") {
					t.Skip("zip has no hard links or devices")
				}
				parent := t.TempDir()
				dest := filepath.Join(parent, "install")
				os.Mkdir(dest, 0o755)
				var err error
				if kind == "zip" {
					err = ExtractZip(makeZip(t, tc.entries), dest)
				} else {
					err = ExtractTarGz(bytes.NewReader(makeTarGz(t, tc.entries)), dest)
				}
				if tc.ok && err != nil {
					t.Fatalf("want success, got %v", err)
				}
				if !tc.ok {
					if err == nil {
						t.Fatal("unsafe archive was extracted")
					}
					if !errors.Is(err, ErrUnsafe) {
						t.Errorf("error %v is not ErrUnsafe", err)
					}
				}
				checkConfined(t, parent, dest)
			})
		}
	}
}

// TestMalformed: streams that are not what they claim, and entries that
// reach out through a chain of links, are refused as ErrUnsafe with the
// entry or the stream named, and nothing is left in the destination.
func TestMalformed(t *testing.T) {
	good := makeTarGz(t, archiveCases[0].entries)
	// A tar whose header says 100 bytes, followed by 10.
	var lying bytes.Buffer
	zw := gzip.NewWriter(&lying)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 100})
	tw.Write([]byte("0123456789")) // and the stream ends
	zw.Close()
	// A gzip whose trailer checksum is wrong.
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-8] ^= 0xff
	// A zip whose central directory says fewer bytes than the entry holds.
	zipLying := func() string {
		p := makeZip(t, []entry{{name: "a", typ: tar.TypeReg, body: strings.Repeat("x", 1000)}})
		b, _ := os.ReadFile(p)
		// central directory header: uncompressed size at offset 24
		i := bytes.LastIndex(b, []byte("PK\x01\x02"))
		b[i+24] = 10
		b[i+25], b[i+26], b[i+27] = 0, 0, 0
		os.WriteFile(p, b, 0o644)
		return p
	}()
	emptyZip := filepath.Join(t.TempDir(), "empty.zip")
	os.WriteFile(emptyZip, nil, 0o644)
	chain := makeTarGz(t, []entry{
		{name: "x", typ: tar.TypeSymlink, linkname: "."},
		{name: "q", typ: tar.TypeSymlink, linkname: "x/.."},
		{name: "q/evil", typ: tar.TypeReg, body: "x"},
	})
	cases := []struct {
		name, kind string
		data       []byte
		zip        string
		want       string
	}{
		{"empty tar.gz", "tar.gz", nil, "", "not a valid .tar.gz: unexpected EOF"},
		{"truncated tar.gz", "tar.gz", good[:len(good)/2], "", "unexpected EOF"},
		{"not gzip", "tar.gz", []byte("hello, this is text"), "", "not a valid .tar.gz"},
		{"bad gzip checksum", "tar.gz", badCRC, "", "not a valid .tar.gz: gzip: invalid checksum"},
		{"tar size lies", "tar.gz", lying.Bytes(), "", `archive entry "big": the archive's data is corrupt`},
		{"write through a link chain", "tar.gz", chain, "", `archive entry "q/evil": goes through the symlink q`},
		{"empty zip", "zip", nil, emptyZip, "not a valid .zip"},
		{"zip size lies", "zip", nil, zipLying, `archive entry "a"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dest := filepath.Join(parent, "install")
			os.Mkdir(dest, 0o755)
			var err error
			if tc.kind == "zip" {
				err = ExtractZip(tc.zip, dest)
			} else {
				err = ExtractTarGz(bytes.NewReader(tc.data), dest)
			}
			if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want ErrUnsafe %q, got %v", tc.want, err)
			}
			var ae *Error
			if !errors.As(err, &ae) {
				t.Fatalf("%v is not an *Error", err)
			}
			if left, _ := os.ReadDir(dest); len(left) != 0 {
				t.Fatalf("a refused archive left %d entries", len(left))
			}
			checkConfined(t, parent, dest)
		})
	}
}

func TestKind(t *testing.T) {
	for name, want := range map[string]string{"a.tar.gz": "tar.gz", "A.TGZ": "tar.gz", "x.Zip": "zip", "setup.exe": "", "a.tar": ""} {
		if got := Kind(name); got != want {
			t.Errorf("Kind(%q) = %q, want %q", name, got, want)
		}
	}
}

// FuzzExtractTarGz: whatever the archive, nothing lands outside the
// destination and no symlink left inside resolves outside it.
func FuzzExtractTarGz(f *testing.F) {
	for _, tc := range archiveCases {
		f.Add(makeTarGz(f, tc.entries))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dest := filepath.Join(parent, "install")
		os.Mkdir(dest, 0o755)
		_ = ExtractTarGz(bytes.NewReader(data), dest)
		checkConfined(t, parent, dest)
	})
}

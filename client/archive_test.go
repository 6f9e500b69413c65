package client

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
					if !errors.Is(err, ErrUnsafeArchive) {
						t.Errorf("error %v is not ErrUnsafeArchive", err)
					}
				}
				checkConfined(t, parent, dest)
			})
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

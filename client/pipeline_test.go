package client

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestPipelineWritesAndHashesInOrder(t *testing.T) {
	data := make([]byte, 9<<20+12345)
	rand.Read(data)
	var file bytes.Buffer
	h := sha256.New()
	p := newPipeline(&file, h)
	// Writes smaller and larger than a chunk, as a network body gives them.
	for rest, i := data, 0; len(rest) > 0; i++ {
		n := []int{1, 4096, 3 << 20, 65536, 1 << 20, 777}[i%6]
		if n > len(rest) {
			n = len(rest)
		}
		if m, err := p.Write(rest[:n]); err != nil || m != n {
			t.Fatalf("Write: %d, %v", m, err)
		}
		rest = rest[n:]
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	if !bytes.Equal(file.Bytes(), data) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("the file or the hash differs from what was written")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

type failingWriter struct{ after, n int }

func (f *failingWriter) Write(b []byte) (int, error) {
	if f.n+len(b) > f.after {
		return 0, errors.New("disk full")
	}
	f.n += len(b)
	return len(b), nil
}

func TestPipelineStopsAtTheFirstWriteError(t *testing.T) {
	p := newPipeline(&failingWriter{after: 3 << 20}, sha256.New())
	defer p.Close()
	chunk := make([]byte, 1<<20)
	var err error
	for i := 0; i < 64 && err == nil; i++ {
		_, err = p.Write(chunk)
	}
	if ferr := p.Flush(); ferr == nil || ferr.Error() != "disk full" {
		t.Fatalf("Flush after a write error: %v", ferr)
	}
	if _, err := p.Write(chunk); err == nil {
		t.Fatal("a pipeline that failed accepted more bytes")
	}
}

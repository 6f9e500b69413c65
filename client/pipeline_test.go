package client

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
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

// oddReader returns data in reads of uneven sizes, then err.
type oddReader struct {
	data []byte
	i    int
	err  error
}

func (r *oddReader) Read(b []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := min(len(b), []int{1, 4096, 3 << 20, 65536, 777}[r.i%5], len(r.data))
	r.i++
	copy(b, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func TestPipelineReadFrom(t *testing.T) {
	data := make([]byte, 5<<20+321)
	rand.Read(data)
	for _, tail := range []error{io.EOF, errors.New("connection reset")} {
		var file bytes.Buffer
		h := sha256.New()
		p := newPipeline(&file, h)
		n, err := p.ReadFrom(&oddReader{data: data, err: tail})
		if tail == io.EOF && err != nil || tail != io.EOF && err != tail {
			t.Fatalf("ReadFrom: %v, want %v", err, tail)
		}
		if n != int64(len(data)) {
			t.Fatalf("ReadFrom accepted %d of %d bytes", n, len(data))
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(data)
		if !bytes.Equal(file.Bytes(), data) || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatal("the file or the hash differs from what was read")
		}
	}
}

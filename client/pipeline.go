package client

import (
	"io"
	"sync"
	"sync/atomic"
)

// Pipeline depth and chunk size: at most pipelineChunks chunks of
// pipelineChunk bytes are in flight, so memory stays flat. Chunks small
// enough to stay in a core's cache between the network read that fills
// one, the disk write and the hash measured fastest (docs/performance.md,
// section 4): 256 KiB beat 1 MiB, and 4 MiB was slower still.
const (
	pipelineChunk  = 256 << 10
	pipelineChunks = 8
)

// pipeline takes downloaded bytes off the network reader and writes them
// to the file and to the hash on two goroutines of their own, so a download
// runs as fast as the slowest of network, hash and disk rather than their
// sum. Write copies into a free chunk and returns; it blocks only when
// every chunk is in flight. Flush waits until everything accepted is both
// written and hashed and returns the first write error; the hash may be
// read only after Flush. After a write error the pipeline accepts nothing
// more (the caller must not go on: what the file holds no longer matches
// what was accepted). Close stops the goroutines.
type pipeline struct {
	free      chan []byte
	toFile    chan pipeItem
	toHash    chan pipeItem
	done      sync.WaitGroup
	mu        sync.Mutex
	err       error
	closeOnce sync.Once
	made      int // chunks allocated so far (at most pipelineChunks)
}

// chunk is a free chunk: one returned by the workers, or a new one while
// fewer than pipelineChunks exist (a small download needs only one), or,
// when all are in flight, the next to come back. Called only by the
// goroutine that feeds the pipeline.
func (p *pipeline) chunk() []byte {
	select {
	case buf := <-p.free:
		return buf
	default:
	}
	if p.made < pipelineChunks {
		p.made++
		return make([]byte, pipelineChunk)
	}
	return <-p.free
}

// pipeChunk is read by both workers; the one that finishes last returns
// its buffer to the free list.
type pipeChunk struct {
	buf  []byte
	refs atomic.Int32
}

// pipeItem is a chunk to process, or (chunk nil) a flush marker.
type pipeItem struct {
	c     *pipeChunk
	flush *sync.WaitGroup
}

func newPipeline(file, hash io.Writer) *pipeline {
	p := &pipeline{
		free:   make(chan []byte, pipelineChunks),
		toFile: make(chan pipeItem, pipelineChunks+1),
		toHash: make(chan pipeItem, pipelineChunks+1),
	}
	p.done.Add(2)
	go p.run(p.toFile, func(b []byte) error {
		_, err := file.Write(b)
		return err
	})
	go p.run(p.toHash, func(b []byte) error {
		hash.Write(b) // hash.Hash never fails
		return nil
	})
	return p
}

func (p *pipeline) run(in chan pipeItem, do func([]byte) error) {
	defer p.done.Done()
	for it := range in {
		if it.flush != nil {
			it.flush.Done()
			continue
		}
		if p.failed() == nil {
			if err := do(it.c.buf); err != nil {
				p.fail(err)
			}
		}
		if it.c.refs.Add(-1) == 0 {
			p.free <- it.c.buf[:cap(it.c.buf)]
		}
	}
}

func (p *pipeline) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

func (p *pipeline) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *pipeline) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		if err := p.failed(); err != nil {
			return n, err
		}
		buf := p.chunk()
		m := copy(buf[:cap(buf)], b)
		p.send(buf[:m])
		n += m
		b = b[m:]
	}
	return n, nil
}

// send hands a filled chunk to both workers.
func (p *pipeline) send(buf []byte) {
	c := &pipeChunk{buf: buf}
	c.refs.Store(2)
	p.toFile <- pipeItem{c: c}
	p.toHash <- pipeItem{c: c}
}

// ReadFrom reads r to its end straight into free chunks, without the copy
// that Write makes from the caller's buffer, each chunk filled before it
// is handed on. It returns the bytes accepted (those read before an error
// included: they are written and hashed like any others).
func (p *pipeline) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	for {
		if err := p.failed(); err != nil {
			return n, err
		}
		buf := p.chunk()
		buf = buf[:cap(buf)]
		m := 0
		var err error
		for m < len(buf) && err == nil {
			var k int
			k, err = r.Read(buf[m:])
			m += k
		}
		if m > 0 {
			p.send(buf[:m])
			n += int64(m)
		} else {
			p.free <- buf
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// Flush waits until every accepted byte is written and hashed.
func (p *pipeline) Flush() error {
	var wg sync.WaitGroup
	wg.Add(2)
	p.toFile <- pipeItem{flush: &wg}
	p.toHash <- pipeItem{flush: &wg}
	wg.Wait()
	return p.failed()
}

// Close flushes and stops the pipeline; it may be called more than once.
func (p *pipeline) Close() error {
	var err error
	p.closeOnce.Do(func() {
		err = p.Flush()
		close(p.toFile)
		close(p.toHash)
		p.done.Wait()
	})
	return err
}

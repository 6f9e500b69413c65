package signer

import (
	"bytes"
	"encoding/binary"
	"io"
)

// checkCFB validates the structure of a compound file (MSI) before relic's
// parser sees it: relic trusts header counts for allocations and follows
// sector chains and directory trees without cycle checks, so a hostile file
// could exhaust memory or loop forever (found by FuzzVerifyAuthenticode).
// Every chain must stay in range, end, and not repeat a sector; the
// directory tree must be acyclic. All work is bounded by the file size.
func checkCFB(r io.ReaderAt, size int64) error {
	c := &cfbReader{r: r, size: size}
	for _, check := range []func() error{c.header, c.readFAT, c.readDirectory, c.readMiniFAT, c.checkMiniStream, c.checkTree} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// cfbReader holds what the checks of checkCFB have read so far; each
// method is one check, run in the order checkCFB lists them.
type cfbReader struct {
	r    io.ReaderAt
	size int64

	// From the header.
	hdr                 []byte
	ss                  int64 // sector size
	first               int64 // offset of sector 0
	nsec                int64 // sectors in the file
	per                 int   // 32-bit entries a sector
	nFAT, cutoff        int64
	firstDir, firstMini int64
	nMini               int64
	firstDIFAT, nDIFAT  int64

	fat      []int64
	mini     []int64
	dir      []byte
	nEnt     int
	rootSize int64
	visited  []bool
}

func cfbBad(format string, args ...any) error {
	return verr("malformed MSI (compound file): "+format, args...)
}

// cfbID reads a little-endian sector number (negative: a special value).
func cfbID(b []byte, off int) int64 { return int64(int32(binary.LittleEndian.Uint32(b[off:]))) }

// header reads and checks the 512-byte header and its table sizes.
func (c *cfbReader) header() error {
	hdr := make([]byte, 512)
	if _, err := c.r.ReadAt(hdr, 0); err != nil {
		return cfbBad("short header")
	}
	if !bytes.Equal(hdr[:8], msiMagic) || binary.LittleEndian.Uint16(hdr[28:]) != 0xfffe {
		return cfbBad("bad signature or byte order")
	}
	shift := binary.LittleEndian.Uint16(hdr[30:])
	if (shift != 9 && shift != 12) || binary.LittleEndian.Uint16(hdr[32:]) != 6 {
		return cfbBad("sector sizes 2^%d/2^%d are not 512/4096 and 64", shift, binary.LittleEndian.Uint16(hdr[32:]))
	}
	c.hdr = hdr
	c.ss = int64(1) << shift
	c.first = max(c.ss, 512)
	if c.size < c.first {
		return cfbBad("no sectors")
	}
	c.nsec = (c.size - c.first + c.ss - 1) / c.ss
	c.nFAT, c.firstDir, c.cutoff = int64(binary.LittleEndian.Uint32(hdr[44:])), cfbID(hdr, 48), int64(binary.LittleEndian.Uint32(hdr[56:]))
	c.firstMini, c.nMini = cfbID(hdr, 60), int64(binary.LittleEndian.Uint32(hdr[64:]))
	c.firstDIFAT, c.nDIFAT = cfbID(hdr, 68), int64(binary.LittleEndian.Uint32(hdr[72:]))
	if c.nFAT > c.nsec || c.nMini > c.nsec || c.nDIFAT > c.nsec {
		return cfbBad("table sizes exceed the file")
	}
	c.per = int(c.ss / 4)
	return nil
}

// sector reads sector id, which must be in the file.
func (c *cfbReader) sector(id int64) ([]byte, error) {
	if id < 0 || id >= c.nsec {
		return nil, cfbBad("sector %d out of range", id)
	}
	b := make([]byte, c.ss)
	n, err := c.r.ReadAt(b, c.first+id*c.ss)
	if err != nil && !(err == io.EOF && n > 0) {
		return nil, cfbBad("sector %d unreadable", id)
	}
	return b, nil
}

// fatSectors reads the DIFAT: the FAT's sector list, 109 entries in the
// header and then a chain of DIFAT sectors.
func (c *cfbReader) fatSectors() ([]int64, error) {
	var out []int64
	for i := 0; i < 109; i++ {
		if id := cfbID(c.hdr, 76+4*i); id >= 0 {
			out = append(out, id)
		}
	}
	seen := map[int64]bool{}
	for id, n := c.firstDIFAT, int64(0); id >= 0; n++ {
		if seen[id] || n > c.nDIFAT+1 {
			return nil, cfbBad("DIFAT chain loops")
		}
		seen[id] = true
		b, err := c.sector(id)
		if err != nil {
			return nil, err
		}
		for i := 0; i < c.per-1; i++ {
			if v := cfbID(b, 4*i); v >= 0 {
				out = append(out, v)
			}
		}
		id = cfbID(b, 4*(c.per-1))
	}
	return out, nil
}

// readFAT reads the FAT from the sectors the DIFAT lists.
func (c *cfbReader) readFAT() error {
	fatSectors, err := c.fatSectors()
	if err != nil {
		return err
	}
	if int64(len(fatSectors)) > c.nsec {
		return cfbBad("FAT larger than the file")
	}
	c.fat, err = c.table(fatSectors)
	return err
}

// table reads the sector numbers the sectors secs hold (FAT, mini FAT).
func (c *cfbReader) table(secs []int64) ([]int64, error) {
	out := make([]int64, 0, len(secs)*c.per)
	for _, id := range secs {
		b, err := c.sector(id)
		if err != nil {
			return nil, err
		}
		for i := 0; i < c.per; i++ {
			out = append(out, cfbID(b, 4*i))
		}
	}
	return out, nil
}

// chain walks a FAT-style chain and returns its sectors.
func (c *cfbReader) chain(table []int64, start, limit int64, what string) ([]int64, error) {
	var out []int64
	visited := map[int64]bool{}
	for id := start; id != -2; {
		if id < 0 || id >= int64(len(table)) || id >= limit {
			return nil, cfbBad("%s chain points at sector %d, out of range", what, id)
		}
		if visited[id] {
			return nil, cfbBad("%s chain loops at sector %d", what, id)
		}
		visited[id] = true
		out = append(out, id)
		id = table[id]
	}
	return out, nil
}

// readDirectory reads the directory stream, which must start with the root
// entry.
func (c *cfbReader) readDirectory() error {
	dirSecs, err := c.chain(c.fat, c.firstDir, c.nsec, "directory")
	if err != nil {
		return err
	}
	for _, id := range dirSecs {
		b, err := c.sector(id)
		if err != nil {
			return err
		}
		c.dir = append(c.dir, b...)
	}
	c.nEnt = len(c.dir) / 128
	if c.nEnt == 0 || c.entry(0)[66] != 5 {
		return cfbBad("no root entry")
	}
	return nil
}

// entry is directory entry i (128 bytes).
func (c *cfbReader) entry(i int) []byte { return c.dir[128*i : 128*(i+1)] }

// readMiniFAT reads the mini FAT, if there is one.
func (c *cfbReader) readMiniFAT() error {
	if c.firstMini < 0 {
		return nil
	}
	miniSecs, err := c.chain(c.fat, c.firstMini, c.nsec, "mini FAT")
	if err != nil {
		return err
	}
	c.mini, err = c.table(miniSecs)
	return err
}

// checkMiniStream checks the root entry's mini stream: its size, and its
// chain when it has any.
func (c *cfbReader) checkMiniStream() error {
	root := c.entry(0)
	c.rootSize = int64(binary.LittleEndian.Uint32(root[120:]))
	if c.rootSize > c.size {
		return cfbBad("mini stream larger than the file")
	}
	if _, err := c.chain(c.fat, cfbID(root, 116), c.nsec, "mini stream"); err != nil && c.rootSize > 0 {
		return err
	}
	return nil
}

// checkTree walks the directory tree from the root's child (no entry
// twice) and checks each stream's chain.
func (c *cfbReader) checkTree() error {
	c.visited = make([]bool, c.nEnt)
	c.visited[0] = true
	return c.walk(cfbID(c.entry(0), 76), 1)
}

func (c *cfbReader) walk(i int64, depth int) error {
	if i == -1 || i == 0xffffffff {
		return nil
	}
	if i < 0 || i >= int64(c.nEnt) || c.visited[i] || depth > c.nEnt {
		return cfbBad("directory tree is cyclic or out of range at entry %d", i)
	}
	c.visited[i] = true
	e := c.entry(int(i))
	if e[66] == 2 {
		if err := c.checkStream(e); err != nil {
			return err
		}
	}
	for _, off := range []int{68, 72, 76} {
		if err := c.walk(cfbID(e, off), depth+1); err != nil {
			return err
		}
	}
	return nil
}

// checkStream checks a stream entry's size and chain: in the mini stream
// below the cutoff, else in the FAT.
func (c *cfbReader) checkStream(e []byte) error {
	sz := int64(binary.LittleEndian.Uint32(e[120:]))
	if sz > c.size {
		return cfbBad("stream larger than the file")
	}
	if sz == 0 {
		return nil
	}
	if sz < c.cutoff {
		_, err := c.chain(c.mini, cfbID(e, 116), (c.rootSize+63)/64, "mini stream")
		return err
	}
	_, err := c.chain(c.fat, cfbID(e, 116), c.nsec, "stream")
	return err
}

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
	bad := func(format string, args ...any) error {
		return verr("malformed MSI (compound file): "+format, args...)
	}
	hdr := make([]byte, 512)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return bad("short header")
	}
	if !bytes.Equal(hdr[:8], msiMagic) || binary.LittleEndian.Uint16(hdr[28:]) != 0xfffe {
		return bad("bad signature or byte order")
	}
	shift := binary.LittleEndian.Uint16(hdr[30:])
	if (shift != 9 && shift != 12) || binary.LittleEndian.Uint16(hdr[32:]) != 6 {
		return bad("sector sizes 2^%d/2^%d are not 512/4096 and 64", shift, binary.LittleEndian.Uint16(hdr[32:]))
	}
	ss := int64(1) << shift
	first := max(ss, 512)
	if size < first {
		return bad("no sectors")
	}
	nsec := (size - first + ss - 1) / ss
	u32 := func(b []byte, off int) int64 { return int64(int32(binary.LittleEndian.Uint32(b[off:]))) }
	nFAT, firstDir, cutoff := int64(binary.LittleEndian.Uint32(hdr[44:])), u32(hdr, 48), int64(binary.LittleEndian.Uint32(hdr[56:]))
	firstMini, nMini := u32(hdr, 60), int64(binary.LittleEndian.Uint32(hdr[64:]))
	firstDIFAT, nDIFAT := u32(hdr, 68), int64(binary.LittleEndian.Uint32(hdr[72:]))
	if nFAT > nsec || nMini > nsec || nDIFAT > nsec {
		return bad("table sizes exceed the file")
	}
	per := int(ss / 4)
	sector := func(id int64) ([]byte, error) {
		if id < 0 || id >= nsec {
			return nil, bad("sector %d out of range", id)
		}
		b := make([]byte, ss)
		n, err := r.ReadAt(b, first+id*ss)
		if err != nil && !(err == io.EOF && n > 0) {
			return nil, bad("sector %d unreadable", id)
		}
		return b, nil
	}
	// DIFAT: the FAT's sector list.
	var fatSectors []int64
	for i := 0; i < 109; i++ {
		if id := u32(hdr, 76+4*i); id >= 0 {
			fatSectors = append(fatSectors, id)
		}
	}
	seen := map[int64]bool{}
	for id, n := firstDIFAT, int64(0); id >= 0; n++ {
		if seen[id] || n > nDIFAT+1 {
			return bad("DIFAT chain loops")
		}
		seen[id] = true
		b, err := sector(id)
		if err != nil {
			return err
		}
		for i := 0; i < per-1; i++ {
			if v := u32(b, 4*i); v >= 0 {
				fatSectors = append(fatSectors, v)
			}
		}
		id = u32(b, 4*(per-1))
	}
	if int64(len(fatSectors)) > nsec {
		return bad("FAT larger than the file")
	}
	fat := make([]int64, 0, len(fatSectors)*per)
	for _, id := range fatSectors {
		b, err := sector(id)
		if err != nil {
			return err
		}
		for i := 0; i < per; i++ {
			fat = append(fat, u32(b, 4*i))
		}
	}
	// chain walks a FAT-style chain and returns its sectors.
	chain := func(table []int64, start, limit int64, what string) ([]int64, error) {
		var out []int64
		visited := map[int64]bool{}
		for id := start; id != -2; {
			if id < 0 || id >= int64(len(table)) || id >= limit {
				return nil, bad("%s chain points at sector %d, out of range", what, id)
			}
			if visited[id] {
				return nil, bad("%s chain loops at sector %d", what, id)
			}
			visited[id] = true
			out = append(out, id)
			id = table[id]
		}
		return out, nil
	}
	dirSecs, err := chain(fat, firstDir, nsec, "directory")
	if err != nil {
		return err
	}
	var dir []byte
	for _, id := range dirSecs {
		b, err := sector(id)
		if err != nil {
			return err
		}
		dir = append(dir, b...)
	}
	nEnt := len(dir) / 128
	ent := func(i int) []byte { return dir[128*i : 128*(i+1)] }
	if nEnt == 0 || ent(0)[66] != 5 {
		return bad("no root entry")
	}
	var mini []int64
	if firstMini >= 0 {
		miniSecs, err := chain(fat, firstMini, nsec, "mini FAT")
		if err != nil {
			return err
		}
		for _, id := range miniSecs {
			b, err := sector(id)
			if err != nil {
				return err
			}
			for i := 0; i < per; i++ {
				mini = append(mini, u32(b, 4*i))
			}
		}
	}
	rootSize := int64(binary.LittleEndian.Uint32(ent(0)[120:]))
	if rootSize > size {
		return bad("mini stream larger than the file")
	}
	if _, err := chain(fat, u32(ent(0), 116), nsec, "mini stream"); err != nil && rootSize > 0 {
		return err
	}
	// Walk the directory tree from the root's child; no entry twice.
	visited := make([]bool, nEnt)
	var walk func(i int64, depth int) error
	walk = func(i int64, depth int) error {
		if i == -1 || i == 0xffffffff {
			return nil
		}
		if i < 0 || i >= int64(nEnt) || visited[i] || depth > nEnt {
			return bad("directory tree is cyclic or out of range at entry %d", i)
		}
		visited[i] = true
		e := ent(int(i))
		if e[66] == 2 {
			sz := int64(binary.LittleEndian.Uint32(e[120:]))
			if sz > size {
				return bad("stream larger than the file")
			}
			if sz > 0 {
				if sz < cutoff {
					if _, err := chain(mini, u32(e, 116), (rootSize+63)/64, "mini stream"); err != nil {
						return err
					}
				} else if _, err := chain(fat, u32(e, 116), nsec, "stream"); err != nil {
					return err
				}
			}
		}
		for _, off := range []int{68, 72, 76} {
			if err := walk(u32(e, off), depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	visited[0] = true
	if err := walk(u32(ent(0), 76), 1); err != nil {
		return err
	}
	return nil
}

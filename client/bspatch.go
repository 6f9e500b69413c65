package client

import (
	"bytes"
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// bspatch applies a bsdiff 4 patch ("BSDIFF40": a header, then bzip2
// streams of control triples, diff bytes and extra bytes) to old, writing
// the result to out as it goes. newSize must equal the size the patch
// declares; every control value is checked, so a hostile patch can neither
// read outside old nor write more than newSize bytes.
func bspatch(old io.ReaderAt, oldSize int64, patch io.ReaderAt, patchSize int64, out io.Writer, newSize int64) error {
	hdr := make([]byte, 32)
	if _, err := patch.ReadAt(hdr, 0); err != nil {
		return fmt.Errorf("patch header: %w", err)
	}
	if !bytes.Equal(hdr[:8], []byte("BSDIFF40")) {
		return errors.New("not a bsdiff 4 patch")
	}
	ctrlLen, diffLen, size := offtin(hdr[8:]), offtin(hdr[16:]), offtin(hdr[24:])
	if ctrlLen < 0 || diffLen < 0 || size != newSize || 32+ctrlLen+diffLen > patchSize {
		return fmt.Errorf("patch header does not fit (declares %d bytes, want %d)", size, newSize)
	}
	ctrl := bzip2.NewReader(io.NewSectionReader(patch, 32, ctrlLen))
	diff := bzip2.NewReader(io.NewSectionReader(patch, 32+ctrlLen, diffLen))
	extra := bzip2.NewReader(io.NewSectionReader(patch, 32+ctrlLen+diffLen, patchSize-32-ctrlLen-diffLen))
	buf := make([]byte, 64<<10)
	oldBuf := make([]byte, 64<<10)
	var oldPos, newPos int64
	triple := make([]byte, 24)
	for newPos < newSize {
		if _, err := io.ReadFull(ctrl, triple); err != nil {
			return fmt.Errorf("patch control: %w", err)
		}
		x, y, z := offtin(triple), offtin(triple[8:]), offtin(triple[16:])
		if x < 0 || y < 0 || newPos+x+y > newSize {
			return errors.New("patch control block is corrupt")
		}
		// x bytes: diff added to old.
		for done := int64(0); done < x; {
			n := min(int64(len(buf)), x-done)
			if _, err := io.ReadFull(diff, buf[:n]); err != nil {
				return fmt.Errorf("patch diff: %w", err)
			}
			clear(oldBuf[:n])
			if lo := oldPos + done; lo < oldSize && lo+n > 0 {
				from, to := max(lo, 0), min(lo+n, oldSize)
				if _, err := old.ReadAt(oldBuf[from-lo:to-lo], from); err != nil && err != io.EOF {
					return err
				}
				for i := from - lo; i < to-lo; i++ {
					buf[i] += oldBuf[i]
				}
			}
			if _, err := out.Write(buf[:n]); err != nil {
				return err
			}
			done += n
		}
		oldPos += x
		newPos += x
		// y bytes: copied from extra.
		if n, err := io.CopyBuffer(out, io.LimitReader(extra, y), buf); err != nil || n != y {
			return fmt.Errorf("patch extra block is short or corrupt (%v)", err)
		}
		newPos += y
		oldPos += z
	}
	return nil
}

// offtin reads bsdiff's sign-magnitude little-endian 64-bit integer.
func offtin(b []byte) int64 {
	v := int64(binary.LittleEndian.Uint64(b) &^ (1 << 63))
	if b[7]&0x80 != 0 {
		return -v
	}
	return v
}

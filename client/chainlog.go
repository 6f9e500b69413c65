package client

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/beckmanconnect/bcupdate/internal/textsafe"
)

// ErrLogDamaged: an append-only log was edited, truncated, reordered, had
// an entry deleted, or has an entry its head does not cover (appended
// outside the agent). It is a verification failure (exit code 3).
var ErrLogDamaged = fmt.Errorf("%w: log damaged", ErrVerification)

const (
	// maxLogLine bounds one line of a log: Append refuses longer entries,
	// and the reader never buffers more than this for one line.
	maxLogLine = 1 << 20
	// maxLogHead bounds the head file; a real one is under 200 bytes.
	maxLogHead = 4 << 10
	// maxLogBatch bounds how many entries one append may announce.
	maxLogBatch = 4096
)

// chainLog is an append-only JSON-lines log in which each line carries the
// sha256 of the line before it, so any edit, deletion or reordering breaks
// the chain. Each append is fsynced before it returns.
//
// The head file (<log>.head, always replaced atomically) is the commit
// point: it names the last entry the agent wrote, {"seq": N, "hash": H_N}.
// Only entries up to the head are trusted, so truncating the tail is found
// (the head names an entry that is gone) and so is an entry appended past
// the head, even a well-formed one with the right sequence number and
// previous hash: it is damage, never an entry. To stay crash safe, Append
// first records its intent in the head, {"seq": N, "hash": H_N, "next":
// {"seq": N+1, "hash": H_N+1}} with the hash of the exact line it is about
// to write, then appends and fsyncs the line, then moves the head to N+1.
// A crash after the line is durable leaves exactly that one line past the
// head; because the head named its hash beforehand it is not damage, but
// it was never acknowledged (the caller never acted on it), so it is not
// an entry either: it grants nothing, and the next Append cuts it off. A
// torn last line (a crash mid-write) is treated the same way. AppendAll
// writes several lines N+1..N+k the same way with one announcement of the
// last, {"next": {"seq": N+k, "hash": H_N+k}}: each line's prev chains it
// to the one before, so that hash pins every line of the batch, and lines
// of an interrupted batch are tolerated, never entries, exactly like the
// single announced line.
//
// What this stops: appending, editing, deleting or reordering entries, and
// truncating the log, by anyone who does not also rewrite the head. What it
// does not stop: someone who can write the state directory can rewrite the
// head as well (it holds no secret), so they can rewrite the whole log and
// its head consistently; StrictModes (perms.go) leaves only the agent's
// user and administrators able to. It makes tampering evident,
// not impossible; a copy of the chain head held off the PC (the fleet
// service's, later) is what closes that, and until then the export must be
// shipped off the PC.
type chainLog struct {
	path string
	// crash, when set (tests only), is called after each step of Append
	// ("intent": the head names the next line; "line": the line is
	// durable); an error stops Append there, as a crash would.
	crash func(step string) error
}

type logLine struct {
	Seq   int64           `json:"seq"`
	Prev  string          `json:"prev"`
	Entry json.RawMessage `json:"entry"`
}

// logHead is the content of <log>.head. Next is set only while an append
// is in progress; heads written before it existed simply lack it.
type logHead struct {
	Seq  int64      `json:"seq"`
	Hash string     `json:"hash"`
	Next *logIntent `json:"next,omitempty"`
}

// logIntent names the last line an append in progress is writing (an
// append of several entries writes lines head.seq+1 to next.seq; each
// line's prev chains it to the one before, so next.hash pins them all).
type logIntent struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// LogEntry is one verified entry.
type LogEntry struct {
	Seq   int64           `json:"seq"`
	Hash  string          `json:"hash"`
	Entry json.RawMessage `json:"entry"`
}

func lineHash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func isLineHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// read parses and verifies the whole log. It returns the entries, or an
// error naming the first bad entry and no entries at all.
func (l *chainLog) read() ([]LogEntry, error) {
	entries, _, _, err := l.readAt()
	return entries, err
}

// readHead reads and checks <log>.head; it is nil if there is none.
func (l *chainLog) readHead() (*logHead, error) {
	name := l.path + ".head"
	f, err := l.open(filepath.Base(name), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLogHead+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	damaged := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s "+format, append([]any{ErrLogDamaged, name}, args...)...)
	}
	if len(b) > maxLogHead {
		return nil, damaged("is larger than %d bytes", maxLogHead)
	}
	if b = bytes.TrimSpace(b); len(b) == 0 || b[0] != '{' {
		return nil, damaged("is not a JSON object")
	}
	var h logHead
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, damaged("is not valid: %v", err)
	}
	switch {
	case h.Seq < 0:
		return nil, damaged("has a negative sequence number %d", h.Seq)
	case h.Seq == 0 && h.Hash != "":
		return nil, damaged("names no entry but carries a hash")
	case h.Seq > 0 && !isLineHash(h.Hash):
		return nil, damaged("does not hold a sha256 for entry %d", h.Seq)
	case h.Next == nil:
	case h.Next.Seq <= h.Seq || h.Next.Seq > h.Seq+maxLogBatch:
		return nil, damaged("announces entry %d after entry %d", h.Next.Seq, h.Seq)
	case !isLineHash(h.Next.Hash):
		return nil, damaged("does not hold a sha256 for entry %d", h.Next.Seq)
	}
	return &h, nil
}

var errLineTooLong = errors.New("line too long")

// readLine reads one line without its newline, buffering at most about
// max bytes. complete is false for a last line with no newline (empty at
// the end of the file).
func readLine(r *bufio.Reader, max int) (line []byte, complete bool, err error) {
	for {
		frag, err := r.ReadSlice('\n')
		line = append(line, frag...)
		if err == nil {
			line = line[:len(line)-1]
			complete = true
		}
		if len(line) > max {
			return nil, false, errLineTooLong
		}
		switch {
		case err == nil:
			return line, true, nil
		case errors.Is(err, bufio.ErrBufferFull):
		case err == io.EOF:
			return line, false, nil
		default:
			return nil, false, err
		}
	}
}

// readAt is read that also returns the length of the accepted lines and
// the sequence number the head commits to (0 if there is no head).
//
// Accepted are the entries up to the head (the last must have the head's
// hash). The line an append announced in head.next, with exactly that
// hash, whose head update a crash cut short, is tolerated but not returned
// and not counted in good (Append cuts it off). Any other complete line
// past the head is damage. A torn last line (no newline,
// right after the head's entry: a crash during an append that was never
// acknowledged) is not an entry and not damage; Append cuts it off.
func (l *chainLog) readAt() (entries []LogEntry, good int64, headSeq int64, err error) {
	head, err := l.readHead()
	if err != nil {
		return nil, 0, 0, err
	}
	// announced is the last line an interrupted append may have left past
	// the head (headSeq when none was announced).
	var announced int64
	if head != nil {
		headSeq, announced = head.Seq, head.Seq
		if head.Next != nil {
			announced = head.Next.Seq
		}
	}
	headName := filepath.Base(l.path) + ".head"
	damaged := func(format string, args ...any) ([]LogEntry, int64, int64, error) {
		return nil, 0, 0, fmt.Errorf("%w: %s "+format, append([]any{ErrLogDamaged, l.path}, args...)...)
	}
	f, err := l.open(filepath.Base(l.path), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if headSeq > 0 {
			return damaged("is missing but %d entries were written", headSeq)
		}
		return nil, 0, headSeq, nil
	}
	if err != nil {
		return nil, 0, 0, err
	}
	defer f.Close()
	prev := ""
	r := bufio.NewReaderSize(f, 64<<10)
	for n := int64(1); ; n++ {
		line, complete, err := readLine(r, maxLogLine)
		if errors.Is(err, errLineTooLong) {
			return damaged("entry %d is too long", n)
		}
		if err != nil {
			return nil, 0, 0, fmt.Errorf("read %s: %w", l.path, err)
		}
		if !complete {
			if len(line) > 0 && (head == nil || n <= headSeq || n > max(announced, headSeq+1)) {
				return damaged("entry %d is incomplete (no end of line)", n)
			}
			break
		}
		if head == nil {
			return damaged("has entries but %s is missing", headName)
		}
		hash := lineHash(line)
		if n > headSeq && (n > announced || (n == announced && head.Next.Hash != hash)) {
			return damaged("entry %d is not covered by %s (appended outside the agent, or forged)", n, headName)
		}
		var ll logLine
		if err := json.Unmarshal(line, &ll); err != nil {
			return damaged("entry %d is not valid JSON", n)
		}
		if ll.Seq != n {
			return damaged("entry %d has sequence number %d (deleted or reordered entries)", n, ll.Seq)
		}
		if ll.Prev != prev {
			return damaged("entry %d does not follow entry %d (edited, deleted or reordered)", n, n-1)
		}
		if n == headSeq && hash != head.Hash {
			return damaged("entry %d was changed after it was written (it does not match %s)", n, headName)
		}
		if n > headSeq {
			// An entry an interrupted append announced: well formed, but
			// never acknowledged, so it is not an entry of the log. It
			// grants nothing and the next Append cuts it off. (Whoever
			// can write the log can write the head too; this only tells
			// a crash from damage.) Any line after the last announced
			// one is damage.
			prev = hash
			continue
		}
		prev = hash
		good += int64(len(line)) + 1
		entries = append(entries, LogEntry{Seq: n, Hash: hash, Entry: ll.Entry})
	}
	if headSeq > int64(len(entries)) {
		return damaged("ends at entry %d but %d were written (truncated)", len(entries), headSeq)
	}
	return entries, good, headSeq, nil
}

// Verify checks the log and returns its entries; if the log is damaged it
// returns only the error, which names the first bad entry.
func (l *chainLog) Verify() ([]LogEntry, error) { return l.read() }

func (l *chainLog) writeHead(h logHead) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(filepath.Dir(l.path))
	if err != nil {
		return err
	}
	defer root.Close()
	return writeFileRootSync(root, filepath.Base(l.path)+".head", b, 0o600)
}

// open opens a file beside the log through a root confined to the log's
// directory (the state directory), so a link cannot lead it elsewhere.
func (l *chainLog) open(name string, flag int, perm os.FileMode) (*os.File, error) {
	root, err := os.OpenRoot(filepath.Dir(l.path))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return root.OpenFile(name, flag, perm)
}

func (l *chainLog) step(name string) error {
	if l.crash == nil {
		return nil
	}
	return l.crash(name)
}

// Append adds an entry after verifying the log. It refuses to append to a
// damaged log, so damage is never buried under new entries. The head
// announces the line before it is written and commits to it after it is
// fsynced (see chainLog); an earlier announced, unacknowledged line and a
// torn tail are cut off first.
func (l *chainLog) Append(entry any) error { return l.AppendAll([]any{entry}) }

// AppendAll adds entries in order as Append does, with one announcement,
// one write and one fsync for all of them: the head announces the last
// line (the chain pins the others to it), and commits to all of them at
// once. A crash leaves all of them or none as entries.
func (l *chainLog) AppendAll(batch []any) error {
	if len(batch) == 0 {
		return nil
	}
	if len(batch) > maxLogBatch {
		return fmt.Errorf("%d log entries for %s in one append (at most %d)", len(batch), l.path, maxLogBatch)
	}
	entries, good, _, err := l.readAt()
	if err != nil {
		return err
	}
	if f, err := l.open(filepath.Base(l.path), os.O_WRONLY, 0); err == nil {
		fi, err := f.Stat()
		if err == nil && fi.Size() > good {
			// Cut off a torn, unacknowledged tail before appending.
			err = f.Truncate(good)
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("repair %s: %w", l.path, err)
		}
	}
	n := int64(len(entries))
	prev := ""
	if n > 0 {
		prev = entries[n-1].Hash
	}
	last, hash := n, prev
	var out []byte
	for _, entry := range batch {
		body, err := json.Marshal(entry)
		if err != nil {
			return err
		}
		line, err := json.Marshal(logLine{Seq: last + 1, Prev: hash, Entry: body})
		if err != nil {
			return err
		}
		if bytes.ContainsRune(line, '\n') {
			return errors.New("log entry contains a newline")
		}
		if len(line) > maxLogLine {
			return fmt.Errorf("log entry for %s is too long (%d bytes, at most %d)", l.path, len(line), maxLogLine)
		}
		last, hash = last+1, lineHash(line)
		out = append(append(out, line...), '\n')
	}
	if err := l.writeHead(logHead{Seq: n, Hash: prev, Next: &logIntent{Seq: last, Hash: hash}}); err != nil {
		return err
	}
	if err := l.step("intent"); err != nil {
		return err
	}
	f, err := l.open(filepath.Base(l.path), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(out); err != nil {
		f.Close()
		return fmt.Errorf("append %s: %w", l.path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("append %s: fsync: %w", l.path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := l.step("line"); err != nil {
		return err
	}
	return l.writeHead(logHead{Seq: last, Hash: hash})
}

// describeEntry gives a one-line summary of an entry for export. Values are
// escaped (textsafe.Escape): a log may hold text no agent would accept
// today, written by an older agent or by hand, and it must not reach a
// terminal as control sequences.
func describeEntry(e LogEntry) string {
	var m map[string]any
	_ = json.Unmarshal(e.Entry, &m)
	var parts []string
	for _, k := range []string{"time", "event", "decision", "component", "version", "feature", "by", "os_user", "method", "terminal", "detail"} {
		if v, ok := m[k]; ok && v != "" {
			val := textsafe.Escape(fmt.Sprint(v))
			if strings.ContainsAny(val, " =\"") {
				// Quoted, so a value cannot pose as another field.
				val = `"` + strings.ReplaceAll(val, `"`, `\"`) + `"`
			}
			parts = append(parts, k+"="+val)
		}
	}
	return fmt.Sprintf("%d %s", e.Seq, strings.Join(parts, " "))
}

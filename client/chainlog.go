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
	"strings"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
)

// ErrLogDamaged: an append-only log was edited, truncated, reordered or had
// an entry deleted. It is a verification failure (exit code 3).
var ErrLogDamaged = fmt.Errorf("%w: log damaged", ErrVerification)

const maxLogLine = 1 << 20

// chainLog is an append-only JSON-lines log in which each line carries the
// sha256 of the line before it, so any edit, deletion or reordering breaks
// the chain. A head file (<log>.head, written atomically after each
// append) records the last sequence number and hash, so truncating the tail
// is found too. Each append is fsynced before it returns.
//
// What this does not stop: someone who can rewrite the whole log and its
// head consistently. It makes tampering evident, it does not make it
// impossible; ship the export off the PC for that.
type chainLog struct {
	path string
}

type logLine struct {
	Seq   int64           `json:"seq"`
	Prev  string          `json:"prev"`
	Entry json.RawMessage `json:"entry"`
}

type logHead struct {
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

// read parses and verifies the whole log. It returns the entries and, if
// the log is damaged, an error naming the first bad entry.
func (l *chainLog) read() ([]LogEntry, error) {
	entries, _, err := l.readAt()
	return entries, err
}

// readAt is read that also returns the length of the complete lines. A
// torn last line (a crash during an append that was never acknowledged:
// the head does not name it) is not damage; Append cuts it off.
func (l *chainLog) readAt() ([]LogEntry, int64, error) {
	var head *logHead
	if b, err := os.ReadFile(l.path + ".head"); err == nil {
		head = &logHead{}
		if err := json.Unmarshal(b, head); err != nil {
			return nil, 0, fmt.Errorf("%w: %s.head: %v", ErrLogDamaged, l.path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, 0, err
	}
	f, err := os.Open(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		if head != nil && head.Seq > 0 {
			return nil, 0, fmt.Errorf("%w: %s is missing but %d entries were written", ErrLogDamaged, l.path, head.Seq)
		}
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var entries []LogEntry
	var good int64
	torn := false
	prev := ""
	r := bufio.NewReaderSize(f, 64<<10)
	for n := int64(1); ; n++ {
		line, err := r.ReadBytes('\n')
		if err == io.EOF && len(line) == 0 {
			break
		}
		if err != nil && err != io.EOF {
			return nil, 0, err
		}
		if err == io.EOF {
			torn = true
			break
		}
		lineLen := int64(len(line))
		line = bytes.TrimSuffix(line, []byte("\n"))
		if len(line) > maxLogLine {
			return entries, good, fmt.Errorf("%w: %s entry %d is too long", ErrLogDamaged, l.path, n)
		}
		var ll logLine
		if err := json.Unmarshal(line, &ll); err != nil {
			return entries, good, fmt.Errorf("%w: %s entry %d is not valid JSON", ErrLogDamaged, l.path, n)
		}
		if ll.Seq != n {
			return entries, good, fmt.Errorf("%w: %s entry %d has sequence number %d (deleted or reordered entries)", ErrLogDamaged, l.path, n, ll.Seq)
		}
		if ll.Prev != prev {
			return entries, good, fmt.Errorf("%w: %s entry %d does not follow entry %d (edited, deleted or reordered)", ErrLogDamaged, l.path, n, n-1)
		}
		prev = lineHash(line)
		good += lineLen
		entries = append(entries, LogEntry{Seq: n, Hash: prev, Entry: ll.Entry})
	}
	if torn && (head == nil || head.Seq != int64(len(entries))) {
		return entries, good, fmt.Errorf("%w: %s entry %d is incomplete (no end of line)", ErrLogDamaged, l.path, len(entries)+1)
	}
	switch {
	case head == nil && len(entries) > 0:
		return entries, good, fmt.Errorf("%w: %s.head is missing", ErrLogDamaged, l.path)
	case head == nil:
	case head.Seq > int64(len(entries)):
		return entries, good, fmt.Errorf("%w: %s ends at entry %d but %d were written (truncated)", ErrLogDamaged, l.path, len(entries), head.Seq)
	case head.Seq > 0 && entries[head.Seq-1].Hash != head.Hash:
		return entries, good, fmt.Errorf("%w: %s entry %d was changed after it was written", ErrLogDamaged, l.path, head.Seq)
	}
	// Entries past the head are appends whose head update a crash cut
	// short; they chain correctly, so they are kept.
	return entries, good, nil
}

// Verify checks the log and returns its entries.
func (l *chainLog) Verify() ([]LogEntry, error) { return l.read() }

// Append adds an entry after verifying the log. It refuses to append to a
// damaged log, so damage is never buried under new entries.
func (l *chainLog) Append(entry any) error {
	entries, good, err := l.readAt()
	if err != nil {
		return err
	}
	if fi, err := os.Stat(l.path); err == nil && fi.Size() > good {
		// Cut off a torn, unacknowledged tail before appending.
		if err := os.Truncate(l.path, good); err != nil {
			return fmt.Errorf("repair %s: %w", l.path, err)
		}
	}
	body, err := json.Marshal(entry)
	if err != nil {
		return err
	}
	prev := ""
	if len(entries) > 0 {
		prev = entries[len(entries)-1].Hash
	}
	line, err := json.Marshal(logLine{Seq: int64(len(entries)) + 1, Prev: prev, Entry: body})
	if err != nil {
		return err
	}
	if bytes.ContainsRune(line, '\n') {
		return errors.New("log entry contains a newline")
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
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
	head, _ := json.Marshal(logHead{Seq: int64(len(entries)) + 1, Hash: lineHash(line)})
	return atomicfile.WriteFile(l.path+".head", head, 0o600)
}

// describeEntry gives a one-line summary of an entry for export.
func describeEntry(e LogEntry) string {
	var m map[string]any
	_ = json.Unmarshal(e.Entry, &m)
	var parts []string
	for _, k := range []string{"time", "event", "decision", "component", "version", "feature", "by", "detail"} {
		if v, ok := m[k]; ok && v != "" {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return fmt.Sprintf("%d %s", e.Seq, strings.Join(parts, " "))
}

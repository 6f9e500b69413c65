package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeLog(t *testing.T, n int) *chainLog {
	t.Helper()
	l := &chainLog{path: filepath.Join(t.TempDir(), "audit.jsonl")}
	for i := 0; i < n; i++ {
		if err := l.Append(map[string]any{"event": "staged", "i": i}); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func lines(t *testing.T, p string) [][]byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

// chainLine builds line seq of a log the way Append does (no newline).
func chainLine(seq int64, prev string, entry any) []byte {
	body, err := json.Marshal(entry)
	if err != nil {
		panic(err)
	}
	line, err := json.Marshal(logLine{Seq: seq, Prev: prev, Entry: body})
	if err != nil {
		panic(err)
	}
	return line
}

func headJSON(h logHead) []byte {
	b, err := json.Marshal(h)
	if err != nil {
		panic(err)
	}
	return b
}

func readHeadFile(t *testing.T, l *chainLog) logHead {
	t.Helper()
	b, err := os.ReadFile(l.path + ".head")
	if err != nil {
		t.Fatal(err)
	}
	var h logHead
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func setHead(t *testing.T, l *chainLog, b []byte) {
	t.Helper()
	if err := os.WriteFile(l.path+".head", b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func appendRaw(t *testing.T, l *chainLog, b []byte) {
	t.Helper()
	f, err := os.OpenFile(l.path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func forgedGrant(i int) map[string]any {
	return map[string]any{"event": "consent-decision", "decision": "granted", "feature": "phi-file-transfer", "i": i}
}

// TestChainLogTamper: every kind of damage is found, named, and stops
// Append without changing either file.
func TestChainLogTamper(t *testing.T) {
	cases := []struct {
		name string
		// damage gets the intact log and its five entries.
		damage func(t *testing.T, l *chainLog, es []LogEntry)
		want   string
	}{
		{"edited entry", func(t *testing.T, l *chainLog, es []LogEntry) {
			b, _ := os.ReadFile(l.path)
			os.WriteFile(l.path, bytes.Replace(b, []byte(`"i":2`), []byte(`"i":7`), 1), 0o600)
		}, "entry 4 does not follow entry 3"},
		{"edited last entry", func(t *testing.T, l *chainLog, es []LogEntry) {
			b, _ := os.ReadFile(l.path)
			os.WriteFile(l.path, bytes.Replace(b, []byte(`"i":4`), []byte(`"i":9`), 1), 0o600)
		}, "entry 5 was changed after it was written"},
		{"deleted entry", func(t *testing.T, l *chainLog, es []LogEntry) {
			ls := lines(t, l.path)
			os.WriteFile(l.path, bytes.Join(append(ls[:1:1], ls[2:]...), nil), 0o600)
		}, "entry 2 has sequence number 3"},
		{"reordered entries", func(t *testing.T, l *chainLog, es []LogEntry) {
			ls := lines(t, l.path)
			ls[1], ls[2] = ls[2], ls[1]
			os.WriteFile(l.path, append(bytes.Join(ls, nil), '\n'), 0o600)
		}, "entry 2 has sequence number 3"},
		{"truncated", func(t *testing.T, l *chainLog, es []LogEntry) {
			ls := lines(t, l.path)
			os.WriteFile(l.path, bytes.Join(ls[:3], nil), 0o600)
		}, "ends at entry 3 but 5 were written (truncated)"},
		{"emptied", func(t *testing.T, l *chainLog, es []LogEntry) { os.WriteFile(l.path, nil, 0o600) }, "ends at entry 0"},
		{"log deleted", func(t *testing.T, l *chainLog, es []LogEntry) { os.Remove(l.path) }, "is missing"},
		{"head deleted", func(t *testing.T, l *chainLog, es []LogEntry) { os.Remove(l.path + ".head") }, "has entries but audit.jsonl.head is missing"},
		{"torn acknowledged line", func(t *testing.T, l *chainLog, es []LogEntry) {
			b, _ := os.ReadFile(l.path)
			os.WriteFile(l.path, b[:len(b)-5], 0o600)
		}, "entry 5 is incomplete"},
		{"forged entry past the head", func(t *testing.T, l *chainLog, es []LogEntry) {
			// Right sequence number, right previous hash, head untouched.
			appendRaw(t, l, append(chainLine(6, es[4].Hash, forgedGrant(6)), '\n'))
		}, "entry 6 is not covered by audit.jsonl.head (appended outside the agent, or forged)"},
		{"forged entry past a head announcing another line", func(t *testing.T, l *chainLog, es []LogEntry) {
			announced := chainLine(6, es[4].Hash, map[string]any{"event": "staged"})
			setHead(t, l, headJSON(logHead{Seq: 5, Hash: es[4].Hash, Next: &logIntent{Seq: 6, Hash: lineHash(announced)}}))
			appendRaw(t, l, append(chainLine(6, es[4].Hash, forgedGrant(6)), '\n'))
		}, "entry 6 is not covered"},
		{"forged entry after an announced one", func(t *testing.T, l *chainLog, es []LogEntry) {
			announced := chainLine(6, es[4].Hash, map[string]any{"event": "staged"})
			setHead(t, l, headJSON(logHead{Seq: 5, Hash: es[4].Hash, Next: &logIntent{Seq: 6, Hash: lineHash(announced)}}))
			appendRaw(t, l, append(announced, '\n'))
			appendRaw(t, l, append(chainLine(7, lineHash(announced), forgedGrant(7)), '\n'))
		}, "entry 7 is not covered"},
		{"garbage past the head", func(t *testing.T, l *chainLog, es []LogEntry) {
			appendRaw(t, l, []byte("not json\n"))
		}, "entry 6 is not covered"},
		{"head moved back one entry", func(t *testing.T, l *chainLog, es []LogEntry) {
			// The head of an older state: entry 5 is no longer covered.
			setHead(t, l, headJSON(logHead{Seq: 4, Hash: es[3].Hash}))
		}, "entry 5 is not covered"},
		{"head hash mismatch", func(t *testing.T, l *chainLog, es []LogEntry) {
			setHead(t, l, headJSON(logHead{Seq: 5, Hash: es[3].Hash}))
		}, "entry 5 was changed after it was written (it does not match audit.jsonl.head)"},
		{"head past the log", func(t *testing.T, l *chainLog, es []LogEntry) {
			setHead(t, l, headJSON(logHead{Seq: 9, Hash: es[4].Hash}))
		}, "ends at entry 5 but 9 were written (truncated)"},
		{"head not JSON", func(t *testing.T, l *chainLog, es []LogEntry) { setHead(t, l, []byte(`{"seq": 5,`)) }, "audit.jsonl.head is not valid"},
		{"head null", func(t *testing.T, l *chainLog, es []LogEntry) { setHead(t, l, []byte(`null`)) }, "audit.jsonl.head is not a JSON object"},
		{"head empty", func(t *testing.T, l *chainLog, es []LogEntry) { setHead(t, l, nil) }, "audit.jsonl.head is not a JSON object"},
		{"head negative seq", func(t *testing.T, l *chainLog, es []LogEntry) {
			setHead(t, l, []byte(`{"seq": -1, "hash": ""}`))
		}, "negative sequence number -1"},
		{"head zero seq with a hash", func(t *testing.T, l *chainLog, es []LogEntry) {
			setHead(t, l, headJSON(logHead{Seq: 0, Hash: es[0].Hash}))
		}, "names no entry but carries a hash"},
		{"head hash not a sha256", func(t *testing.T, l *chainLog, es []LogEntry) {
			setHead(t, l, []byte(`{"seq": 5, "hash": "xyz"}`))
		}, "does not hold a sha256 for entry 5"},
		{"head next announces more than a batch", func(t *testing.T, l *chainLog, es []LogEntry) {
			setHead(t, l, headJSON(logHead{Seq: 5, Hash: es[4].Hash, Next: &logIntent{Seq: 6 + maxLogBatch, Hash: es[4].Hash}}))
		}, fmt.Sprintf("announces entry %d after entry 5", 6+maxLogBatch)},
		{"head next goes back", func(t *testing.T, l *chainLog, es []LogEntry) {
			setHead(t, l, headJSON(logHead{Seq: 5, Hash: es[4].Hash, Next: &logIntent{Seq: 5, Hash: es[4].Hash}}))
		}, "announces entry 5 after entry 5"},
		{"head next without a hash", func(t *testing.T, l *chainLog, es []LogEntry) {
			setHead(t, l, headJSON(logHead{Seq: 5, Hash: es[4].Hash, Next: &logIntent{Seq: 6}}))
		}, "does not hold a sha256 for entry 6"},
		{"head too large", func(t *testing.T, l *chainLog, es []LogEntry) {
			b := headJSON(logHead{Seq: 5, Hash: es[4].Hash})
			setHead(t, l, append(b, bytes.Repeat([]byte(" "), maxLogHead)...))
		}, "audit.jsonl.head is larger than 4096 bytes"},
		{"line too long", func(t *testing.T, l *chainLog, es []LogEntry) {
			appendRaw(t, l, append(bytes.Repeat([]byte("x"), maxLogLine+1), '\n'))
		}, "entry 6 is too long"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := writeLog(t, 5)
			es, err := l.Verify()
			if err != nil || len(es) != 5 {
				t.Fatalf("intact log: %d entries, %v", len(es), err)
			}
			tc.damage(t, l, es)
			got, err := l.Verify()
			if !errors.Is(err, ErrLogDamaged) || !errors.Is(err, ErrVerification) {
				t.Fatalf("want ErrLogDamaged, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if got != nil {
				t.Errorf("a damaged log returned %d entries", len(got))
			}
			logBefore, _ := os.ReadFile(l.path)
			headBefore, _ := os.ReadFile(l.path + ".head")
			if err := l.Append(map[string]any{"event": "x"}); !errors.Is(err, ErrLogDamaged) {
				t.Errorf("append to a damaged log: want ErrLogDamaged, got %v", err)
			}
			logAfter, _ := os.ReadFile(l.path)
			headAfter, _ := os.ReadFile(l.path + ".head")
			if !bytes.Equal(logBefore, logAfter) || !bytes.Equal(headBefore, headAfter) {
				t.Error("a refused append changed the log or its head")
			}
		})
	}
}

var errCrash = errors.New("simulated crash")

// TestChainLogCrashRecovery: a crash at any step of Append leaves a log
// that verifies, and the next Append carries on from it.
func TestChainLogCrashRecovery(t *testing.T) {
	crashed := map[string]any{"event": "installed", "i": 5}
	cases := []struct {
		name    string
		crashAt string
		// after the crash, before anyone reads the log (announced is the
		// line the head names next).
		after func(t *testing.T, l *chainLog, announced []byte)
		// the crashed line was complete (durable and announced); it is
		// still not an entry.
		kept bool
	}{
		{"after the head announced the line", "intent", nil, false},
		{"mid-write of the line", "intent", func(t *testing.T, l *chainLog, announced []byte) {
			appendRaw(t, l, announced[:len(announced)/2])
		}, false},
		{"whole line written but no newline", "intent", func(t *testing.T, l *chainLog, announced []byte) {
			appendRaw(t, l, announced)
		}, false},
		{"line written but not fsynced", "intent", func(t *testing.T, l *chainLog, announced []byte) {
			appendRaw(t, l, append(announced, '\n'))
		}, true},
		{"after the line was fsynced", "line", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := writeLog(t, 5)
			es, _ := l.Verify()
			l.crash = func(step string) error {
				if step == tc.crashAt {
					return errCrash
				}
				return nil
			}
			if err := l.Append(crashed); !errors.Is(err, errCrash) {
				t.Fatalf("want the simulated crash, got %v", err)
			}
			l.crash = nil
			announced := chainLine(6, es[4].Hash, crashed)
			h := readHeadFile(t, l)
			if h.Seq != 5 || h.Hash != es[4].Hash || h.Next == nil || h.Next.Seq != 6 || h.Next.Hash != lineHash(announced) {
				t.Fatalf("head after the crash does not announce the exact line: %+v", h)
			}
			if tc.after != nil {
				tc.after(t, l, announced)
			}
			// An announced line, even complete and fsynced, was never
			// acknowledged: it is not an entry, and the next append cuts
			// it off.
			want := 5
			got, err := l.Verify()
			if err != nil || len(got) != want {
				t.Fatalf("after the crash: %d entries, %v; want %d", len(got), err, want)
			}
			// The next append cuts off the unacknowledged line and appends.
			if err := l.Append(map[string]any{"event": "next"}); err != nil {
				t.Fatal(err)
			}
			got, err = l.Verify()
			if err != nil || len(got) != want+1 {
				t.Fatalf("after the next append: %d entries, %v; want %d", len(got), err, want+1)
			}
			if !bytes.Contains(got[5].Entry, []byte(`"event":"next"`)) {
				t.Errorf("entry 6 is %s, want the next append (the crashed one is cut off)", got[5].Entry)
			}
			if h := readHeadFile(t, l); h.Seq != int64(want+1) || h.Hash != got[want].Hash || h.Next != nil {
				t.Errorf("head after the next append: %+v", h)
			}
			b, _ := os.ReadFile(l.path)
			if bytes.Count(b, []byte("\n")) != want+1 || !bytes.HasSuffix(b, []byte("\n")) {
				t.Errorf("log after the next append:\n%s", b)
			}
		})
	}
}

// TestChainLogDropsAnnouncedEntry: an announced but unacknowledged entry
// is cut off by the next append, never committed (a forged line with a
// forged announcement must not become an entry by waiting for the agent's
// next append).
func TestChainLogDropsAnnouncedEntry(t *testing.T) {
	l := writeLog(t, 2)
	l.crash = func(step string) error {
		if step == "line" {
			return errCrash
		}
		return nil
	}
	if err := l.Append(map[string]any{"event": "a"}); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	es, err := l.Verify()
	if err != nil || len(es) != 2 {
		t.Fatalf("%d entries, %v", len(es), err)
	}
	var heads []logHead
	l.crash = func(step string) error {
		heads = append(heads, readHeadFile(t, l))
		return nil
	}
	if err := l.Append(map[string]any{"event": "b"}); err != nil {
		t.Fatal(err)
	}
	if len(heads) != 2 || heads[0].Seq != 2 || heads[0].Hash != es[1].Hash || heads[0].Next == nil || heads[0].Next.Seq != 3 {
		t.Fatalf("heads seen during the append: %+v", heads)
	}
	got, err := l.Verify()
	if err != nil || len(got) != 3 || !bytes.Contains(got[2].Entry, []byte(`"event":"b"`)) {
		t.Fatalf("after the append: %d entries, %v", len(got), err)
	}
}

func TestChainLogHeadFormat(t *testing.T) {
	l := writeLog(t, 2)
	es, _ := l.Verify()
	b, _ := os.ReadFile(l.path + ".head")
	if want := fmt.Sprintf(`{"seq":2,"hash":%q}`, es[1].Hash); string(b) != want {
		t.Fatalf("head is %s, want %s", b, want)
	}
	// A head as earlier agents wrote it (no "next", other spacing) still reads.
	setHead(t, l, []byte(fmt.Sprintf("{\"seq\": 2, \"hash\": %q}\n", es[1].Hash)))
	if got, err := l.Verify(); err != nil || len(got) != 2 {
		t.Fatalf("old head: %d entries, %v", len(got), err)
	}
	// An empty log with the head of the first append in progress.
	e := &chainLog{path: filepath.Join(t.TempDir(), "consent.jsonl")}
	first := chainLine(1, "", map[string]any{"event": "x"})
	setHead(t, e, headJSON(logHead{Next: &logIntent{Seq: 1, Hash: lineHash(first)}}))
	if got, err := e.Verify(); err != nil || len(got) != 0 {
		t.Fatalf("announced first line, no log: %d entries, %v", len(got), err)
	}
	appendRaw(t, e, append(first, '\n'))
	if got, err := e.Verify(); err != nil || len(got) != 0 {
		t.Fatalf("announced first line: %d entries, %v (an announced line is not an entry)", len(got), err)
	}
}

func TestChainLogRefusesOversizedEntry(t *testing.T) {
	l := writeLog(t, 1)
	if err := l.Append(map[string]any{"detail": strings.Repeat("x", maxLogLine)}); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("want too long, got %v", err)
	}
	if got, err := l.Verify(); err != nil || len(got) != 1 {
		t.Fatalf("%d entries, %v", len(got), err)
	}
}

func TestChainLogRepairsTornUnacknowledgedTail(t *testing.T) {
	cases := []struct {
		name string
		torn string
	}{
		{"half a line", `{"seq":4,"prev":"ab`},
		{"a forged line without newline", `{"seq":4,"prev":"","entry":{"decision":"granted"}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := writeLog(t, 3)
			// A crash mid-append under a head that does not name the line
			// (or someone's unfinished line): never an entry.
			appendRaw(t, l, []byte(tc.torn))
			if got, err := l.Verify(); err != nil || len(got) != 3 {
				t.Fatalf("torn unacknowledged tail: %d entries, %v", len(got), err)
			}
			if err := l.Append(map[string]any{"event": "z"}); err != nil {
				t.Fatal(err)
			}
			got, err := l.Verify()
			if err != nil || len(got) != 4 {
				t.Fatalf("after repair: %d entries, %v", len(got), err)
			}
			if b, _ := os.ReadFile(l.path); bytes.Contains(b, []byte(tc.torn)) {
				t.Fatal("the torn tail was not cut off")
			}
		})
	}
}

// fuzzChain is a valid log of n entries: its lines (no newlines) and hashes.
func fuzzChain(n int) (ls [][]byte, hashes []string) {
	prev := ""
	for i := 1; i <= n; i++ {
		line := chainLine(int64(i), prev, map[string]any{"event": "staged", "i": i})
		prev = lineHash(line)
		ls = append(ls, line)
		hashes = append(hashes, prev)
	}
	return ls, hashes
}

func joinLines(ls ...[]byte) []byte {
	var b []byte
	for _, l := range ls {
		b = append(append(b, l...), '\n')
	}
	return b
}

func FuzzChainLogRead(f *testing.F) {
	ls, hs := fuzzChain(4)
	three := joinLines(ls[:3]...)
	head3 := headJSON(logHead{Seq: 3, Hash: hs[2]})
	forged := chainLine(4, hs[2], forgedGrant(4))
	f.Add(three, head3, true)                                                                                    // valid
	f.Add([]byte{}, []byte{}, false)                                                                             // nothing yet
	f.Add([]byte{}, headJSON(logHead{}), true)                                                                   // empty, head at 0
	f.Add(joinLines(ls...), head3, true)                                                                         // entry past the head
	f.Add(append(three, joinLines(forged)...), head3, true)                                                      // forged past the head
	f.Add(joinLines(ls...), headJSON(logHead{Seq: 3, Hash: hs[2], Next: &logIntent{Seq: 4, Hash: hs[3]}}), true) // announced
	f.Add(joinLines(ls...), headJSON(logHead{Seq: 3, Hash: hs[2], Next: &logIntent{Seq: 4, Hash: lineHash(forged)}}), true)
	f.Add(joinLines(ls[:1]...), headJSON(logHead{Next: &logIntent{Seq: 1, Hash: hs[0]}}), true) // first line announced
	f.Add(append(three, ls[3][:20]...), head3, true)                                            // torn tail
	f.Add(append(three, ls[3]...), headJSON(logHead{Seq: 3, Hash: hs[2], Next: &logIntent{Seq: 4, Hash: hs[3]}}), true)
	f.Add(joinLines(ls[:2]...), head3, true) // truncated
	f.Add(three, headJSON(logHead{Seq: 3, Hash: hs[1]}), true)
	f.Add(three, []byte(`{"seq":3,`), true)
	f.Add(three, []byte(`null`), true)
	f.Add(three, []byte(`{"seq":-1,"hash":""}`), true)
	f.Add(three, []byte(`{"seq":3,"hash":"`+hs[2]+`","next":{"seq":5,"hash":"`+hs[2]+`"}}`), true)
	f.Add(three, []byte(`{"seq":9223372036854775807,"hash":"`+hs[2]+`","next":{"seq":-9223372036854775808,"hash":"`+hs[2]+`"}}`), true)
	f.Add(three, []byte{}, false)                      // head missing
	f.Add(joinLines(ls[0], ls[2], ls[1]), head3, true) // reordered
	f.Add([]byte("\n\n"), []byte(`{"seq":0,"hash":""}`), true)

	f.Fuzz(func(t *testing.T, log, head []byte, haveHead bool) {
		l := &chainLog{path: filepath.Join(t.TempDir(), "consent.jsonl")}
		if err := os.WriteFile(l.path, log, 0o600); err != nil {
			t.Fatal(err)
		}
		if haveHead {
			if err := os.WriteFile(l.path+".head", head, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		entries, good, headSeq, err := l.readAt()
		if err != nil {
			if !errors.Is(err, ErrLogDamaged) {
				t.Fatalf("error that is not ErrLogDamaged: %v", err)
			}
			if entries != nil {
				t.Fatalf("a damaged log returned %d entries", len(entries))
			}
			if err := l.Append(map[string]any{"event": "fuzz"}); err == nil {
				t.Fatal("appended to a damaged log")
			}
			if b, _ := os.ReadFile(l.path); !bytes.Equal(b, log) {
				t.Fatal("a refused append changed the log")
			}
			return
		}

		// What was accepted chains correctly from the bytes on disk, is
		// covered by the head (at most one announced entry past it), and
		// only a torn line follows it.
		h, herr := l.readHead()
		if herr != nil {
			t.Fatalf("accepted a log whose head does not read: %v", herr)
		}
		n := int64(len(entries))
		if h == nil {
			if n != 0 || headSeq != 0 {
				t.Fatalf("no head but %d entries, head seq %d", n, headSeq)
			}
		} else if headSeq != h.Seq {
			t.Fatalf("head seq %d, readAt says %d", h.Seq, headSeq)
		}
		if good < 0 || good > int64(len(log)) {
			t.Fatalf("good %d of %d bytes", good, len(log))
		}
		if rest := log[good:]; bytes.IndexByte(rest, '\n') >= 0 {
			// Only the one line the head announces may follow, complete,
			// and it is not an entry (it was never acknowledged).
			line, tail, _ := bytes.Cut(rest, []byte("\n"))
			if h == nil || h.Next == nil || h.Next.Seq != headSeq+1 || h.Next.Hash != lineHash(line) || bytes.IndexByte(tail, '\n') >= 0 {
				t.Fatalf("good %d of %d bytes leaves complete lines unaccounted for", good, len(log))
			}
		}
		if n != headSeq {
			t.Fatalf("%d entries accepted under head seq %d: nothing past the head is an entry", n, headSeq)
		}
		if headSeq > 0 && entries[headSeq-1].Hash != h.Hash {
			t.Fatal("accepted entry does not match the head")
		}
		raw := bytes.SplitAfter(log[:good], []byte("\n"))
		if len(raw) > 0 && len(raw[len(raw)-1]) == 0 {
			raw = raw[:len(raw)-1]
		}
		if int64(len(raw)) != n {
			t.Fatalf("%d complete lines accepted, %d entries", len(raw), n)
		}
		prev := ""
		for i, r := range raw {
			r = bytes.TrimSuffix(r, []byte("\n"))
			var ll logLine
			if err := json.Unmarshal(r, &ll); err != nil {
				t.Fatalf("accepted line %d is not JSON: %v", i+1, err)
			}
			e := entries[i]
			if ll.Seq != int64(i+1) || e.Seq != ll.Seq || ll.Prev != prev || e.Hash != lineHash(r) || !bytes.Equal(e.Entry, ll.Entry) {
				t.Fatalf("accepted entry %d does not chain: %+v %+v", i+1, ll, e)
			}
			prev = e.Hash
		}
		again, good2, headSeq2, err := l.readAt()
		if err != nil || good2 != good || headSeq2 != headSeq || len(again) != len(entries) {
			t.Fatalf("second read differs: %d %d %d %v", len(again), good2, headSeq2, err)
		}

		// An append on top commits to everything accepted and re-verifies.
		if err := l.Append(map[string]any{"event": "fuzz"}); err != nil {
			t.Fatalf("append to an accepted log: %v", err)
		}
		after, good3, headSeq3, err := l.readAt()
		if err != nil || int64(len(after)) != n+1 || headSeq3 != n+1 {
			t.Fatalf("after append: %d entries, head %d, %v", len(after), headSeq3, err)
		}
		for i := range entries {
			if after[i].Hash != entries[i].Hash {
				t.Fatalf("append changed entry %d", i+1)
			}
		}
		if fi, err := os.Stat(l.path); err != nil || fi.Size() != good3 {
			t.Fatalf("log is not exactly its entries after append: %v", err)
		}
		if h := readHeadFile(t, l); h.Next != nil {
			t.Fatalf("head still announces an entry after a completed append: %+v", h)
		}
	})
}

// TestChainLogAppendAll: several entries in one append are all entries or,
// after a crash, none; lines past the announced batch, or a batch whose
// lines do not chain to the announced last one, are damage.
func TestChainLogAppendAll(t *testing.T) {
	batch := []any{map[string]any{"event": "a"}, map[string]any{"event": "b"}, map[string]any{"event": "c"}}
	t.Run("all entries", func(t *testing.T) {
		l := writeLog(t, 2)
		if err := l.AppendAll(batch); err != nil {
			t.Fatal(err)
		}
		got, err := l.Verify()
		if err != nil || len(got) != 5 || !strings.Contains(string(got[4].Entry), `"c"`) {
			t.Fatalf("%d entries, %v", len(got), err)
		}
		if h := readHeadFile(t, l); h.Seq != 5 || h.Next != nil || h.Hash != got[4].Hash {
			t.Fatalf("head %+v", h)
		}
	})
	// The batch a crash interrupted: lines 6-8 announced under head 5.
	interrupted := func(t *testing.T, step string) (*chainLog, [][]byte) {
		l := writeLog(t, 5)
		es, _ := l.Verify()
		l.crash = func(s string) error {
			if s == step {
				return errCrash
			}
			return nil
		}
		if err := l.AppendAll(batch); !errors.Is(err, errCrash) {
			t.Fatalf("want the simulated crash, got %v", err)
		}
		l.crash = nil
		prev := es[4].Hash
		var ls [][]byte
		for i, e := range batch {
			line := chainLine(int64(6+i), prev, e)
			prev = lineHash(line)
			ls = append(ls, line)
		}
		if h := readHeadFile(t, l); h.Seq != 5 || h.Next == nil || h.Next.Seq != 8 || h.Next.Hash != lineHash(ls[2]) {
			t.Fatalf("head after the crash does not announce the batch's last line: %+v", h)
		}
		return l, ls
	}
	for _, tc := range []struct {
		name  string
		step  string
		after func(t *testing.T, l *chainLog, ls [][]byte)
	}{
		{"crash after the announcement", "intent", nil},
		{"two lines and half of the third", "intent", func(t *testing.T, l *chainLog, ls [][]byte) {
			appendRaw(t, l, joinLines(ls[0], ls[1]))
			appendRaw(t, l, ls[2][:10])
		}},
		{"crash after the lines were fsynced", "line", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, ls := interrupted(t, tc.step)
			if tc.after != nil {
				tc.after(t, l, ls)
			}
			if got, err := l.Verify(); err != nil || len(got) != 5 {
				t.Fatalf("after the crash: %d entries, %v; want 5 (an unacknowledged batch grants nothing)", len(got), err)
			}
			if err := l.Append(map[string]any{"event": "next"}); err != nil {
				t.Fatal(err)
			}
			if got, err := l.Verify(); err != nil || len(got) != 6 || !strings.Contains(string(got[5].Entry), "next") {
				t.Fatalf("after the next append: %d entries, %v; want 6", len(got), err)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		lines func(ls [][]byte) []byte
		want  string
	}{
		{"a line past the announced batch", func(ls [][]byte) []byte {
			return joinLines(ls[0], ls[1], ls[2], chainLine(9, lineHash(ls[2]), map[string]any{"decision": "granted"}))
		}, "entry 9 is not covered"},
		{"a changed line inside the batch", func(ls [][]byte) []byte {
			return joinLines(ls[0], bytes.Replace(ls[1], []byte(`"b"`), []byte(`"x"`), 1), ls[2])
		}, "entry 8 does not follow entry 7"},
		{"another last line", func(ls [][]byte) []byte {
			return joinLines(ls[0], ls[1], chainLine(8, lineHash(ls[1]), map[string]any{"decision": "granted"}))
		}, "entry 8 is not covered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, ls := interrupted(t, "intent")
			appendRaw(t, l, tc.lines(ls))
			if _, err := l.Verify(); !errors.Is(err, ErrLogDamaged) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want damage %q, got %v", tc.want, err)
			}
		})
	}
}

// TestAppendAuditSplitsLargeBatches: a step with more audit entries than
// one append may announce writes them all, in order.
func TestAppendAuditSplitsLargeBatches(t *testing.T) {
	a := stateAgent(t)
	evs := make([]AuditEvent, maxLogBatch+3)
	for i := range evs {
		evs[i] = AuditEvent{Event: EventStaged, Detail: fmt.Sprint(i)}
	}
	a.appendAudit(evs...)
	got, err := a.auditEvents()
	if err != nil || len(got) != len(evs) {
		t.Fatalf("%d entries, %v; want %d", len(got), err, len(evs))
	}
	if got[len(got)-1].Detail != fmt.Sprint(len(evs)-1) {
		t.Fatalf("last entry %+v", got[len(got)-1])
	}
	if hasNote(notes(t, a), NoteLogDamaged) {
		t.Fatal("a large batch was reported as a damaged log")
	}
}

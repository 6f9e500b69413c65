package client

import (
	"bytes"
	"errors"
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

func TestChainLogTamper(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, l *chainLog)
		want   string
	}{
		{"edited entry", func(t *testing.T, l *chainLog) {
			b, _ := os.ReadFile(l.path)
			os.WriteFile(l.path, bytes.Replace(b, []byte(`"i":2`), []byte(`"i":7`), 1), 0o600)
		}, "entry 4 does not follow entry 3"},
		{"edited last entry", func(t *testing.T, l *chainLog) {
			b, _ := os.ReadFile(l.path)
			os.WriteFile(l.path, bytes.Replace(b, []byte(`"i":4`), []byte(`"i":9`), 1), 0o600)
		}, "entry 5 was changed"},
		{"deleted entry", func(t *testing.T, l *chainLog) {
			ls := lines(t, l.path)
			os.WriteFile(l.path, bytes.Join(append(ls[:1:1], ls[2:]...), nil), 0o600)
		}, "entry 2 has sequence number 3"},
		{"reordered entries", func(t *testing.T, l *chainLog) {
			ls := lines(t, l.path)
			ls[1], ls[2] = ls[2], ls[1]
			os.WriteFile(l.path, append(bytes.Join(ls, nil), '\n'), 0o600)
		}, "entry 2 has sequence number 3"},
		{"truncated", func(t *testing.T, l *chainLog) {
			ls := lines(t, l.path)
			os.WriteFile(l.path, bytes.Join(ls[:3], nil), 0o600)
		}, "ends at entry 3 but 5 were written"},
		{"emptied", func(t *testing.T, l *chainLog) { os.WriteFile(l.path, nil, 0o600) }, "ends at entry 0"},
		{"deleted", func(t *testing.T, l *chainLog) { os.Remove(l.path) }, "is missing"},
		{"head deleted", func(t *testing.T, l *chainLog) { os.Remove(l.path + ".head") }, ".head is missing"},
		{"torn acknowledged line", func(t *testing.T, l *chainLog) {
			b, _ := os.ReadFile(l.path)
			os.WriteFile(l.path, b[:len(b)-5], 0o600)
		}, "incomplete"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := writeLog(t, 5)
			if got, err := l.Verify(); err != nil || len(got) != 5 {
				t.Fatalf("intact log: %d entries, %v", len(got), err)
			}
			tc.damage(t, l)
			_, err := l.Verify()
			if !errors.Is(err, ErrLogDamaged) || !errors.Is(err, ErrVerification) {
				t.Fatalf("want ErrLogDamaged, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if err := l.Append(map[string]any{"event": "x"}); err == nil {
				t.Error("appended to a damaged log")
			}
		})
	}
}

func TestChainLogSurvivesLostHeadUpdate(t *testing.T) {
	l := writeLog(t, 3)
	head, _ := os.ReadFile(l.path + ".head")
	if err := l.Append(map[string]any{"event": "y"}); err != nil {
		t.Fatal(err)
	}
	// A crash between the fsynced append and the head update.
	os.WriteFile(l.path+".head", head, 0o600)
	if got, err := l.Verify(); err != nil || len(got) != 4 {
		t.Fatalf("%d entries, %v", len(got), err)
	}
}

func TestChainLogRepairsTornUnacknowledgedTail(t *testing.T) {
	l := writeLog(t, 3)
	// A crash mid-append: half a line, head not updated.
	f, _ := os.OpenFile(l.path, os.O_APPEND|os.O_WRONLY, 0o600)
	f.Write([]byte(`{"seq":4,"prev":"ab`))
	f.Close()
	if got, err := l.Verify(); err != nil || len(got) != 3 {
		t.Fatalf("torn unacknowledged tail: %d entries, %v", len(got), err)
	}
	if err := l.Append(map[string]any{"event": "z"}); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Verify(); err != nil || len(got) != 4 {
		t.Fatalf("after repair: %d entries, %v", len(got), err)
	}
}

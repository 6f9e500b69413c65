package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/publisher"
)

// slowServer serves the repository. The file whose path ends in suffix
// (when set) comes at a trickle after its first head bytes: one byte every
// 20 ms, or, with hold set, nothing more until hold is closed.
type slowServer struct {
	next    http.Handler
	mu      sync.Mutex
	suffix  string
	head    int64
	hold    chan struct{}
	started chan struct{} // gets a value when a slow file has sent its head
	ranges  []string      // Range headers of requests for the slow file
}

func (s *slowServer) set(suffix string, head int64, hold chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.suffix, s.head, s.hold = suffix, head, hold
}

func (s *slowServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	suffix, head, hold := s.suffix, s.head, s.hold
	match := strings.HasSuffix(r.URL.Path, ".tar.gz") || (suffix != "" && strings.HasSuffix(r.URL.Path, suffix))
	if match {
		s.ranges = append(s.ranges, r.Header.Get("Range"))
	}
	s.mu.Unlock()
	if suffix == "" || !strings.HasSuffix(r.URL.Path, suffix) {
		s.next.ServeHTTP(w, r)
		return
	}
	s.next.ServeHTTP(&slowWriter{ResponseWriter: w, s: s, ctx: r.Context(), head: head, hold: hold}, r)
}

func (s *slowServer) lastRange() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ranges) == 0 {
		return ""
	}
	return s.ranges[len(s.ranges)-1]
}

type slowWriter struct {
	http.ResponseWriter
	s    *slowServer
	ctx  context.Context
	head int64
	n    int64
	hold chan struct{}
	said bool
}

func (w *slowWriter) Write(p []byte) (int, error) {
	written := 0
	if w.n < w.head {
		k := int(min(int64(len(p)), w.head-w.n))
		n, err := w.ResponseWriter.Write(p[:k])
		w.n += int64(n)
		written += n
		if err != nil || k == len(p) {
			return written, err
		}
		p = p[k:]
	}
	w.ResponseWriter.(http.Flusher).Flush()
	if !w.said {
		w.said = true
		if w.s.started != nil {
			select {
			case w.s.started <- struct{}{}:
			default:
			}
		}
	}
	if w.hold != nil {
		select {
		case <-w.hold:
			n, err := w.ResponseWriter.Write(p)
			return written + n, err
		case <-w.ctx.Done():
			return written, w.ctx.Err()
		}
	}
	for i := range p {
		select {
		case <-w.ctx.Done():
			return written, w.ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if _, err := w.ResponseWriter.Write(p[i : i+1]); err != nil {
			return written, err
		}
		w.ResponseWriter.(http.Flusher).Flush()
		written++
	}
	return written, nil
}

// quickRule is the minimum-rate rule of these tests: 1 KiB/s over a short
// window (config.json's window is at least 10 s), so that a trickle of
// 50 bytes a second is found out at once.
const quickWindow = 300 * time.Millisecond

func openQuick(t *testing.T, e *env) *client.Agent {
	t.Helper()
	a, err := client.Open(e.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.SetMinRate(1024, quickWindow)
	return a
}

// TestSlowArtifactKeepsPartialAndResumes: an artifact that comes at a
// trickle fails the stage as a network failure naming the URL and the
// rate, keeps what arrived, changes nothing else, and the next stage
// resumes from it.
func TestSlowArtifactKeepsPartialAndResumes(t *testing.T) {
	e := newEnv(t)
	body := make([]byte, 256<<10)
	rand.Read(body)
	res := e.publishWith("1.0.0", artifactName("1.0.0"), body, func(o *publisher.ReleaseOptions) { o.Install = "file" })
	s := &slowServer{next: publisher.Handler(e.store, nil)}
	srv := httptest.NewServer(s)
	defer srv.Close()
	e.repoURL(srv.URL)
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	before := e.snap()

	s.set(".tar.gz", 64<<10, nil)
	a := openQuick(t, e)
	_, err := a.Stage(context.Background(), "")
	a.Close()
	if !errors.Is(err, client.ErrTooSlow) || errors.Is(err, client.ErrVerification) {
		t.Fatalf("want a too-slow network failure (exit 1), got %v", err)
	}
	t.Log(err)
	for _, want := range []string{srv.URL + "/targets/", "too slow", "B/s", "kept to resume"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	partial := filepath.Join(e.state, "staging", component, "1.0.0", filepath.Base(res.Path)+".partial")
	if fi, err := os.Stat(partial); err != nil || fi.Size() < 64<<10 {
		t.Fatalf("the partial download must be kept to resume: %v", err)
	}
	if e.snap() != before {
		t.Fatal("a too-slow stage changed install/ or state.json")
	}
	if slices.ContainsFunc(e.notifications(), func(n client.Notification) bool { return n.Kind == client.NoteVerificationFailure }) {
		t.Error("a slow server raised a verification-failure notification")
	}
	if e.auditHas(client.EventVerificationFailure) {
		t.Error("a slow server wrote a possible-attack audit entry")
	}

	s.set("", 0, nil)
	if err := e.stage(); err != nil {
		t.Fatal(err)
	}
	if r := s.lastRange(); !strings.HasPrefix(r, "bytes=") {
		t.Fatalf("the next stage did not resume the partial download: Range %q", r)
	}
	e.mustInstall("1.0.0")
}

// TestSlowMetadataIsUnreachable: metadata and small targets that come at a
// trickle fail the check within the window as "could not be reached",
// naming the file, never as a possible attack.
func TestSlowMetadataIsUnreachable(t *testing.T) {
	for _, tc := range []struct{ name, suffix string }{
		{"timestamp", "/metadata/timestamp.json"},
		{"snapshot", ".snapshot.json"},
		{"channel pointer (a small target)", "stable.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.publish("1.0.0")
			s := &slowServer{next: publisher.Handler(e.store, nil)}
			srv := httptest.NewServer(s)
			defer srv.Close()
			e.repoURL(srv.URL)
			before := e.snap()
			s.set(tc.suffix, 10, nil)
			a := openQuick(t, e)
			_, err := a.Check(context.Background())
			a.Close()
			if !errors.Is(err, client.ErrTooSlow) || errors.Is(err, client.ErrVerification) {
				t.Fatalf("want a too-slow network failure, got %v", err)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tc.suffix) || !strings.Contains(err.Error(), srv.URL) {
				t.Errorf("the error does not name the URL: %v", err)
			}
			notes := e.notifications()
			if !slices.ContainsFunc(notes, func(n client.Notification) bool { return n.Kind == client.NoteRepositoryUnreachable }) {
				t.Errorf("no could-not-be-reached notification: %+v", notes)
			}
			if slices.ContainsFunc(notes, func(n client.Notification) bool { return n.Kind == client.NoteVerificationFailure }) {
				t.Errorf("a slow server reported as a possible attack: %+v", notes)
			}
			if e.snap() != before {
				t.Fatal("a too-slow check changed install/ or state.json")
			}
		})
	}
}

// TestStatusWhileAStageIsDownloading: the reporting side (client.View)
// answers at once while another agent holds the state directory, and says
// what that agent is doing.
func TestStatusWhileAStageIsDownloading(t *testing.T) {
	e := newEnv(t)
	body := make([]byte, 256<<10)
	rand.Read(body)
	e.publishWith("1.0.0", artifactName("1.0.0"), body, func(o *publisher.ReleaseOptions) { o.Install = "file" })
	hold := make(chan struct{})
	s := &slowServer{next: publisher.Handler(e.store, nil), started: make(chan struct{}, 1)}
	srv := httptest.NewServer(s)
	defer srv.Close()
	e.repoURL(srv.URL)
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	s.set(".tar.gz", 100<<10, hold)
	staged := make(chan error, 1)
	go func() {
		a, err := client.Open(e.state, nil)
		if err != nil {
			staged <- err
			return
		}
		_, err = a.Stage(context.Background(), "")
		a.Close()
		staged <- err
	}()
	released := false
	defer func() {
		if !released {
			close(hold)
			<-staged
		}
	}()
	select {
	case <-s.started:
	case err := <-staged:
		t.Fatalf("stage ended before the download was held: %v", err)
	}

	v, err := client.OpenReadOnly(e.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	var st *client.StatusReport
	for {
		if st, err = v.Status(); err != nil {
			t.Fatal(err)
		}
		// The held download has brought its first 100 KiB: the last
		// progress is written even though nothing arrives after it.
		if d := st.Activity.Activity; d != nil && d.Download != nil && d.Download.Done == 100<<10 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	line := st.Activity.Describe(time.Now())
	t.Log(line)
	for _, want := range []string{"busy: a ", fmt.Sprintf("(pid %d)", os.Getpid()), "downloading notification-client 1.0.0 (100.0 KiB of 256.0 KiB)"} {
		if !strings.Contains(line, want) {
			t.Errorf("status does not say %q: %s", want, line)
		}
	}
	if len(st.Components) != 1 || st.Components[0].State != client.StateUpdateAvailable {
		t.Errorf("status while staging: %+v", st.Components)
	}
	// The other reporting commands do not wait either.
	if _, err := v.Notifications(); err != nil {
		t.Error(err)
	}
	if _, err := v.ConsentList(); err != nil {
		t.Error(err)
	}
	if _, err := v.VerifyLogs(); err != nil {
		t.Error(err)
	}

	close(hold)
	released = true
	if err := <-staged; err != nil {
		t.Fatal(err)
	}
	if st, err = v.Status(); err != nil || st.Activity.Busy || st.Components[0].State != client.StateStaged {
		t.Fatalf("after the stage: %+v %v", st, err)
	}
	if _, err := os.Lstat(filepath.Join(e.state, "activity.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("activity.json outlived the lock: %v", err)
	}
}

// TestStaleActivityIsNotBusy: an activity.json left by an agent that died
// (its lock went with it) does not make status say busy.
func TestStaleActivityIsNotBusy(t *testing.T) {
	e := newEnv(t)
	stale := `{"pid": 99999999, "command": "bcagent stage", "since": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z", "doing": "staging notification-client"}`
	if err := os.WriteFile(filepath.Join(e.state, "activity.json"), []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := client.OpenReadOnly(e.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	act, err := v.Activity()
	if err != nil || act.Busy {
		t.Fatalf("stale activity.json taken for a running agent: %+v %v", act, err)
	}
	a, err := client.Open(e.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	act, err = v.Activity()
	a.Close()
	if err != nil || !act.Busy || act.Activity == nil || act.PID != os.Getpid() {
		t.Fatalf("the lock holder is not reported: %+v %v", act, err)
	}
}

// treeStamp fingerprints a directory tree: every entry's name, mode, size,
// modification time and content.
func treeStamp(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %s %d %d", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			b.WriteString(" " + hex.EncodeToString(sum[:]))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestReadOnlyWritesNothing: the reporting commands change nothing in the
// state directory or the install tree, even where the next agent will
// repair something; status says what will be repaired.
func TestReadOnlyWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, e *env)
		warn  string // in status's warnings
	}{
		{"intact", func(*testing.T, *env) {}, ""},
		{"state.json damaged", func(t *testing.T, e *env) {
			os.WriteFile(filepath.Join(e.state, "state.json"), []byte("{garbage"), 0o600)
		}, "shown from state.json.prev"},
		{"state.json and its copy lost", func(t *testing.T, e *env) {
			os.Remove(filepath.Join(e.state, "state.json"))
			os.Remove(filepath.Join(e.state, "state.json.prev"))
		}, "rebuilt from the install tree"},
		{"an interrupted install", func(t *testing.T, e *env) {
			j, _ := json.Marshal(map[string]any{"component": component, "from": "1.0.0", "to": "1.1.0"})
			os.WriteFile(filepath.Join(e.state, "journal.json"), j, 0o600)
		}, "an install was interrupted"},
		{"features.json edited", func(t *testing.T, e *env) {
			os.WriteFile(filepath.Join(e.install, component, "features.json"), []byte(`{"active": ["phi-file-transfer"]}`), 0o644)
		}, "the next bcagent command puts it back"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.publish("1.0.0")
			e.mustInstall("1.0.0")
			e.publish("1.1.0")
			if err := e.check(); err != nil {
				t.Fatal(err)
			}
			tc.spoil(t, e)
			before := treeStamp(t, e.state)
			v, err := client.OpenReadOnly(e.state, nil)
			if err != nil {
				t.Fatal(err)
			}
			st, err := v.Status()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Notifications(); err != nil {
				t.Fatal(err)
			}
			if _, err := v.ConsentList(); err != nil {
				t.Fatal(err)
			}
			if _, _, err := v.ExportLogs(); err != nil {
				t.Fatal(err)
			}
			if after := treeStamp(t, e.state); after != before {
				t.Fatalf("a read-only open changed the state directory:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if st.Activity == nil || st.Activity.Busy {
				t.Errorf("activity: %+v", st.Activity)
			}
			if len(st.Components) != 1 || st.Components[0].Installed == nil || *st.Components[0].Installed != "1.0.0" {
				t.Errorf("components: %+v", st.Components)
			}
			joined := strings.Join(st.Warnings, "\n")
			t.Log(joined)
			if (tc.warn == "") != (len(st.Warnings) == 0) || !strings.Contains(joined, tc.warn) {
				t.Errorf("warnings %q, want one saying %q", st.Warnings, tc.warn)
			}
		})
	}
}

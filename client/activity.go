package client

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	neturl "net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// What the agent holding the lock is doing.
//
// `bcagent status` takes no lock (readonly.go), so it cannot ask the agent
// that holds one. Instead the holder keeps a small file, activity.json,
// saying who it is (pid, command, since when) and what it is doing (the
// step of the service loop, the download in progress and how far it has
// got). The file is replaced atomically (temporary file and rename, so a
// reader sees the old or the new one, never half of one), at most once a
// second for download progress, and removed when the lock is released. It
// is not fsynced: it is a display, not state; after a crash it is stale,
// and readers believe it only while the lock is held (probeLock).

const (
	activityFile    = "activity.json"
	maxActivitySize = 64 << 10
	activityEvery   = time.Second // at most one progress write a second
)

// Activity is <state>/activity.json.
type Activity struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"` // e.g. "bcagent stage"
	Since   time.Time `json:"since"`   // when it took the lock
	Updated time.Time `json:"updated"`
	// Doing is the step it is at ("checking the repository", "staging
	// notification-client"); empty when it has not said.
	Doing string `json:"doing,omitempty"`
	// Download is the download in progress, if any.
	Download *DownloadActivity `json:"download,omitempty"`
}

// DownloadActivity is a download in progress.
type DownloadActivity struct {
	Name  string `json:"name"` // "notification-client 1.2.0 (nc.tar.gz)", "metadata timestamp.json"
	URL   string `json:"url"`
	Done  int64  `json:"done"`  // bytes of the file so far, resumed ones included
	Total int64  `json:"total"` // the whole file; -1 if unknown
}

// activity writes activity.json for an Agent that holds the lock.
type activity struct {
	dir  string // the state directory
	base string // the repository URL, to name downloads
	log  *slog.Logger

	mu      sync.Mutex
	cur     Activity
	written time.Time
	later   *time.Timer // a write put off by the once-a-second limit
	stopped bool
	// shown is the URL of the download the file on disk shows ("": none).
	shown string
}

// startActivity records that this process holds the state directory, and
// has the HTTP client report downloads to it. Called by Open with the lock
// held.
func (a *Agent) startActivity() {
	now := time.Now().UTC().Truncate(time.Second)
	a.act = &activity{dir: a.dir, base: a.cfg.RepositoryURL, log: a.log,
		cur: Activity{PID: os.Getpid(), Command: commandLabel(os.Args), Since: now}}
	if gt, ok := a.http.Transport.(*guardedTransport); ok {
		gt.observe = a.act.download
	}
	a.act.write(true)
}

// stopActivity removes activity.json; called by Close before the lock is
// released.
func (a *Agent) stopActivity() {
	if a.act == nil {
		return
	}
	a.act.mu.Lock()
	defer a.act.mu.Unlock()
	if a.act.stopped {
		return // closed twice: the file may be another agent's by now
	}
	a.act.stopped = true
	if a.act.later != nil {
		a.act.later.Stop()
	}
	if root, err := os.OpenRoot(a.act.dir); err == nil {
		root.Remove(activityFile)
		root.Close()
	}
}

// setDoing records the step the agent is at ("" when it is between steps).
func (a *Agent) setDoing(format string, args ...any) {
	if a.act == nil {
		return
	}
	a.act.mu.Lock()
	a.act.cur.Doing = fmt.Sprintf(format, args...)
	a.act.cur.Download = nil
	a.act.mu.Unlock()
	a.act.write(true)
}

// download is the HTTP client's progress report (guardedTransport.observe).
// A download that starts is shown at the next once-a-second write, not at
// once: most are small (channel pointers, signatures) and done before it,
// and writing the file twice for each of them would cost more than the
// download. A finished download that the file shows is cleared at once.
func (ac *activity) download(u *neturl.URL, done, total int64, finished bool) {
	ac.mu.Lock()
	redacted := u.Redacted()
	now := false
	switch {
	case finished:
		if ac.cur.Download == nil || ac.cur.Download.URL != redacted {
			ac.mu.Unlock()
			return
		}
		ac.cur.Download, now = nil, ac.shown == redacted
	case ac.cur.Download == nil || ac.cur.Download.URL != redacted:
		ac.cur.Download = &DownloadActivity{Name: ac.name(u), URL: redacted}
	}
	if ac.cur.Download != nil {
		ac.cur.Download.Done, ac.cur.Download.Total = done, total
	}
	ac.mu.Unlock()
	ac.write(now)
}

// write replaces activity.json; unless force is set, at most once a second,
// putting off (not dropping) a write that comes sooner, so the file ends
// up with the last progress even when a download then stalls.
func (ac *activity) write(force bool) {
	ac.mu.Lock()
	defer ac.mu.Unlock()
	if ac.stopped {
		return
	}
	if wait := activityEvery - time.Since(ac.written); !force && wait > 0 {
		if ac.later == nil {
			ac.later = time.AfterFunc(wait, func() { ac.write(true) })
		}
		return
	}
	if ac.later != nil {
		ac.later.Stop()
		ac.later = nil
	}
	ac.written = time.Now()
	ac.shown = ""
	if ac.cur.Download != nil {
		ac.shown = ac.cur.Download.URL
	}
	ac.cur.Updated = ac.written.UTC().Truncate(time.Second)
	data, err := json.MarshalIndent(ac.cur, "", "  ")
	if err == nil {
		err = replaceFile(ac.dir, activityFile, append(data, '\n'))
	}
	if err != nil {
		ac.log.Debug("writing activity.json", "err", err)
	}
}

// replaceFile replaces name below dir atomically but without fsync: a
// temporary file beside it (O_EXCL, through the confined root), then a
// rename. For files that are a display or a cache, not state.
func replaceFile(dir, name string, data []byte) (err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return replaceFileRoot(root, name, data)
}

// replaceFileRoot is replaceFile for a name below an open root.
func replaceFileRoot(root *os.Root, name string, data []byte) (err error) {
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(filepath.Dir(name), "."+filepath.Base(name)+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		root.Remove(tmp)
	}
	return err
}

// name says what a URL of the repository is, for people: an artifact as
// "<component> <version>", its code signature and deltas as
// "<component> <version> code signature" and "… delta from <version>",
// other targets by their path, metadata as "metadata <file>".
func (ac *activity) name(u *neturl.URL) string {
	s := u.Redacted()
	if rest, ok := strings.CutPrefix(s, ac.base+"/targets/"); ok {
		if unesc, err := neturl.PathUnescape(rest); err == nil {
			rest = unesc
		}
		dir, file := path.Split(rest)
		// Consistent snapshots: <dir>/<sha256>.<file>.
		if sha, real, ok := strings.Cut(file, "."); ok && len(sha) == 64 {
			file = real
		}
		parts := strings.Split(strings.TrimSuffix(dir, "/"), "/")
		if len(parts) != 3 {
			return path.Join(dir, file)
		}
		what := parts[0] + " " + parts[2]
		if strings.HasSuffix(file, ".p7s") {
			return what + " code signature"
		}
		if _, from, ok := strings.Cut(file, ".from-"); ok && strings.HasSuffix(from, ".bsdiff") {
			return what + " delta from " + strings.TrimSuffix(from, ".bsdiff")
		}
		return what
	}
	if rest, ok := strings.CutPrefix(s, ac.base+"/metadata/"); ok {
		return "metadata " + rest
	}
	return s
}

// commandLabel names the command this process runs, for activity.json:
// the program and its (sub)command words, "bcagent stage", "bcagent audit
// verify"; no flags and no values (they may hold a person's name).
func commandLabel(args []string) string {
	if len(args) == 0 {
		return "unknown"
	}
	words := []string{strings.TrimSuffix(filepath.Base(args[0]), ".exe")}
	for i := 1; i < len(args) && len(words) < 3; i++ {
		a := args[i]
		switch {
		case a == "--":
			i = len(args)
		case a == "--state" || a == "-state":
			i++ // the global flag that takes a value
		case strings.HasPrefix(a, "-"):
		default:
			words = append(words, a)
			if a != "consent" && a != "audit" && a != "service" {
				i = len(args)
			}
		}
	}
	return strings.Join(words, " ")
}

// ActivityStatus is the "activity" of `bcagent status --json`: whether an
// agent holds the state directory and, if it has said, what it is doing.
type ActivityStatus struct {
	Busy bool `json:"busy"`
	// Service: a service (bcagent run) is running on this state
	// directory, busy or idle between its polls.
	Service bool `json:"service"`
	*Activity
}

// Describe says it in one line for people, e.g. "busy: a bcagent stage
// (pid 1234) has held the state directory since 12:00:03: downloading
// notification-client 1.2.0 (nc.tar.gz) (34.0 MiB of 120.0 MiB)".
func (s *ActivityStatus) Describe(now time.Time) string {
	if s != nil && s.Service && !s.Busy {
		return "idle between polls (the service, bcagent run, is running)"
	}
	if s == nil || !s.Busy {
		return "idle (no bcagent holds the state directory; no service, bcagent run, is running)"
	}
	if s.Activity == nil {
		return "busy: another bcagent holds the state directory (it has not said what it is doing)"
	}
	since := s.Since.Local()
	when := since.Format("15:04:05")
	if y, m, d := since.Date(); y != now.Year() || m != now.Month() || d != now.Day() {
		when = since.Format("2006-01-02 15:04:05")
	}
	line := fmt.Sprintf("busy: a %s (pid %d) has held the state directory since %s", s.Command, s.PID, when)
	switch {
	case s.Download != nil && s.Download.Total > 0:
		line += fmt.Sprintf(": downloading %s (%s of %s)", s.Download.Name, formatBytes(float64(s.Download.Done)), formatBytes(float64(s.Download.Total)))
	case s.Download != nil:
		line += fmt.Sprintf(": downloading %s (%s so far)", s.Download.Name, formatBytes(float64(s.Download.Done)))
	case s.Doing != "":
		line += ": " + s.Doing
	}
	return line
}

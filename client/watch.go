package client

// The drop folder (issue 18): bcagent run --watch DIR, or config.json's
// watch_dir, imports every offline bundle that appears in DIR with the
// same code as bcagent import (Agent.Import: the agent's own TUF and
// code-signing verification, all or nothing), then moves it away so that
// it is never imported again in a loop.
//
// The rules, in docs/operations.md ("The drop folder"):
//
//   - Only DIR/*.bcbundle is looked at (any case of the suffix); anything
//     else, NAME.bcbundle.part included, is left alone. A file is imported
//     once it is complete: its size and modification time unchanged from
//     one scan to the next, at least half the scan interval apart (and, on Windows,
//     not held open for writing by the program copying it). Copying as
//     NAME.bcbundle.part and renaming it when done is the sure way.
//   - A bundle that verified (staged, waits for a person, or had nothing
//     newer for this PC) goes to DIR/imported/, one that was refused (the
//     exit-3 class: damaged, tampered, expired, foreign, a rollback) to
//     DIR/refused/, each with NAME.result.txt or NAME.reason.txt beside it
//     holding the one-line outcome. Each of the two keeps the last
//     watchKeep bundles; older ones and their text files are removed.
//   - An operational failure (the state directory held by another command
//     for longer than the wait, a full disk, a file that cannot be read)
//     leaves the file where it is; it is tried again at the next scan, at
//     most watchAttempts times, then moved to refused/ with the last error.
//   - The sha256 of every bundle imported or refused is remembered in
//     <state>/watched.json (the last watchRemember): the same file dropped
//     again, by hand or by a job that copies a share, is moved to where the
//     first copy went without being imported again. To import it again,
//     use bcagent import FILE.
//   - At most watchPerScan bundles are handled per scan, so a folder full
//     of files cannot keep the service from its polls.
//
// Anything in DIR is imported, and everything imported is verified: a
// local user who can write DIR can feed the agent bundles, never make it
// install what the repository's keys and the pinned code-signing identity
// did not sign; only administrators should be able to write DIR.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/internal/textsafe"
)

// The drop folder's rules.
const (
	// WatchScanEvery is how often the service looks into the drop folder.
	WatchScanEvery = 10 * time.Second
	// watchAttempts bounds the imports that fail for an operational
	// reason before the file is moved to refused/.
	watchAttempts = 5
	// watchKeep is how many bundles imported/ and refused/ each keep.
	watchKeep = 10
	// watchPerScan is how many bundles one scan handles at most.
	watchPerScan = 16
	// watchRemember is how many bundles watched.json remembers.
	watchRemember = 100

	bundleSuffix    = ".bcbundle"
	watchImported   = "imported"
	watchRefused    = "refused"
	resultSuffix    = ".result.txt"
	reasonSuffix    = ".reason.txt"
	watchedFile     = "watched.json"
	maxWatchedSize  = 1 << 20
	watchFolderMode = 0o750
)

// CheckWatchDir checks a drop folder: an existing directory, outside the
// agent's state directory. name is how the error names the setting
// ("--watch", "watch_dir"); the error is a usage error (exit 2).
func CheckWatchDir(name, dir, stateDir string) error {
	if dir == "" || !filepath.IsAbs(dir) {
		return usagef("%s %q: want the absolute path of a directory", name, dir)
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return usagef("%s %s: no such directory (create it first, writable by administrators only)", name, dir)
	case err != nil:
		return usagef("%s: %v", name, err)
	case !fi.IsDir():
		return usagef("%s %s is a file, not a directory", name, dir)
	}
	if stateDir != "" {
		state, err := filepath.Abs(stateDir)
		if err == nil {
			if rel, err := filepath.Rel(state, dir); err == nil && filepath.IsLocal(rel) {
				return usagef("%s %s is inside the agent's state directory %s: give the drop folder a directory of its own", name, dir, state)
			}
		}
	}
	return nil
}

// checkWatchDirSetting is config.json's rule for watch_dir: none, or an
// absolute path safe to show. That it exists is checked by config set and
// by the service (a share may come and go).
func checkWatchDirSetting(c *Config) error {
	if c.WatchDir == "" {
		return nil
	}
	if !filepath.IsAbs(c.WatchDir) {
		return usagef("--watch (config.json watch_dir) %q must be an absolute path", c.WatchDir)
	}
	if err := textsafe.Check(c.WatchDir, false); err != nil {
		return usagef("--watch (config.json watch_dir): %v", err)
	}
	return nil
}

// isBundleName says whether the drop folder imports a file of this name.
func isBundleName(name string) bool {
	return len(name) > len(bundleSuffix) && strings.EqualFold(name[len(name)-len(bundleSuffix):], bundleSuffix) && !strings.HasPrefix(name, ".")
}

// watcher is the drop folder's state in a running service: what each file
// looked like when last seen, and how often it failed for an operational
// reason. It lives in memory: a restarted service looks at every file
// again (watched.json keeps it from importing one twice).
type watcher struct {
	stateDir string
	open     *OpenOptions
	log      *slog.Logger
	// now is the clock of the settle rule; applyNow that of the apply
	// window (RunOptions.Now).
	now, applyNow func() time.Time
	every, settle time.Duration
	lockWait      time.Duration
	attempts      int
	keep          int
	perScan       int

	dir     string
	files   map[string]*dropFile
	problem string // the last error about dir that was logged

	// beforeOpen, when set (tests), is called with a file's path after
	// the scan looked at it and before handle opens it.
	beforeOpen func(path string)
}

// dropFile is one NAME.bcbundle as the watcher last saw it.
type dropFile struct {
	size  int64
	mod   time.Time
	since time.Time // first seen with this size and modification time
	tries int       // operational failures so far
	// stuck: handled, but it could not be moved away; left alone until it
	// changes (or the service restarts, when watched.json knows it).
	stuck bool
}

func newWatcher(stateDir string, open *OpenOptions, log *slog.Logger, applyNow func() time.Time) *watcher {
	return &watcher{stateDir: stateDir, open: open, log: log, now: time.Now, applyNow: applyNow,
		every: WatchScanEvery, settle: WatchScanEvery / 2, lockWait: openWait, attempts: watchAttempts, keep: watchKeep, perScan: watchPerScan,
		files: map[string]*dropFile{}}
}

// setDir points the watcher at dir ("" stops watching).
func (w *watcher) setDir(dir string) {
	if dir == w.dir {
		return
	}
	if dir != "" {
		w.log.Info("watching the drop folder for offline bundles", "dir", dir, "every", w.every)
		if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o002 != 0 && !isWindows() {
			w.log.Warn("the drop folder is writable by every user: anyone on this PC can feed it bundles (they are verified, but only administrators should write it)", "dir", dir)
		}
	} else if w.dir != "" {
		w.log.Info("no longer watching the drop folder", "dir", w.dir)
	}
	w.dir, w.files, w.problem = dir, map[string]*dropFile{}, ""
}

// wait waits d, scanning the drop folder every w.every meanwhile.
// It returns ctx's error when ctx is done, ErrRestart when an import's
// apply updated the agent itself.
func (w *watcher) wait(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		step := time.Until(deadline)
		if step <= 0 {
			return nil
		}
		if w.dir != "" {
			step = min(step, w.every)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(step):
		}
		if err := w.scan(ctx); err != nil {
			return err
		}
	}
}

// scan looks into the drop folder once and handles every bundle that is
// complete, at most perScan of them. It returns only ErrRestart (or ctx's
// error): whatever else goes wrong is logged and tried again.
func (w *watcher) scan(ctx context.Context) error {
	if w.dir == "" || ctx.Err() != nil {
		return ctx.Err()
	}
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		w.dirProblem(err)
		return nil
	}
	w.dirProblem(nil)
	now := w.now()
	present := map[string]bool{}
	handled := 0
	var restart error
	for _, de := range entries {
		name := de.Name()
		if de.IsDir() || !isBundleName(name) {
			continue
		}
		present[name] = true
		fi, err := os.Lstat(filepath.Join(w.dir, name))
		if err != nil {
			continue
		}
		f := w.files[name]
		if f == nil || f.size != fi.Size() || !f.mod.Equal(fi.ModTime()) {
			// New, or still growing: look again at the next scan.
			w.files[name] = &dropFile{size: fi.Size(), mod: fi.ModTime(), since: now}
			continue
		}
		if f.stuck || now.Sub(f.since) < w.settle || handled >= w.perScan || restart != nil || ctx.Err() != nil {
			continue
		}
		handled++
		if err := w.handle(ctx, name, f, fi); errors.Is(err, ErrRestart) {
			restart = err
		}
	}
	for name := range w.files {
		if !present[name] {
			delete(w.files, name)
		}
	}
	if restart != nil {
		return restart
	}
	return ctx.Err()
}

// dirProblem logs a problem with the drop folder once, until it changes.
func (w *watcher) dirProblem(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg == w.problem {
		return
	}
	w.problem = msg
	if err != nil {
		w.log.Error("cannot read the drop folder; trying again at the next scan", "dir", w.dir, "err", err)
	} else {
		w.log.Info("the drop folder can be read again", "dir", w.dir)
	}
}

// handle imports one complete bundle and moves it away. It returns
// ErrRestart if the apply that followed updated the agent itself.
//
// The file is opened once (openBundleFile: a link is not followed, a FIFO
// does not block, the handle must be a regular file), and that handle,
// read up to the size it had when opened, is what is hashed for
// watched.json and what is imported: the name is never opened again, so
// replacing the file after the scan looked at it changes nothing.
func (w *watcher) handle(ctx context.Context, name string, f *dropFile, fi fs.FileInfo) error {
	path := filepath.Join(w.dir, name)
	if w.beforeOpen != nil {
		w.beforeOpen(path)
	}
	bf, ofi, err := openBundleFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		delete(w.files, name)
		return nil
	case inUse(err):
		f.since = w.now() // still being written
		return nil
	case isBundleRefusal(err):
		// Not a bundle, whatever it holds: refused as import refuses it
		// (audited, a critical notification), with nothing to remember it
		// by; a link that cannot be moved away is left alone (stuck).
		a, lerr := OpenWait(ctx, w.stateDir, w.open, w.lockWait)
		if lerr != nil {
			if ctx.Err() == nil {
				w.retry(name, f, lerr)
			}
			return nil
		}
		defer a.Close()
		w.refused(a, name, f, "", a.refuseBundle(ctx, notBundle(path, "%v", err)))
		return nil
	case err != nil:
		w.retry(name, f, fmt.Errorf("read %s: %w", path, err))
		return nil
	}
	closed := false
	closeFile := func() {
		if !closed {
			closed = true
			bf.Close()
		}
	}
	defer closeFile()
	size := ofi.Size()
	if size != f.size || !ofi.ModTime().Equal(f.mod) {
		// Not the file the scans saw settle: look again.
		w.files[name] = &dropFile{size: size, mod: ofi.ModTime(), since: w.now()}
		return nil
	}
	h := sha256.New()
	if n, err := io.Copy(h, io.NewSectionReader(bf, 0, size)); err != nil {
		w.retry(name, f, fmt.Errorf("read %s: %w", path, err))
		return nil
	} else if n != size {
		delete(w.files, name) // cut short while read: wait for it to settle
		return nil
	}
	sum := hex.EncodeToString(h.Sum(nil))
	a, err := OpenWait(ctx, w.stateDir, w.open, w.lockWait)
	if err != nil {
		if ctx.Err() == nil {
			w.retry(name, f, err)
		}
		return nil
	}
	defer a.Close()
	if seen := a.watchedBundle(sum); seen != nil {
		sub, suffix := watchImported, resultSuffix
		if seen.Outcome == watchRefused {
			sub, suffix = watchRefused, reasonSuffix
		}
		w.log.Info("bundle in the drop folder was handled before (the same sha256); not importing it again", "file", name, "first", seen.Name, "at", seen.At)
		closeFile()
		w.moveAway(name, f, sub, suffix, fmt.Sprintf("not imported again: the same bundle (sha256 %s) was handled as %s at %s (%s): %s",
			sum, seen.Name, stamp(seen.At), seen.Outcome, seen.Detail))
		return nil
	}
	a.setDoing("importing bundle %s from the drop folder", name)
	rep, err := a.importOpened(ctx, bf, path, size, ImportOptions{})
	if ctx.Err() != nil {
		return nil // stopping: the file is looked at again next time
	}
	if err != nil && !importDone(err) {
		// A refusal of a file that changed while it was read (written to
		// in place: the handle is the same file) says nothing of the
		// finished file: wait for it to settle.
		if after, serr := bf.Stat(); serr == nil && (after.Size() != size || !after.ModTime().Equal(ofi.ModTime())) {
			w.log.Info("bundle in the drop folder changed while it was imported; waiting for it to be complete", "file", name)
			delete(w.files, name)
			return nil
		}
	}
	closeFile()
	switch {
	case importDone(err):
		detail := importSummary(rep, err)
		w.log.Info("bundle from the drop folder imported", "file", name, "result", detail)
		a.rememberWatched(sum, name, watchImported, detail)
		w.moveAway(name, f, watchImported, resultSuffix, detail)
		return w.applyAfterImport(ctx, a)
	case errors.Is(err, ErrVerification):
		w.refused(a, name, f, sum, err)
	default:
		w.retry(name, f, err)
	}
	return nil
}

// refused remembers a refused bundle (when it has a sha256) and moves it
// to refused/ with the reason.
func (w *watcher) refused(a *Agent, name string, f *dropFile, sum string, err error) {
	reason := oneLine(err.Error())
	w.log.Error("bundle from the drop folder refused", "file", name, "reason", reason)
	a.rememberWatched(sum, name, watchRefused, reason)
	w.moveAway(name, f, watchRefused, reasonSuffix, reason)
}

// importDone says whether an import's error still means the bundle
// verified: staged, staged and waiting for a person, or nothing newer.
func importDone(err error) bool {
	return err == nil || errors.Is(err, ErrAuthorizationRequired) || errors.Is(err, ErrBundleNotNewer)
}

// importSummary says in one line what an import that verified did.
func importSummary(rep *ImportReport, err error) string {
	if errors.Is(err, ErrBundleNotNewer) {
		return "nothing imported: " + oneLine(err.Error())
	}
	var staged []string
	for _, c := range rep.Components {
		if c.Staged != "" {
			staged = append(staged, c.Name+" "+c.Staged)
		}
	}
	s := fmt.Sprintf("verified (made %s, valid until %s)", stamp(rep.Created), stamp(rep.Expires))
	if len(staged) > 0 {
		s += "; staged " + strings.Join(staged, ", ")
	} else {
		s += "; nothing newer than what is installed"
	}
	if errors.Is(err, ErrAuthorizationRequired) {
		s += "; waits for a person to authorize a feature (bcagent apply)"
	}
	return s
}

// applyAfterImport installs what the import staged for the components
// whose policy is auto, inside the apply window, as a poll would: a
// release with a gated feature keeps waiting for a person.
func (w *watcher) applyAfterImport(ctx context.Context, a *Agent) error {
	err := a.applyByPolicy(ctx, a.autoApplyNames(w.applyNow()))
	if err != nil && !errors.Is(err, ErrRestart) {
		w.log.Error("applying what the bundle staged", "err", err)
		return nil
	}
	return err
}

// retry counts an operational failure; after the last attempt the file
// goes to refused/ with the error.
func (w *watcher) retry(name string, f *dropFile, err error) {
	f.tries++
	if f.tries < w.attempts {
		w.log.Warn("bundle in the drop folder not imported; trying again at the next scan", "file", name, "attempt", f.tries, "of", w.attempts, "err", err)
		return
	}
	reason := fmt.Sprintf("not imported after %d attempts (an operational failure, not a verdict on the bundle; drop it again to retry): %s", f.tries, oneLine(err.Error()))
	w.log.Error("bundle in the drop folder given up", "file", name, "reason", reason)
	w.moveAway(name, f, watchRefused, reasonSuffix, reason)
}

// moveAway moves DIR/name into DIR/sub (under a free name), writes the
// one-line note beside it, and keeps only the newest w.keep there. All of
// it through an os.Root on DIR: a sub folder that is a link out of DIR is
// refused, not followed. A file that cannot be moved is left alone (stuck).
func (w *watcher) moveAway(name string, f *dropFile, sub, suffix, note string) {
	err := func() error {
		root, err := os.OpenRoot(w.dir)
		if err != nil {
			return err
		}
		defer root.Close()
		if err := root.Mkdir(sub, watchFolderMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if fi, err := root.Lstat(sub); err != nil {
			return err
		} else if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", filepath.Join(w.dir, sub))
		}
		target, err := freeName(root, sub, name)
		if err != nil {
			return err
		}
		if err := root.Rename(name, target); err != nil {
			return err
		}
		if err := atomicfile.WriteIn(root, target+suffix, []byte(truncateText(oneLine(note), maxNoteLen)+"\n"), 0o640); err != nil {
			w.log.Error("writing the note beside the moved bundle", "file", target+suffix, "err", err)
		}
		if err := atomicfile.SyncDirIn(root, sub); err != nil {
			w.log.Warn("fsync of the drop folder", "err", err)
		}
		w.prune(root, sub, suffix)
		w.log.Info("bundle moved out of the drop folder", "file", name, "to", filepath.Join(w.dir, target))
		return nil
	}()
	if err != nil {
		f.stuck = true
		w.log.Error("cannot move the bundle out of the drop folder; it is left alone until it changes", "file", name, "to", sub, "err", err)
		return
	}
	delete(w.files, name)
}

// freeName is sub/name, or sub/<stem>-N.bcbundle when that is taken.
func freeName(root *os.Root, sub, name string) (string, error) {
	stem, ext := name[:len(name)-len(bundleSuffix)], name[len(name)-len(bundleSuffix):]
	for i := 1; i <= 10_000; i++ {
		cand := filepath.Join(sub, name)
		if i > 1 {
			cand = filepath.Join(sub, fmt.Sprintf("%s-%d%s", stem, i, ext))
		}
		_, err1 := root.Lstat(cand)
		_, err2 := root.Lstat(cand + resultSuffix)
		_, err3 := root.Lstat(cand + reasonSuffix)
		if errors.Is(err1, fs.ErrNotExist) && errors.Is(err2, fs.ErrNotExist) && errors.Is(err3, fs.ErrNotExist) {
			return cand, nil
		}
	}
	return "", fmt.Errorf("no free name for %s in %s", name, sub)
}

// prune keeps the newest w.keep notes (by modification time: when the
// bundle was moved) in sub and removes the older ones with their bundles.
// What the watcher did not put there (no note beside it) is left alone.
func (w *watcher) prune(root *os.Root, sub, suffix string) {
	d, err := root.Open(sub)
	if err != nil {
		return
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return
	}
	type note struct {
		name string
		mod  time.Time
	}
	var notes []note
	for _, de := range entries {
		if de.Type().IsRegular() && strings.HasSuffix(de.Name(), suffix) && isBundleName(strings.TrimSuffix(de.Name(), suffix)) {
			if fi, err := de.Info(); err == nil {
				notes = append(notes, note{de.Name(), fi.ModTime()})
			}
		}
	}
	if len(notes) <= w.keep {
		return
	}
	sort.Slice(notes, func(i, j int) bool {
		if !notes[i].mod.Equal(notes[j].mod) {
			return notes[i].mod.After(notes[j].mod)
		}
		return notes[i].name > notes[j].name
	})
	for _, n := range notes[w.keep:] {
		bundle := filepath.Join(sub, strings.TrimSuffix(n.name, suffix))
		if err := root.Remove(bundle); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.log.Warn("removing an old bundle from the drop folder", "file", bundle, "err", err)
			continue
		}
		root.Remove(filepath.Join(sub, n.name))
	}
}

// WatchedBundle is one entry of <state>/watched.json: a bundle the drop
// folder imported or refused, by the sha256 of the whole file.
type WatchedBundle struct {
	SHA256  string    `json:"sha256"`
	Name    string    `json:"name"`
	At      time.Time `json:"at"`
	Outcome string    `json:"outcome"` // imported | refused
	Detail  string    `json:"detail"`
}

// watched is <state>/watched.json.
type watched struct {
	Bundles []WatchedBundle `json:"bundles"`
}

// Bounds of watched.json's fields, so that watchRemember entries always
// fit in maxWatchedSize (about 100 KiB at most).
const (
	maxWatchedName   = 255
	maxWatchedDetail = 512
	// maxNoteLen bounds a note beside a moved bundle.
	maxNoteLen = 4 << 10
)

// readWatched reads watched.json. A file that cannot be read or parsed
// (damaged, or grown past maxWatchedSize by someone else: the agent never
// writes more than watchRemember bounded entries) is not silently taken
// for an empty list: it is logged as an error, the drop folder keeps
// working with what could be read (nothing), and the next verdict
// rewrites the file whole. The price, said in the log: a bundle handled
// before and dropped again may be verified (and audited) once more.
func (a *Agent) readWatched() watched {
	var wd watched
	root, err := a.openRoot()
	if err != nil {
		return wd
	}
	defer root.Close()
	data, err := readFileRoot(root, watchedFile, maxWatchedSize)
	if errors.Is(err, fs.ErrNotExist) {
		return wd
	}
	if err == nil {
		if err = json.Unmarshal(data, &wd); err != nil {
			wd = watched{}
		}
	}
	if err != nil {
		a.log.Error("the drop folder's record of handled bundles cannot be read; it is rewritten at the next bundle, and a bundle handled before may be imported again if it is dropped again",
			"file", filepath.Join(a.dir, watchedFile), "err", err)
	}
	return wd
}

// truncateText cuts s to at most n bytes at a character boundary, marking
// the cut.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// watchedBundle is the drop folder's verdict on a file with this sha256,
// or nil.
func (a *Agent) watchedBundle(sum string) *WatchedBundle {
	wd := a.readWatched()
	if i := slices.IndexFunc(wd.Bundles, func(b WatchedBundle) bool { return b.SHA256 == sum }); i >= 0 {
		return &wd.Bundles[i]
	}
	return nil
}

// rememberWatched adds a verdict to watched.json, keeping the last
// watchRemember. Failing to write it is logged: the file is moved away
// all the same.
func (a *Agent) rememberWatched(sum, name, outcome, detail string) {
	if sum == "" {
		return
	}
	wd := a.readWatched()
	wd.Bundles = append(wd.Bundles, WatchedBundle{SHA256: sum, Name: truncateText(name, maxWatchedName), At: time.Now().UTC().Truncate(time.Second),
		Outcome: outcome, Detail: truncateText(detail, maxWatchedDetail)})
	if n := len(wd.Bundles); n > watchRemember {
		wd.Bundles = wd.Bundles[n-watchRemember:]
	}
	data, err := json.MarshalIndent(wd, "", "  ")
	if err == nil {
		var root *os.Root
		if root, err = a.openRoot(); err == nil {
			err = writeFileRoot(root, watchedFile, append(data, '\n'), 0o600)
			root.Close()
		}
	}
	if err != nil {
		a.log.Error("recording the drop folder's bundle", "err", err)
	}
}

package client

// The last import, for status (issue 18). A PC without the network never
// has a successful check of its repository; its freshness comes from the
// bundles it imports instead. Each successful import (the bundle verified;
// it staged something, or had nothing newer than what is installed) is
// recorded in <state>/last-import.json, beside last-check.json, and status
// judges the PC by whichever of the two is more recent: while the last
// import is more recent than the last successful check and its bundle's
// signed window is open, "no successful check" and an unreachable
// repository are not problems; once the window has closed, status says so
// (attention, exit 1). An online agent that never imported a bundle, or
// whose last successful check is newer than its last import, is judged
// exactly as before.

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// lastImportFile holds the last successful import (ImportResult).
const lastImportFile = "last-import.json"

// Outcomes of a successful import.
const (
	// ImportStaged: the bundle staged at least one release.
	ImportStaged = "staged"
	// ImportAwaiting: it staged a release that waits for a person to
	// authorize a feature (bcagent apply).
	ImportAwaiting = "awaiting-authorization"
	// ImportNothingNewer: it verified, and nothing it carries is newer
	// than what is installed.
	ImportNothingNewer = "nothing-newer"
)

// ImportResult (last-import.json, and status's last_import) is the last
// bundle that verified: when it was imported, its file name, its signed
// window, and what it staged.
type ImportResult struct {
	At               time.Time `json:"at"`
	Bundle           string    `json:"bundle"` // the file's base name
	Created          time.Time `json:"created"`
	Expires          time.Time `json:"expires"`
	TimestampVersion int64     `json:"timestamp_version"`
	Outcome          string    `json:"outcome"` // staged | awaiting-authorization | nothing-newer
	// Staged are the releases it staged, "notification-client 1.1.0".
	Staged []string `json:"staged"`
	// Expired is set by status: the window was over at the time of the
	// report. It is never stored.
	Expired bool `json:"expired,omitempty"`
}

// noteImport records a successful import for status. Failing to record it
// is logged, never the import's error (the import itself is done).
func (a *Agent) noteImport(rep *ImportReport, outcome string) {
	r := &ImportResult{At: time.Now().UTC().Truncate(time.Second), Bundle: filepath.Base(rep.Bundle),
		Created: rep.Created.UTC(), Expires: rep.Expires.UTC(), TimestampVersion: rep.Timestamp, Outcome: outcome, Staged: []string{}}
	for _, c := range rep.Components {
		if c.Staged != "" {
			r.Staged = append(r.Staged, c.Name+" "+c.Staged)
		}
	}
	data, jerr := json.MarshalIndent(r, "", "  ")
	root, rerr := a.openRoot()
	if jerr == nil && rerr == nil {
		defer root.Close()
		rerr = writeFileRoot(root, lastImportFile, append(data, '\n'), 0o600)
	}
	if err := errors.Join(jerr, rerr); err != nil {
		a.log.Error("recording the import for status", "err", err)
	}
}

// lastImport reads last-import.json (nil: no import recorded, or
// unreadable).
func (a *Agent) lastImport() *ImportResult {
	root, err := a.openRoot()
	if err != nil {
		return nil
	}
	defer root.Close()
	data, err := readFileRoot(root, lastImportFile, 1<<20)
	if err != nil {
		return nil
	}
	var r ImportResult
	if json.Unmarshal(data, &r) != nil || r.Expires.IsZero() {
		return nil
	}
	return &r
}

// importFreshness says whether the last import, rather than the last
// check, is the PC's freshness source (it is more recent than the last
// successful check, or there was none), and if so whether its window is
// still open at now.
func importFreshness(li *ImportResult, lc *CheckResult, now time.Time) (source, open bool) {
	if li == nil {
		return false, false
	}
	// Both are recorded to the second; in the same second the import
	// counts (the check's staleness rule returns with the next check).
	if lc != nil && lc.LastSuccess.After(li.At) {
		return false, false
	}
	return true, now.Before(li.Expires)
}

// offlineWindowOpen says whether a bundle is this PC's freshness source
// and its window is open at now: the service then applies what the bundle
// staged (by policy) although its check of the repository failed.
func (a *Agent) offlineWindowOpen(now time.Time) bool {
	source, open := importFreshness(a.lastImport(), a.lastCheck(), now)
	return source && open
}

// expiredBundleProblem is status's line for an import whose window is over.
func expiredBundleProblem(li *ImportResult) string {
	return fmt.Sprintf("the last bundle, %s (made %s, imported %s), expired on %s; bring a newer bundle or connect the PC to its repository",
		li.Bundle, stamp(li.Created), stamp(li.At), stamp(li.Expires))
}

package client

// Tests of the offline-bundle import and the drop folder that came out of
// a review of issue 18: the drop folder opens a file once and never by
// name again; "nothing for this PC" is believed only of a verified
// statement; watched.json stays readable; a failed multi-component import
// records nothing but its failure; an import resolves no critical
// notification it did not raise.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/repo"
)

// TestBundleTransportServesCheckedMetadata: metadata rewritten in the
// bundle file (in place, the same file) after its shape was checked is not
// served: the transport serves only the bytes whose sha256 the shape check
// saw.
func TestBundleTransportServesCheckedMetadata(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	e.publish("1.0.0")
	file := e.bundle("b.bcbundle")
	f, fi, err := openBundleFile(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := openBundle(f, file, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	span := b.entries["metadata/timestamp.json"]
	get := func() (*http.Response, error) {
		return (&bundleTransport{b: b}).RoundTrip(&http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: "https", Host: bundleHost, Path: "/metadata/timestamp.json"}})
	}
	resp, err := get()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := io.ReadAll(resp.Body)
	w, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte{want[20] ^ 1}, span.off+20); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if resp, err := get(); !errors.Is(err, ErrVerification) {
		var got []byte
		if resp != nil {
			got, _ = io.ReadAll(resp.Body)
		}
		t.Fatalf("metadata changed after the shape check: %v, served %d bytes (changed: %v)", err, len(got), string(got) != string(want))
	}
}

// signedStatementBundle rewrites the statement of bundle src with fn and
// signs it again with the repository's targets key (sign false: leaves
// the old signatures, which no longer match).
func (e *flowEnv) signedStatementBundle(src, out string, sign bool, fn func(*repo.BundleStatement)) string {
	e.t.Helper()
	entries := readTar(e.t, src)
	s, err := repo.ParseBundleStatement(entries[0].data)
	if err != nil {
		e.t.Fatal(err)
	}
	fn(&s.Signed)
	var data []byte
	if sign {
		data, err = repo.SignBundleStatement(s.Signed, e.roleKeys(repo.RoleTargets)[repo.RoleTargets])
	} else {
		data, err = json.Marshal(s)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	entries[0].data = data
	return writeTar(e.t, out, entries)
}

// otherReleases makes a statement carry n releases of components this PC
// does not have.
func otherReleases(n int) func(*repo.BundleStatement) {
	return func(s *repo.BundleStatement) {
		s.Releases = nil
		for i := range n {
			c := fmt.Sprintf("other-%d", i)
			s.Releases = append(s.Releases, repo.BundleRelease{Component: c, Platform: flowPlatform, Version: "1.0.0",
				Path: repo.ArtifactPath(c, flowPlatform, "1.0.0", c+".tar.gz")})
		}
	}
}

// TestBundleNothingForThisPC: "carries nothing for this PC" is believed
// only of a statement that verified: a forged one is refused (exit 3,
// audited), a signed one is "nothing imported" (audited as a verified
// bundle), and its message lists a few releases, not all of them. A
// statement with a bad release name is refused.
func TestBundleNothingForThisPC(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	e.publish("1.0.0")
	good := e.bundle("good.bcbundle")
	dir := t.TempDir()
	forged := e.signedStatementBundle(good, filepath.Join(dir, "forged.bcbundle"), false, otherReleases(12))
	signed := e.signedStatementBundle(good, filepath.Join(dir, "signed.bcbundle"), true, otherReleases(12))
	badName := e.signedStatementBundle(good, filepath.Join(dir, "badname.bcbundle"), true, func(s *repo.BundleStatement) {
		s.Releases[0].Component = "Evil\x1b[2J"
	})
	e.offline()

	_, err := e.importBundle(forged, time.Time{})
	if !errors.Is(err, ErrVerification) || errors.Is(err, ErrBundleNotNewer) || !strings.Contains(err.Error(), "is not signed") {
		t.Fatalf("a forged statement carrying nothing for this PC: %v, want a refusal", err)
	}
	_, err = e.importBundle(badName, time.Time{})
	if !errors.Is(err, ErrVerification) || !strings.Contains(err.Error(), "bad release") || strings.Contains(err.Error(), "\x1b") {
		t.Fatalf("a statement with a bad component name: %v, want a refusal naming it escaped", err)
	}
	var failures int
	e.do(func(a *Agent) error {
		au, _, err := a.ExportLogs()
		if err != nil {
			t.Fatal(err)
		}
		for _, le := range au {
			if strings.Contains(string(le.Entry), `"event":"`+string(EventVerificationFailure)+`"`) {
				failures++
			}
		}
		return nil
	})
	if failures != 2 {
		t.Errorf("%d verification-failure entries, want 2", failures)
	}

	_, err = e.importBundle(signed, time.Time{})
	if !errors.Is(err, ErrBundleNotNewer) || errors.Is(err, ErrVerification) {
		t.Fatalf("a signed bundle carrying nothing for this PC: %v, want ErrBundleNotNewer", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "other-4 1.0.0") || strings.Contains(msg, "other-5 1.0.0") || !strings.Contains(msg, "and 7 more") {
		t.Errorf("message %q: want the first 5 releases and \"and 7 more\"", msg)
	}
	e.do(func(a *Agent) error {
		au, _, err := a.ExportLogs()
		if err != nil {
			t.Fatal(err)
		}
		if !flowAuditHas(au, EventBundleImported) {
			t.Error("a verified bundle with nothing for this PC was not audited")
		}
		if li := a.lastImport(); li != nil {
			t.Errorf("a bundle with nothing for this PC became the last import: %+v", li)
		}
		return nil
	})
}

// TestWatchForgedNothingForThisPC: in the drop folder, a forged statement
// that carries nothing for this PC is refused (refused/, audited), not
// taken as verified.
func TestWatchForgedNothingForThisPC(t *testing.T) {
	t.Parallel()
	e := newDropEnv(t, nil)
	e.publish("1.0.0")
	good := e.bundle("good.bcbundle")
	forged := e.signedStatementBundle(good, filepath.Join(t.TempDir(), "forged.bcbundle"), false, otherReleases(3))
	e.offline()
	e.drop(forged, "forged.bcbundle")
	e.scan()
	e.scan()
	if exists(filepath.Join(e.dir, watchImported, "forged.bcbundle")) || !exists(filepath.Join(e.dir, watchRefused, "forged.bcbundle")) {
		t.Fatal("a forged statement with nothing for this PC was not refused")
	}
	if got := e.auditCount(EventVerificationFailure); got != 1 {
		t.Errorf("%d verification-failure entries, want 1", got)
	}
}

// TestWatchedStaysReadable: watched.json keeps its entries short, so a
// long verdict does not make it unreadable (and the agent forget every
// bundle); a damaged watched.json is rewritten at the next verdict.
func TestWatchedStaysReadable(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	sum := strings.Repeat("ab", 32)
	e.do(func(a *Agent) error {
		for i := range watchRemember {
			a.rememberWatched(fmt.Sprintf("%064x", i), "b.bcbundle", watchImported, strings.Repeat("nothing imported: carries x 1.0.0 for linux-amd64, ", 2000))
		}
		a.rememberWatched(sum, strings.Repeat("n", 5000)+".bcbundle", watchRefused, "refused")
		if seen := a.watchedBundle(sum); seen == nil {
			t.Error("after long verdicts, the last one is forgotten")
		} else if len(seen.Name) > maxWatchedName {
			t.Errorf("a name of %d bytes is kept, want at most %d", len(seen.Name), maxWatchedName)
		}
		if seen := a.watchedBundle(fmt.Sprintf("%064x", 1)); seen == nil {
			t.Error("after long verdicts, an earlier one is forgotten")
		}
		return nil
	})
	if fi, err := os.Stat(filepath.Join(e.state, watchedFile)); err != nil || fi.Size() > maxWatchedSize {
		t.Fatalf("watched.json: %v, %d bytes", err, fi.Size())
	}
	if err := os.WriteFile(filepath.Join(e.state, watchedFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.do(func(a *Agent) error {
		a.rememberWatched(sum, "c.bcbundle", watchImported, "ok")
		if seen := a.watchedBundle(sum); seen == nil || seen.Name != "c.bcbundle" {
			t.Errorf("a damaged watched.json was not rewritten: %+v", seen)
		}
		return nil
	})
}

// TestBundleAllOrNothing: a bundle of two components whose second
// artifact was tampered with is refused whole: neither component is
// staged, nothing of either is left in staging/, state.json is as it was,
// and no "staged" audit entry or notification is written for the first.
func TestBundleAllOrNothing(t *testing.T) {
	t.Parallel()
	const second = "remote-support"
	e := newFlowEnv(t, func(c *Config) { c.Components = []string{flowComp, second} })
	e.publish("1.1.0")
	data := testutil.TarGz(t, testutil.TarEntry{Name: "bin/" + second, Body: "#!/bin/sh\necho 1.1.0\n", Mode: 0o755})
	e.publishWith("1.1.0", second+"-1.1.0.tar.gz", data, func(o *flowReleaseOptions) { o.Component = second })
	good := filepath.Join(e.dir, "two.bcbundle")
	e.mustBcpublish("bundle", "create", "--repo", e.repoDir, "--keys", e.keysDir,
		"--component", flowComp, "--component", second, "--platform", flowPlatform, "--out", good)
	bad := tamperedBundle(t, good, second+"-1.1.0.tar.gz")
	e.offline()
	skip := []string{"audit.jsonl", "audit.jsonl.head", "notifications.json", "agent.lock", "activity.json"}
	before := snapshotTree(t, e.state, skip...)
	_, err := e.importBundle(bad, time.Time{})
	if !errors.Is(err, ErrVerification) || !strings.Contains(err.Error(), second) {
		t.Fatalf("a bundle whose second artifact was tampered with: %v, want a refusal naming %s", err, second)
	}
	sameTree(t, "the state directory after a refused two-component bundle", before, snapshotTree(t, e.state, skip...))
	if ents, _ := os.ReadDir(filepath.Join(e.state, stagingRoot)); len(ents) > 0 {
		var names []string
		for _, d := range ents {
			names = append(names, d.Name())
		}
		t.Errorf("staging/ holds %v after a refused import", names)
	}
	e.do(func(a *Agent) error {
		au, _, err := a.ExportLogs()
		if err != nil {
			t.Fatal(err)
		}
		if flowAuditHas(au, EventStaged) {
			t.Error("a refused import wrote a \"staged\" audit entry")
		}
		if !flowAuditHas(au, EventVerificationFailure) {
			t.Error("the refusal was not audited")
		}
		notes, _ := a.Notifications()
		if flowHasNote(notes, NoteStaged) || flowHasNote(notes, NoteUpdateAvailable) {
			t.Errorf("a refused import left notifications of what it did not keep: %+v", notes)
		}
		if !flowHasNote(notes, NoteVerificationFailure) {
			t.Errorf("no verification-failure notification: %+v", notes)
		}
		return nil
	})
	// The good bundle stages both.
	if _, err := e.importBundle(good, time.Time{}); err != nil {
		t.Fatalf("the good bundle: %v", err)
	}
	e.do(func(a *Agent) error {
		st, err := a.loadState()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{flowComp, second} {
			if st.Components[c].Staged == nil {
				t.Errorf("%s not staged by the good bundle", c)
			}
		}
		return nil
	})
}

// TestBundleImportKeepsAlerts: importing a good bundle resolves neither an
// online check's verification failure (a man in the middle), nor that of
// a refused bundle, nor a component's; a later successful online check
// resolves the repository-wide one as before.
func TestBundleImportKeepsAlerts(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	res := e.publish("1.1.0")
	good := e.bundle("good.bcbundle")
	entries := readTar(t, good)
	stmt, err := repo.ParseBundleStatement(entries[0].data)
	if err != nil {
		t.Fatal(err)
	}
	created, _ := stmt.Signed.CreatedTime()
	stmt.Signed.Expires = repo.BundleTime(created.Add(80 * 24 * time.Hour))
	entries[0].data, _ = json.Marshal(stmt)
	forged := writeTar(t, filepath.Join(t.TempDir(), "forged.bcbundle"), entries)

	// A man in the middle: the artifact, then the timestamp, changed in
	// transit.
	e.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, flowArtifact("1.1.0")) {
			w.Write(make([]byte, res.Length))
			return true
		}
		return false
	})
	if err := e.stage(); !errors.Is(err, ErrVerification) {
		t.Fatalf("stage of a tampered download: %v", err)
	}
	ts, err := os.ReadFile(filepath.Join(e.repoDir, "metadata", "timestamp.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(ts, &m)
	m["signed"].(map[string]any)["version"] = m["signed"].(map[string]any)["version"].(float64) + 7
	tampered, _ := json.Marshal(m)
	e.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/metadata/timestamp.json" {
			w.Write(tampered)
			return true
		}
		return false
	})
	if err := e.check(); !errors.Is(err, ErrVerification) {
		t.Fatalf("check with a tampered timestamp: %v", err)
	}
	critical := func() (repoWide, component bool) {
		e.do(func(a *Agent) error {
			notes, _ := a.Notifications()
			for _, n := range notes {
				if n.Kind == NoteVerificationFailure {
					repoWide = repoWide || n.Component == ""
					component = component || n.Component == flowComp
				}
			}
			return nil
		})
		return
	}
	if r, c := critical(); !r || !c {
		t.Fatalf("after the man in the middle: repository-wide alert %v, component alert %v", r, c)
	}
	e.offline()
	if _, err := e.importBundle(forged, time.Time{}); !errors.Is(err, ErrVerification) {
		t.Fatalf("forged bundle: %v", err)
	}
	if _, err := e.importBundle(good, time.Time{}); err != nil {
		t.Fatalf("good bundle: %v", err)
	}
	if c := e.componentState(); c.Staged == nil {
		t.Fatal("the good bundle staged nothing")
	}
	if r, c := critical(); !r || !c {
		t.Errorf("a good import resolved critical notifications it did not raise: repository-wide alert kept %v, component alert kept %v", r, c)
	}
	e.setHook(nil)
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if r, _ := critical(); r {
		t.Error("a successful online check no longer resolves the repository-wide alert")
	}
}

// TestBundleRefusedKeepsStaged: an offline PC has a bundle's releases
// staged (waiting for the maintenance window); a later bundle that offers
// newer releases and is refused part-way (its second artifact tampered
// with) leaves the first bundle's staged files and state as they were, and
// they still install. An online PC would download again; an offline one
// could not.
func TestBundleRefusedKeepsStaged(t *testing.T) {
	t.Parallel()
	const second = "remote-support"
	e := newFlowEnv(t, func(c *Config) { c.Components = []string{flowComp, second} })
	publishBoth := func(v string) string {
		e.publish(v)
		data := testutil.TarGz(t, testutil.TarEntry{Name: "bin/" + second, Body: "#!/bin/sh\necho " + v + "\n", Mode: 0o755})
		e.publishWith(v, second+"-"+v+".tar.gz", data, func(o *flowReleaseOptions) { o.Component = second })
		out := filepath.Join(e.dir, v+".bcbundle")
		e.mustBcpublish("bundle", "create", "--repo", e.repoDir, "--keys", e.keysDir,
			"--component", flowComp, "--component", second, "--platform", flowPlatform, "--out", out)
		return out
	}
	first := publishBoth("1.1.0")
	next := publishBoth("1.2.0")
	bad := tamperedBundle(t, next, second+"-1.2.0.tar.gz")
	e.offline()
	if _, err := e.importBundle(first, time.Time{}); err != nil {
		t.Fatalf("the first bundle: %v", err)
	}
	skip := []string{"audit.jsonl", "audit.jsonl.head", "notifications.json", "agent.lock", "activity.json", "last-import.json"}
	before := snapshotTree(t, e.state, skip...)
	if _, err := e.importBundle(bad, time.Time{}); !errors.Is(err, ErrVerification) {
		t.Fatalf("a newer bundle whose second artifact was tampered with: %v, want a refusal", err)
	}
	sameTree(t, "the state directory after a refused bundle, with an earlier bundle's releases staged", before, snapshotTree(t, e.state, skip...))
	// An import stopped (killed, power lost) while it had a component's
	// staged files parked, and a stale copy of another's: the next command
	// (here apply, in the maintenance window) puts back the first and
	// drops the second before anything looks at staging/.
	parked := filepath.Join(e.state, parkedRoot)
	if err := os.MkdirAll(filepath.Join(parked, second, "0.9.0"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(e.state, stagingRoot, flowComp), filepath.Join(parked, flowComp)); err != nil {
		t.Fatal(err)
	}
	if err := e.apply(ApplyOptions{}); err != nil {
		t.Fatalf("apply of the first bundle's staged releases after a refused import and a stopped one: %v", err)
	}
	if ents, _ := os.ReadDir(parked); len(ents) != 0 {
		t.Errorf("%s holds %d entries after the agent opened its state", parked, len(ents))
	}
	e.do(func(a *Agent) error {
		st, err := a.loadState()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{flowComp, second} {
			if got := st.Components[c].Installed; got != "1.1.0" {
				t.Errorf("%s installed %q, want the first bundle's 1.1.0", c, got)
			}
		}
		return nil
	})
}

// tamperedBundle is a copy of the bundle file with one bit of the entry
// whose name ends in suffix flipped.
func tamperedBundle(t *testing.T, file, suffix string) string {
	t.Helper()
	entries := readTar(t, file)
	i := findEntry(entries, func(n string) bool { return strings.HasSuffix(n, suffix) })
	if i < 0 {
		t.Fatalf("no entry ending in %s in %s", suffix, file)
	}
	entries[i].data[len(entries[i].data)/2] ^= 1
	return writeTar(t, filepath.Join(t.TempDir(), "bad.bcbundle"), entries)
}

package client

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/repo"
)

// offline makes every request of the agent to its repository fail, so
// that an import that touched the network would be seen.
func (e *flowEnv) offline() {
	e.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		e.t.Errorf("the agent made a request while offline: %s", r.URL.Path)
		http.Error(w, "offline", http.StatusServiceUnavailable)
		return true
	})
}

// bundle runs bcpublish bundle create and returns the file.
func (e *flowEnv) bundle(name string, args ...string) string {
	e.t.Helper()
	out := filepath.Join(e.dir, name)
	e.mustBcpublish(append([]string{"bundle", "create", "--repo", e.repoDir, "--keys", e.keysDir,
		"--component", flowComp, "--platform", flowPlatform, "--out", out}, args...)...)
	return out
}

func (e *flowEnv) importBundle(file string, now time.Time) (*ImportReport, error) {
	var rep *ImportReport
	err := e.do(func(a *Agent) error {
		var err error
		rep, err = a.Import(context.Background(), file, ImportOptions{Now: now})
		return err
	})
	return rep, err
}

// snapshotTree records every file under dir (path, mode, size, sha256).
func snapshotTree(t *testing.T, dir string, skip ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		for _, s := range skip {
			if rel == s || strings.HasPrefix(rel, s+string(filepath.Separator)) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return nil
		}
		v := fi.Mode().String()
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			sum := sha256.Sum256(data)
			v += " " + hex.EncodeToString(sum[:])
		} else if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			v += " -> " + target
		}
		out[rel] = v
		return nil
	})
	return out
}

func sameTree(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	var diffs []string
	for k, v := range before {
		if after[k] != v {
			diffs = append(diffs, "changed or removed: "+k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			diffs = append(diffs, "added: "+k)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("%s changed: %s", what, strings.Join(diffs, "; "))
	}
}

// TestBundleImportAndApply: a bundle made with bcpublish is imported by
// an agent that cannot reach its repository, stages the release (which
// waits for consent, as online), and apply with a person's decision
// installs it; the consent and audit logs have it.
func TestBundleImportAndApply(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	e.publish("1.0.0")
	e.install("1.0.0")
	e.publish("1.1.0", flowGated, flowFree)
	file := e.bundle("update.bcbundle")
	if _, err := os.Stat(file + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("bundle create left %s.tmp", file)
	}
	e.offline()
	rep, err := e.importBundle(file, time.Time{})
	if !errors.Is(err, ErrAuthorizationRequired) {
		t.Fatalf("import of a gated release: %v, want ErrAuthorizationRequired", err)
	}
	if rep == nil || len(rep.Components) != 1 || rep.Components[0].Staged != "1.1.0" {
		t.Fatalf("import report %+v", rep)
	}
	if c := e.componentState(); c.State != StateAwaitingAuthorization || c.Staged == nil || c.Staged.Version != "1.1.0" {
		t.Fatalf("after import: %+v", c)
	}
	if got := e.current(); got != "1.0.0" {
		t.Fatalf("import installed %q", got)
	}
	// The prompt path works as online.
	p := &flowPrompter{granted: true, by: "Dr. Ada Lovelace"}
	if err := e.apply(ApplyOptions{Prompter: p, Terminal: true}); err != nil {
		t.Fatalf("apply after import: %v", err)
	}
	if got := e.current(); got != "1.1.0" {
		t.Fatalf("current %q after apply, want 1.1.0", got)
	}
	if len(p.asked) != 1 || p.asked[0] != flowGated.ID {
		t.Errorf("prompt asked %v, want %s", p.asked, flowGated.ID)
	}
	e.do(func(a *Agent) error {
		au, co, err := a.ExportLogs()
		if err != nil {
			t.Fatal(err)
		}
		if !flowAuditHas(au, EventBundleImported) || !flowAuditHas(au, EventInstalled) {
			t.Errorf("audit log lacks the import or the install")
		}
		if !flowAuditHas(co, EventConsentDecision) && len(co) == 0 {
			t.Errorf("consent log has no decision")
		}
		return nil
	})
}

// tarEntry is one entry of a bundle, for tests that take one apart.
type tarEntry struct {
	hdr  tar.Header
	data []byte
}

func readTar(t *testing.T, file string) []tarEntry {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var out []tarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{*h, data})
	}
}

func writeTar(t *testing.T, file string, entries []tarEntry) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func findEntry(entries []tarEntry, pred func(name string) bool) int {
	for i, e := range entries {
		if pred(e.hdr.Name) {
			return i
		}
	}
	return -1
}

// TestBundleRefused: every damaged, forged, stale or foreign bundle is
// refused with a verification failure (exit 3) naming what is wrong, and
// the agent's installed state, trusted metadata and state.json are as
// they were; nothing is left in staging.
func TestBundleRefused(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	e.publish("1.0.0")
	e.install("1.0.0")
	old := e.publish("1.1.0")
	_ = old
	good := e.bundle("good.bcbundle")
	entries := readTar(t, good)
	stmt, err := repo.ParseBundleStatement(entries[0].data)
	if err != nil {
		t.Fatal(err)
	}
	created, _ := stmt.Signed.CreatedTime()
	dir := t.TempDir()
	mutate := func(name string, fn func([]tarEntry) []tarEntry) string {
		cp := make([]tarEntry, len(entries))
		for i, en := range entries {
			cp[i] = tarEntry{en.hdr, append([]byte(nil), en.data...)}
		}
		return writeTar(t, filepath.Join(dir, name), fn(cp))
	}
	artifact := findEntry(entries, func(n string) bool { return strings.HasSuffix(n, flowArtifact("1.1.0")) })
	timestamp := findEntry(entries, func(n string) bool { return n == "metadata/timestamp.json" })
	sig := findEntry(entries, func(n string) bool { return strings.HasSuffix(n, ".p7s") })
	if artifact < 0 || timestamp < 0 || sig < 0 {
		t.Fatalf("bundle entries: artifact %d timestamp %d signature %d", artifact, timestamp, sig)
	}

	// A bundle of another repository (another root).
	other := newFlowEnv(t, nil)
	other.publish("1.1.0")
	foreignRoot := other.bundle("other.bcbundle")

	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	gzFile := filepath.Join(dir, "gz.bcbundle")
	os.WriteFile(gzFile, gz.Bytes(), 0o644)
	random := filepath.Join(dir, "random.bcbundle")
	os.WriteFile(random, bytes.Repeat([]byte("not a bundle at all "), 1000), 0o644)
	truncated := filepath.Join(dir, "truncated.bcbundle")
	cut := bytes.Index(raw, entries[artifact].data) + len(entries[artifact].data)/2
	os.WriteFile(truncated, raw[:cut], 0o644)

	stmtWith := func(fn func(*repo.SignedBundleStatement)) []byte {
		s, err := repo.ParseBundleStatement(entries[0].data)
		if err != nil {
			t.Fatal(err)
		}
		fn(s)
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	link := func(typ byte) func([]tarEntry) []tarEntry {
		return func(en []tarEntry) []tarEntry {
			en[sig] = tarEntry{tar.Header{Name: en[sig].hdr.Name, Typeflag: typ, Linkname: "../../etc/passwd", Mode: 0o777}, nil}
			return en
		}
	}
	cases := []struct {
		name string
		file string
		now  time.Time
		want string
	}{
		{"artifact byte flipped", mutate("flip-artifact", func(en []tarEntry) []tarEntry { en[artifact].data[100] ^= 1; return en }), time.Time{}, flowArtifact("1.1.0")},
		{"metadata byte flipped", mutate("flip-ts", func(en []tarEntry) []tarEntry { en[timestamp].data[30] ^= 1; return en }), time.Time{}, "metadata/timestamp.json"},
		{"statement changed", mutate("stmt", func(en []tarEntry) []tarEntry {
			en[0].data = stmtWith(func(s *repo.SignedBundleStatement) {
				s.Signed.Expires = repo.BundleTime(created.Add(80 * 24 * time.Hour))
			})
			return en
		}), time.Time{}, "bundle.json is not signed"},
		{"artifact swapped for another", mutate("swap", func(en []tarEntry) []tarEntry {
			en[artifact].data = flowTarball(t, "1.0.0")
			return en
		}), time.Time{}, "notification-client/linux-amd64/1.1.0/" + flowArtifact("1.1.0")},
		{"entries reordered", mutate("reorder", func(en []tarEntry) []tarEntry {
			en[artifact], en[sig] = en[sig], en[artifact]
			return en
		}), time.Time{}, "a file was swapped"},
		{"extra entry", mutate("extra", func(en []tarEntry) []tarEntry {
			return append(en, tarEntry{tar.Header{Name: "targets/evil", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("x")})
		}), time.Time{}, "targets/evil"},
		{"symlink entry", mutate("symlink", link(tar.TypeSymlink)), time.Time{}, "symbolic link"},
		{"hard link entry", mutate("hardlink", link(tar.TypeLink)), time.Time{}, "hard link"},
		{"path traversal", mutate("traversal", func(en []tarEntry) []tarEntry {
			en[0].data = stmtWith(func(s *repo.SignedBundleStatement) { s.Signed.Entries[0].Name = "metadata/../../x.json" })
			en[1].hdr.Name = "metadata/../../x.json"
			return en
		}), time.Time{}, "bad entry name"},
		{"absolute path", mutate("absolute", func(en []tarEntry) []tarEntry {
			en[0].data = stmtWith(func(s *repo.SignedBundleStatement) { s.Signed.Entries[0].Name = "/etc/x.json" })
			en[1].hdr.Name = "/etc/x.json"
			return en
		}), time.Time{}, "bad entry name"},
		{"many entries", mutate("many", func(en []tarEntry) []tarEntry {
			en[0].data = stmtWith(func(s *repo.SignedBundleStatement) {
				for i := 0; i < repo.MaxBundleEntries; i++ {
					s.Signed.Entries = append(s.Signed.Entries, repo.BundleEntry{Name: "targets/x" + strings.Repeat("y", i%50), Length: 1, SHA256: strings.Repeat("0", 64)})
				}
			})
			return en
		}), time.Time{}, "entries (want 1 to"},
		{"huge declared size", mutate("huge", func(en []tarEntry) []tarEntry {
			en[0].data = stmtWith(func(s *repo.SignedBundleStatement) { s.Signed.Entries[len(s.Signed.Entries)-1].Length = 1 << 40 })
			return en
		}), time.Time{}, "declares 1099511627776 bytes"},
		{"truncated", truncated, time.Time{}, "bytes"},
		{"gzip", gzFile, time.Time{}, "not a bcupdate bundle"},
		{"random file", random, time.Time{}, "not a bcupdate bundle"},
		{"plain tar", writeTar(t, filepath.Join(dir, "plain.tar"), []tarEntry{{tar.Header{Name: "hello.txt", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("hello")}}), time.Time{}, "first entry is \"hello.txt\""},
		{"window over", good, created.Add(repo.DefaultBundleValidity + time.Hour), "expired"},
		{"made in the future", good, created.Add(-2 * time.Hour), "in the future"},
		{"another repository", foreignRoot, time.Time{}, "not signed by the keys this PC trusts"},
	}
	e.offline()
	skip := []string{"audit.jsonl", "audit.jsonl.head", "notifications.json", "agent.lock", "activity.json"}
	before := snapshotTree(t, e.state, skip...)
	for _, c := range cases {
		_, err := e.importBundle(c.file, c.now)
		if !errors.Is(err, ErrVerification) {
			t.Errorf("%s: import gave %v, want a verification failure", c.name, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not name %q", c.name, err, c.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is more than one line: %q", c.name, err)
		}
		after := snapshotTree(t, e.state, skip...)
		if after["state.json"] != before["state.json"] && os.Getenv("BUNDLE_DEBUG") != "" {
			b, _ := os.ReadFile(filepath.Join(e.state, "state.json"))
			t.Logf("state.json after %s: %s", c.name, b)
		}
		sameTree(t, c.name, before, after)
		before = after
	}
	if got := e.current(); got != "1.0.0" {
		t.Fatalf("current %q after refused bundles", got)
	}
	// The good bundle still imports after all that.
	if _, err := e.importBundle(good, time.Time{}); err != nil {
		t.Fatalf("good bundle: %v", err)
	}
	e.do(func(a *Agent) error {
		au, err := a.auditLog().Verify()
		if err != nil {
			t.Fatal(err)
		}
		if !flowAuditHas(au, EventVerificationFailure) {
			t.Error("refused bundles were not audited")
		}
		return nil
	})
}

// TestBundleFreshness: a bundle older than the metadata the agent trusts
// is refused as a rollback, one whose release is older than the installed
// one imports nothing (ErrBundleNotNewer), and importing never changes the
// online cache's timestamp, snapshot or targets, nor lowers the root.
func TestBundleFreshness(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	e.publish("1.0.0")
	e.install("1.0.0")
	e.publish("1.1.0")
	old := e.bundle("old.bcbundle")
	e.publish("1.2.0")
	if err := e.check(); err != nil { // the agent now trusts newer metadata
		t.Fatal(err)
	}
	tufFiles := []string{"root.json", "timestamp.json", "snapshot.json", "targets.json"}
	read := func() map[string]string {
		out := map[string]string{}
		for _, f := range tufFiles {
			b, _ := os.ReadFile(filepath.Join(e.state, "tuf", f))
			out[f] = string(b)
		}
		return out
	}
	before := read()
	e.offline()
	_, err := e.importBundle(old, time.Time{})
	if !errors.Is(err, ErrVerification) || !strings.Contains(err.Error(), "older than what this agent has already seen") {
		t.Fatalf("import of a bundle older than the trusted metadata: %v, want a rollback refusal", err)
	}
	if c := e.componentState(); c.Staged != nil {
		t.Fatalf("rollback bundle staged %+v", c.Staged)
	}
	if after := read(); !maps.Equal(after, before) {
		t.Errorf("the refused rollback bundle changed the trusted metadata in tuf/")
	}
	e.setHook(nil)
	e.install("1.2.0")
	before = read()
	stale := e.bundle("stale.bcbundle", "--version", "1.1.0")
	e.offline()
	_, err = e.importBundle(stale, time.Time{})
	if !errors.Is(err, ErrBundleNotNewer) || errors.Is(err, ErrVerification) {
		t.Fatalf("import of a release older than the installed one: %v, want ErrBundleNotNewer", err)
	}
	if got := e.current(); got != "1.2.0" {
		t.Fatalf("current %q", got)
	}
	after := read()
	for _, f := range tufFiles {
		if before[f] != after[f] {
			t.Errorf("import changed tuf/%s", f)
		}
	}
	// A newer release then imports over the floor the last import left.
	e.setHook(nil)
	e.publish("1.3.0")
	newer := e.bundle("newer.bcbundle")
	e.offline()
	if _, err := e.importBundle(newer, time.Time{}); err != nil {
		t.Fatalf("newer bundle: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.state, "tuf", importedDir, "timestamp.json")); err != nil {
		t.Errorf("no import floor kept: %v", err)
	}
	// The stale bundle is now below the import floor too.
	if _, err := e.importBundle(stale, time.Time{}); !errors.Is(err, ErrVerification) {
		t.Errorf("bundle below the import floor: %v, want a rollback refusal", err)
	}
	if err := e.apply(ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := e.current(); got != "1.3.0" {
		t.Fatalf("current %q, want 1.3.0", got)
	}
}

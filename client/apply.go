package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/archive"
	"github.com/beckmanconnect/bcupdate/internal/atomicfile"
	"github.com/beckmanconnect/bcupdate/internal/errs"
	"github.com/beckmanconnect/bcupdate/repo"
)

// ErrAuthorizationRequired: a release turns on a gated feature that has no
// recorded decision; nothing was activated (exit code 4).
var ErrAuthorizationRequired = errs.ErrAuthorizationRequired

// Apply installs every staged release (or only's), in three steps:
//
//  1. the consent gate, one component at a time: decisions from o (or a
//     person at the terminal) are recorded in the consent log before
//     anything activates; a release still waiting for a decision is left
//     staged and Apply returns ErrAuthorizationRequired;
//  2. side by side (at most maxParallel): each decided release's staged
//     file is verified again (sha256 and code signature) and unpacked into
//     <install-root>/<component>/<version>, and then everything unpacked is
//     made durable in one fsync pass;
//  3. under one journal for all of them: `current` is switched, installers
//     and health checks run, features.json is written, and state.json
//     commits every install at once (journal.go). A release whose installer
//     or health check fails is put back on its old version, the others
//     stay installed.
//
// A component that fails stays on its old version; Apply returns the first
// failure in the configured order.
func (a *Agent) Apply(ctx context.Context, only string, o ApplyOptions) (*CheckReport, error) {
	names, err := a.selectComponents(only)
	if err != nil {
		return nil, err
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	st, err := a.loadState()
	if err != nil {
		return nil, err
	}
	if err := a.checkDecisionTargets(st, names, o); err != nil {
		return nil, err
	}
	var waiting error
	var ready []*prepared
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		err := func() error {
			defer a.beginBatch(ctx)()
			c := st.Components[name]
			if c.Staged == nil {
				return a.decideInstalled(ctx, st, name, o)
			}
			active, err := a.decide(ctx, st, name, c.Staged, o)
			if errors.Is(err, ErrAuthorizationRequired) {
				waiting = errors.Join(waiting, err)
				return a.markAwaiting(name, c, err)
			}
			if err != nil {
				return a.failed(fmt.Errorf("apply %s %s: %w", name, c.Staged.Version, err), name, c.Staged.Version)
			}
			ready = append(ready, &prepared{name: name, c: c, rel: c.Staged, active: active})
			return nil
		}()
		if err != nil {
			return nil, err // nothing installed, state.json as it was
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	forEach(len(ready), maxParallel, func(i int) { ready[i].err = a.prepare(ready[i]) })
	forEach(len(ready), maxParallel, func(i int) {
		if p := ready[i]; p.err == nil && p.dest != "" {
			p.err = syncPrepared(p.dest)
		}
	})
	failure, rolledBack := a.installPrepared(ctx, st, ready)
	if err := a.saveState(st); err != nil {
		return nil, errors.Join(failure, err)
	}
	switch {
	case failure != nil && rolledBack:
		return a.report(nil, st), failure
	case failure != nil:
		return nil, failure
	case waiting != nil:
		return a.report(nil, st), waiting
	}
	return a.report(nil, st), nil
}

// checkDecisionTargets refuses --authorize/--decline IDs that name no
// gated feature of a staged or installed release of the selected components.
func (a *Agent) checkDecisionTargets(st *State, names []string, o ApplyOptions) error {
	for _, id := range append(append([]string{}, o.Authorize...), o.Decline...) {
		found := false
		for _, name := range names {
			c := st.Components[name]
			for _, rel := range []*Release{c.Staged, c.InstalledRelease} {
				for _, f := range a.gatedFeatures(st, rel) {
					found = found || f.ID == id
				}
			}
		}
		if !found {
			return usagef("feature %q is not a gated feature of any staged or installed release on this device", id)
		}
	}
	return nil
}

// decideInstalled applies --authorize/--decline to the installed release
// (to turn a feature back on after a revoke, or off), with nothing staged.
func (a *Agent) decideInstalled(ctx context.Context, st *State, name string, o ApplyOptions) error {
	c := st.Components[name]
	if c.InstalledRelease == nil || len(o.Authorize)+len(o.Decline) == 0 {
		return nil
	}
	touches := false
	for _, f := range a.gatedFeatures(st, c.InstalledRelease) {
		touches = touches || slices.Contains(o.Authorize, f.ID) || slices.Contains(o.Decline, f.ID)
	}
	if !touches {
		return nil
	}
	o.Prompter = nil
	active, err := a.decide(ctx, st, name, c.InstalledRelease, o)
	if err != nil && !errors.Is(err, ErrAuthorizationRequired) {
		return err
	}
	if err != nil {
		// Other features still wait: activate only what was decided.
		active = a.decidedActive(st, name, c.InstalledRelease)
	}
	return a.writeFeatures(name, active)
}

// decidedActive lists the features of rel active under standing decisions.
func (a *Agent) decidedActive(st *State, name string, rel *Release) []string {
	decs, err := a.decisions()
	if err != nil {
		decs = nil
	}
	gated := a.gatedFeatures(st, rel)
	var active []string
	for _, f := range rel.Meta.Features {
		isGated := slices.ContainsFunc(gated, func(g repo.Feature) bool { return g.ID == f.ID })
		if !isGated || decisionFor(decs, name, f) == DecisionGranted {
			active = append(active, f.ID)
		}
	}
	return active
}

func (a *Agent) markAwaiting(name string, c *ComponentState, err error) error {
	return a.transition(name, c, Awaiting, occasion{Version: c.Staged.Version, Detail: err.Error(),
		Message: fmt.Sprintf("%s %s is staged and waits for a person to authorize its new features: %v", name, c.Staged.Version, waitDetail(err))})
}

// prepared is a decided release on its way in: verified again and
// unpacked into its version directory (dest), not yet pointed at.
type prepared struct {
	name   string
	c      *ComponentState
	rel    *Release
	active []string // the features to turn on, as decided
	dest   string   // <install-root>/<component>/<version>; "" for a self-update
	err    error    // what stopped it before the switch
	// spoiled: the staged copy itself no longer verifies (changed on
	// disk, or lost in a power cut before it reached the disk)
	spoiled bool
	j       intent // its part of the journal
	failed  error  // why its installer or health check failed (it was undone)
}

// prepare verifies p's staged file again and unpacks it into its version
// directory, without fsync (syncPrepared does that for all of them). It
// changes nothing that is running and nothing in state: it may run beside
// other components' (it touches only this component's directories).
func (a *Agent) prepare(p *prepared) error {
	rel := p.rel
	var sig []byte
	if rel.Meta.Codesign == repo.CodesignCMS {
		var err error
		if sig, err = a.readStaged(rel.File+repo.SignatureSuffix, 1<<20); err != nil {
			p.spoiled = true // download it again
			return fmt.Errorf("staged signature: %w", err)
		}
	}
	if _, err := a.verifyStaged(rel.File, sig, rel); err != nil {
		p.spoiled = errors.Is(err, ErrVerification) || errors.Is(err, fs.ErrNotExist)
		return err
	}
	if rel.Meta.Install == repo.InstallSelf {
		return nil // selfUpdate replaces the running binary (installPrepared)
	}
	compDir := filepath.Join(a.cfg.InstallRoot, p.name)
	if err := os.MkdirAll(compDir, 0o755); err != nil {
		return err
	}
	if rel.Version == "current" || strings.HasPrefix(rel.Version, ".") {
		return verifyf("version %q cannot be installed", rel.Version)
	}
	if rel.Version == p.c.Installed {
		return fmt.Errorf("%s %s is already the installed version", p.name, rel.Version)
	}
	incoming := filepath.Join(compDir, ".incoming-"+rel.Version)
	if err := os.RemoveAll(incoming); err != nil {
		return err
	}
	if err := os.Mkdir(incoming, 0o755); err != nil {
		return err
	}
	if err := a.unpack(rel, incoming); err != nil {
		os.RemoveAll(incoming)
		return classifyTUF(err)
	}
	dest := filepath.Join(compDir, rel.Version)
	if err := os.RemoveAll(dest); err != nil {
		os.RemoveAll(incoming)
		return err
	}
	if err := os.Rename(incoming, dest); err != nil {
		os.RemoveAll(incoming)
		return err
	}
	p.dest = dest
	return nil
}

// syncPrepared makes an unpacked version directory durable: every file and
// directory in it, and its entry in the component directory. Nothing
// points at it before this returns.
func syncPrepared(dest string) error {
	if err := archive.SyncTree(dest); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(dest))
}

// installPrepared switches the prepared releases in under one journal,
// runs their installers and health checks, and commits them all in st
// (saved by the caller). A release whose installer or health check fails
// is undone on its own and held back; one that could not be prepared
// stays staged (or, if its staged copy no longer verifies, is dropped so
// the next check downloads it again). It returns the first failure in
// order, and whether that one was a rollback. Self-updates come last, one
// at a time, as before.
func (a *Agent) installPrepared(ctx context.Context, st *State, ready []*prepared) (failure error, rolledBack bool) {
	defer a.beginBatch(ctx)()
	fail := func(err error, rb bool) {
		if failure == nil {
			failure, rolledBack = err, rb
		}
	}
	var group, self []*prepared
	for _, p := range ready {
		switch {
		case p.err != nil:
			if p.spoiled {
				// Drop the staged copy, so the next check downloads the
				// release again instead of failing here forever. Any
				// other refusal (an unsafe archive) leaves state as it
				// was.
				a.dropStaged(p.name, p.c)
				if err := a.transition(p.name, p.c, Dropped, occasion{Version: p.rel.Version}); err != nil {
					return err, false
				}
			}
			fail(a.failed(fmt.Errorf("apply %s %s: %w", p.name, p.rel.Version, p.err), p.name, p.rel.Version), false)
		case p.dest == "":
			self = append(self, p)
		default:
			group = append(group, p)
		}
	}
	if len(group) > 0 {
		if err := a.switchGroup(ctx, st, group); err != nil {
			return errors.Join(failure, err), false
		}
	}
	for _, p := range self {
		if err := a.selfUpdate(ctx, st, p.name, p.c); err != nil {
			if errors.Is(err, errRolledBack) {
				fail(fmt.Errorf("apply %s %s: %w", p.name, p.rel.Version, err), true)
			} else {
				fail(a.failed(fmt.Errorf("apply %s %s: %w", p.name, p.rel.Version, err), p.name, p.rel.Version), false)
			}
			continue
		}
	}
	for _, p := range group {
		if p.failed != nil {
			fail(fmt.Errorf("apply %s %s: %w to %s: %v", p.name, p.j.To, errRolledBack, orNone(p.j.From), p.failed), true)
		}
	}
	return failure, rolledBack
}

// switchGroup is the part of installPrepared under the journal: switch
// every component, run installers, activate and check health, settle each
// as installed or rolled back, commit, clean up.
func (a *Agent) switchGroup(ctx context.Context, st *State, group []*prepared) error {
	if err := a.switchAll(group); err != nil {
		return err
	}
	// Installers one at a time (Windows Installer runs one at a time).
	for _, p := range group {
		if p.rel.Meta.Install == repo.InstallInstaller {
			if err := a.runInstaller(ctx, p.dest, p.rel); err != nil {
				p.failed = fmt.Errorf("installer failed: %w", err)
			}
		}
	}
	if err := a.stopped(ctx, group); err != nil {
		return err
	}
	if err := a.activate(ctx, group); err != nil {
		return err
	}
	if err := a.stopped(ctx, group); err != nil {
		return err
	}
	for _, p := range group {
		if err := a.settle(p); err != nil {
			return err
		}
	}
	// Commit: state.json now says which are installed.
	if err := a.saveState(st); err != nil {
		return err
	}
	if err := a.clearJournal(); err != nil {
		return err
	}
	forEach(len(group), maxParallel, func(i int) {
		p := group[i]
		if p.failed != nil {
			os.RemoveAll(p.dest)
			return
		}
		a.cacheArtifact(p.name, p.rel)
		pruneVersions(filepath.Join(a.cfg.InstallRoot, p.name), p.c.Installed, p.c.Previous)
	})
	for _, p := range group {
		a.dropStaged(p.name, p.c)
	}
	return nil
}

// switchAll writes the journal for the group and points every component's
// `current` at its new version, each component's files side by side.
func (a *Agent) switchAll(group []*prepared) error {
	var js []intent
	for _, p := range group {
		before, err := a.ActiveFeatures(p.name)
		if err != nil {
			return err
		}
		if before == nil {
			before = []string{}
		}
		p.j = intent{Component: p.name, From: p.c.Installed, To: p.rel.Version, FromFeatures: before}
		js = append(js, p.j)
	}
	if err := a.writeJournalAll(js); err != nil {
		return err
	}
	errs := make([]error, len(group))
	forEach(len(group), maxParallel, func(i int) {
		p := group[i]
		// Never let a feature be active for a version that has no
		// decision for it: while switching, only features active before
		// and after stay on.
		var both []string
		for _, id := range p.j.FromFeatures {
			if slices.Contains(p.active, id) {
				both = append(both, id)
			}
		}
		if err := a.writeFeatures(p.name, both); err != nil {
			errs[i] = err
			return
		}
		errs[i] = switchCurrent(filepath.Join(a.cfg.InstallRoot, p.name), p.rel.Version)
	})
	return errors.Join(errs...)
}

// activate turns on the decided features of every component whose
// installer did not fail, then runs their health checks one at a time.
func (a *Agent) activate(ctx context.Context, group []*prepared) error {
	errs := make([]error, len(group))
	forEach(len(group), maxParallel, func(i int) {
		if p := group[i]; p.failed == nil {
			errs[i] = a.writeFeatures(p.name, p.active)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, p := range group {
		if p.failed != nil {
			continue
		}
		if err := a.healthCheck(ctx, p.dest, p.rel); err != nil {
			p.failed = fmt.Errorf("health check failed: %w", err)
		}
	}
	return nil
}

// settle records p as installed, or puts it back on its old version and
// holds its release back.
func (a *Agent) settle(p *prepared) error {
	if p.failed == nil {
		return a.commitInstalled(p.name, p.c, p.rel, p.active)
	}
	if err := a.undo(p.j); err != nil {
		return fmt.Errorf("%s %s: %v; undoing it also failed: %w", p.name, p.j.To, p.failed, err)
	}
	return a.markRolledBack(p.name, p.c, p.rel, p.j.From, p.failed.Error(), fmt.Sprintf("%s %s: %v", p.name, p.j.To, p.failed),
		fmt.Sprintf("%s %s could not be installed (%v) and was rolled back to %s; it will not be retried until a newer release appears", p.name, p.j.To, p.failed, orNone(p.j.From)))
}

// stopped undoes the whole group, as recovery would, when ctx ended (a
// service stop) while its installers or health checks ran: a release cut
// short is not a failed one, so nothing is held back and it is installed
// again at the next apply.
func (a *Agent) stopped(ctx context.Context, group []*prepared) error {
	if ctx.Err() == nil {
		return nil
	}
	for _, p := range group {
		if err := a.undo(p.j); err != nil {
			return fmt.Errorf("stopped during the install of %s %s, and undoing it failed: %w (the next start settles it from the journal)", p.name, p.j.To, err)
		}
		os.RemoveAll(p.dest)
	}
	if err := a.clearJournal(); err != nil {
		return err
	}
	return ctx.Err()
}

// markInstalled records rel as the installed version, the one before it
// as previous, and clears what was pending: the facts of the Installed
// transition (saved, this is the commit).
func (c *ComponentState) markInstalled(rel *Release) {
	installed := *rel
	installed.File = ""
	c.Previous, c.Installed = c.Installed, rel.Version
	c.PreviousRelease, c.InstalledRelease = c.InstalledRelease, &installed
	c.Staged, c.Available, c.Failed, c.LastError = nil, nil, nil, ""
}

// commitInstalled is the Installed transition of component name to rel.
func (a *Agent) commitInstalled(name string, c *ComponentState, rel *Release, active []string) error {
	c.markInstalled(rel)
	return a.transition(name, c, Installed, occasion{Version: rel.Version, Detail: "active features: " + strings.Join(active, ","),
		Message: fmt.Sprintf("%s %s was installed", name, rel.Version)})
}

// markRolledBack holds rel back (it is not retried until a newer release
// appears) with why as the component's last error; the component is back
// on from. detail and message are the audit entry's and notification's.
func (a *Agent) markRolledBack(name string, c *ComponentState, rel *Release, from, why, detail, message string) error {
	failed := *rel
	failed.File = ""
	c.Staged, c.Failed, c.LastError = nil, &failed, why
	return a.transition(name, c, RolledBack, occasion{Version: from, Detail: detail, Message: message})
}

// rolledBackByHand begins the LastError of a component a person rolled
// back (the release left is held back like a failed one).
const rolledBackByHand = "rolled back by hand from "

// errRolledBack marks an install that was undone after its installer or
// health check failed; the component is back on its old version.
var errRolledBack = errors.New("rolled back")

// healthCheck runs the release's health_check in its version directory.
func (a *Agent) healthCheck(ctx context.Context, dir string, rel *Release) error {
	if len(rel.Meta.HealthCheck) == 0 {
		return nil
	}
	// The program is always one of the release's own files (never a name
	// looked up in PATH): release metadata cannot run anything unsigned.
	argv := append([]string{filepath.Join(dir, filepath.FromSlash(rel.Meta.HealthCheck[0]))}, rel.Meta.HealthCheck[1:]...)
	if err := repo.ValidateHealthCheck(rel.Meta.HealthCheck); err != nil {
		return verifyf("%v", err)
	}
	return a.runIn(ctx, dir, argv, nil, durationOr(a.cfg.HealthTimeout, time.Minute), rel)
}

// runInstaller runs the installer command the release declares.
func (a *Agent) runInstaller(ctx context.Context, dir string, rel *Release) error {
	if err := repo.ValidateInstaller(rel.Meta.Installer); err != nil {
		return verifyf("%v", err)
	}
	file := filepath.Join(dir, path.Base(rel.Path))
	argv := make([]string, len(rel.Meta.Installer))
	for i, arg := range rel.Meta.Installer {
		argv[i] = strings.ReplaceAll(arg, "{file}", file)
	}
	return a.runIn(ctx, dir, argv, []string{"BCUPDATE_INSTALLER=" + file}, durationOr(a.cfg.InstallerTimeout, 30*time.Minute), rel)
}

// runIn runs argv (validated by the caller) with dir as working directory
// and a timeout, under ctx: a service stop ends it.
func (a *Agent) runIn(parent context.Context, dir string, argv, env []string, timeout time.Duration, rel *Release) error {
	prog := argv[0]
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append(env, "BCUPDATE_COMPONENT="+rel.Meta.Component, "BCUPDATE_VERSION="+rel.Version)...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("%s did not finish within %s", strings.Join(argv, " "), timeout)
	}
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 300 {
			msg = msg[len(msg)-300:]
		}
		return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.ReplaceAll(msg, "\n", " | "))
	}
	return nil
}

// unpack puts a verified artifact's content into dir. The staged file is
// opened through the state directory's confined root (root.go), so a link
// cannot swap in other bytes.
func (a *Agent) unpack(rel *Release, dir string) error {
	name := path.Base(rel.Path)
	src, err := a.openStaged(rel.File)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	switch rel.Meta.Install {
	case repo.InstallArchive:
		lower := strings.ToLower(name)
		switch {
		case strings.HasSuffix(lower, ".zip"):
			return ExtractZipReader(src, fi.Size(), dir)
		case strings.HasSuffix(lower, ".tar.gz"), strings.HasSuffix(lower, ".tgz"):
			return ExtractTarGz(src, dir)
		default:
			return fmt.Errorf("%s: archive kind not recognised (want .tar.gz, .tgz or .zip)", name)
		}
	case repo.InstallFile, repo.InstallInstaller:
		// The staged file was just verified and fsynced: link it in place (no
		// second copy of the bytes), or copy it across file systems. The link
		// is kept only if it is the very file opened through the root.
		dst := filepath.Join(dir, name)
		if err := os.Link(rel.File, dst); err == nil {
			if li, err := os.Lstat(dst); err == nil && os.SameFile(li, fi) {
				if err := os.Chmod(dst, 0o755); err != nil {
					return err
				}
				return atomicfile.SyncDir(dir)
			}
			os.Remove(dst)
		}
		return atomicfile.Write(dst, 0o755, func(w io.Writer) error {
			_, err := io.CopyBuffer(w, src, make([]byte, 1<<20))
			return err
		})
	default:
		return fmt.Errorf("install kind %q is not supported by this agent version; nothing was installed", rel.Meta.Install)
	}
}

// switchCurrent points <compDir>/current at version atomically: a relative
// symlink replaced by rename (a pointer file on Windows), then the
// directory is fsynced.
func switchCurrent(compDir, version string) error {
	cur := filepath.Join(compDir, "current")
	tmp := filepath.Join(compDir, ".current.tmp")
	os.Remove(tmp)
	if runtime.GOOS == "windows" {
		return atomicfile.WriteFile(cur, []byte(version+"\n"), 0o644)
	}
	if err := os.Symlink(version, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, cur); err != nil {
		os.Remove(tmp)
		return err
	}
	return atomicfile.SyncDir(compDir)
}

// CurrentVersion reads where <compDir>/current points.
func CurrentVersion(compDir string) (string, error) {
	cur := filepath.Join(compDir, "current")
	if runtime.GOOS == "windows" {
		b, err := readFileLimited(cur, 256)
		return strings.TrimSpace(string(b)), err
	}
	return os.Readlink(cur)
}

// pruneVersions removes installed versions other than keep.
func pruneVersions(compDir string, keep ...string) {
	entries, err := os.ReadDir(compDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || strings.HasPrefix(n, ".") || n == "current" {
			continue
		}
		if _, err := repo.ParseVersion(n); err != nil {
			continue
		}
		kept := false
		for _, k := range keep {
			kept = kept || k == n
		}
		if !kept {
			os.RemoveAll(filepath.Join(compDir, n))
		}
	}
}

// Rollback switches a component back to its previous version.
func (a *Agent) Rollback(ctx context.Context, name string) (*CheckReport, error) {
	if _, err := a.selectComponents(name); err != nil || name == "" {
		return nil, usagef("--component: give one of %v", a.cfg.Components)
	}
	st, err := a.loadState()
	if err != nil {
		return nil, err
	}
	c := st.Components[name]
	if c.Previous == "" {
		return nil, fmt.Errorf("%s has no previous version to roll back to", name)
	}
	compDir := filepath.Join(a.cfg.InstallRoot, name)
	if fi, err := os.Stat(filepath.Join(compDir, c.Previous)); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s: previous version %s is no longer on disk", name, c.Previous)
	}
	if err := switchCurrent(compDir, c.Previous); err != nil {
		return nil, err
	}
	from := c.Installed
	c.Installed, c.Previous = c.Previous, c.Installed
	c.InstalledRelease, c.PreviousRelease = c.PreviousRelease, c.InstalledRelease
	// A person rolled back: the release they left is not installed again
	// by the service until a newer one appears.
	if c.PreviousRelease != nil {
		held := *c.PreviousRelease
		c.Failed = &held
		c.LastError = rolledBackByHand + from
	}
	c.Staged, c.Available = nil, nil
	a.dropStaged(name, c)
	if err := a.transition(name, c, RolledBackByHand, occasion{Version: c.Installed, Detail: "rolled back from " + from,
		Message: fmt.Sprintf("%s was rolled back from %s to %s", name, from, c.Installed)}); err != nil {
		return nil, err
	}
	if err := a.saveState(st); err != nil {
		return nil, err
	}
	active := []string{} // metadata unknown (state rebuilt): nothing is active until a check re-learns it
	if c.InstalledRelease != nil {
		active = a.decidedActive(st, name, c.InstalledRelease)
	}
	if err := a.writeFeatures(name, active); err != nil {
		return nil, err
	}
	return a.report(nil, st), nil
}

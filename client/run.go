package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"
)

// Service loop limits.
const (
	minBackoff = 30 * time.Second
	openWait   = 2 * time.Minute
)

// RunOptions tune the service loop (tests shorten the waits). The CLI
// keeps Interval in PollIntervalRange and Cycles in CyclesRange; Run
// itself refuses only what has no meaning (a negative value).
type RunOptions struct {
	// Interval overrides the configured poll interval (0: poll_interval).
	Interval time.Duration
	// MinBackoff is the first wait after a failure (doubling up to the
	// interval; 0: 30s or the interval if shorter).
	MinBackoff time.Duration
	// Cycles stops after that many polls (0: until ctx is cancelled).
	Cycles int
	// Now is the clock for the apply window.
	Now func() time.Time
	// SelfPath is the agent's own executable, for self-updates.
	SelfPath string
	// UserAgent is sent with every request (OpenOptions.UserAgent).
	UserAgent string
	// WatchDir is the drop folder to import offline bundles from
	// (watch.go); "" takes config.json's watch_dir, read again at every
	// cycle. The CLI checks it with CheckWatchDir; Run refuses one that
	// is not an existing directory.
	WatchDir string
	// WatchEvery is how often the drop folder is scanned (0:
	// WatchScanEvery); a file is complete once unchanged for half of it.
	WatchEvery time.Duration
}

// Run is the service: every poll interval (plus up to 10% jitter) it
// checks, and per component's policy notifies, stages, or stages and
// applies inside the apply window, never a release with a gated feature.
// Failures back off exponentially up to the interval; an expired or
// unreachable repository leaves what is installed running and is retried.
// Run returns nil when ctx is cancelled, and an error only if it cannot
// start (another service holds the state directory, or it is not set up).
func Run(ctx context.Context, stateDir string, log *slog.Logger, o RunOptions) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Interval < 0 || o.MinBackoff < 0 || o.Cycles < 0 || o.WatchEvery < 0 {
		return usagef("run: interval %s, backoff %s, cycles %d and watch scan %s must not be negative", o.Interval, o.MinBackoff, o.Cycles, o.WatchEvery)
	}
	// The same configuration and StrictModes checks as Open, before
	// service.lock is opened.
	abs, cfg, err := openConfig(stateDir)
	if err != nil {
		return err
	}
	if o.WatchDir != "" {
		if err := CheckWatchDir("--watch", o.WatchDir, abs); err != nil {
			return err
		}
	}
	// One service per state directory, for its whole life; commands at the
	// terminal share the per-operation agent lock with it.
	svc, err := lockFile(filepath.Join(abs, "service.lock"))
	if err != nil {
		return fmt.Errorf("another bcagent run is already serving %s: %w", abs, err)
	}
	defer svc.Close()
	interval := o.Interval
	if interval == 0 {
		interval = cfg.Interval()
	}
	backoffMin := o.MinBackoff
	if backoffMin == 0 {
		backoffMin = min(minBackoff, interval)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	open := &OpenOptions{Log: log, UserAgent: o.UserAgent}
	watch := newWatcher(abs, open, log, now)
	if o.WatchEvery > 0 {
		watch.every, watch.settle = o.WatchEvery, o.WatchEvery/2
	}
	watchDir := func(c *Config) {
		switch {
		case o.WatchDir != "":
			watch.setDir(o.WatchDir)
		case c != nil:
			watch.setDir(c.WatchDir)
		}
	}
	watchDir(cfg)
	// The drop folder first: a bundle waiting there at start is imported
	// (once complete) before the first poll.
	if err := watch.scan(ctx); errors.Is(err, ErrRestart) {
		return ErrRestart
	}
	backoff := time.Duration(0)
	for cycle := 1; ; cycle++ {
		c, err := cycleOnce(ctx, abs, open, now, o.SelfPath)
		watchDir(c)
		configured := time.Duration(0)
		if c != nil {
			configured = c.Interval()
		}
		if o.Interval == 0 && configured > 0 && configured != interval {
			// bcagent config set poll_interval: from this cycle on.
			log.Info("poll interval changed in config.json", "from", interval, "to", configured)
			interval = configured
			if o.MinBackoff == 0 {
				backoffMin = min(minBackoff, interval)
			}
		}
		if errors.Is(err, ErrRestart) {
			log.Info("updated itself; exiting for the service manager to start the new binary")
			return ErrRestart
		}
		var wait time.Duration
		if err != nil && ctx.Err() == nil {
			if backoff == 0 {
				backoff = backoffMin
			} else {
				backoff = min(2*backoff, interval)
			}
			wait = backoff
			log.Error("poll failed; keeping what is installed", "err", err, "retry_in", wait)
		} else {
			backoff = 0
			wait = interval + time.Duration(rand.Int64N(int64(interval)/10+1))
		}
		if err := watch.scan(ctx); errors.Is(err, ErrRestart) {
			return ErrRestart
		}
		if o.Cycles > 0 && cycle >= o.Cycles {
			return nil
		}
		// Idle until the next poll: give back to the system the memory the
		// poll used (metadata, download chunks), instead of keeping it for
		// an hour; the runtime would return it only slowly on its own.
		debug.FreeOSMemory()
		// Meanwhile the drop folder is scanned every WatchScanEvery.
		if err := watch.wait(ctx, wait); errors.Is(err, ErrRestart) {
			return ErrRestart
		} else if err != nil {
			return nil
		}
	}
}

// cycleOnce is one poll: open (waiting for a command at the terminal to
// finish), check, then stage and apply by policy. Each cycle reads
// config.json afresh (bcagent config set takes effect here); it returns
// the configuration read there (nil: it could not be read).
func cycleOnce(ctx context.Context, dir string, open *OpenOptions, now func() time.Time, self string) (*Config, error) {
	a, err := OpenWait(ctx, dir, open, openWait)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	a.SetSelfPath(self)
	err = a.poll(ctx, now)
	a.reportFleet(ctx)
	return a.cfg, err
}

// reportFleet sends the cycle's report to the fleet service, if enrolled;
// whatever happens there is logged and kept for status, never the cycle's
// error: the fleet service is not needed to update.
func (a *Agent) reportFleet(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	res, err := a.Report(ctx)
	switch {
	case err != nil && errors.Is(err, ErrDeviceRevoked):
		a.log.Warn("not reporting to the fleet service: this device was revoked", "err", err)
	case err != nil:
		a.log.Warn("fleet report not sent", "err", err, "queued", res.Queued)
	case res.Enrolled:
		a.log.Info("fleet report sent", "heartbeat", res.Heartbeat, "sent", res.Sent)
	}
}

// poll is the work of one cycle on the opened agent.
func (a *Agent) poll(ctx context.Context, now func() time.Time) error {
	a.setDoing("checking the repository")
	if _, err := a.Check(ctx); err != nil {
		if checkFailure(err) == CheckUnreachable && a.offlineWindowOpen(now()) {
			// A PC that lives on bundles (bundle_status.go): what they
			// staged is applied by policy, as after a check.
			if aerr := a.applyByPolicy(ctx, a.autoApplyNames(now())); errors.Is(aerr, ErrRestart) {
				return ErrRestart
			} else if aerr != nil {
				err = errors.Join(err, aerr)
			}
		}
		return err
	}
	// One stage for every component whose policy stages (its downloads
	// run side by side, stage.go), then apply, one component at a time,
	// those whose policy installs.
	var stage, apply []string
	for _, name := range a.cfg.Components {
		switch a.cfg.Policy(name) {
		case PolicyStage:
			stage = append(stage, name)
		case PolicyAuto:
			stage = append(stage, name)
			if a.cfg.InWindow(now()) {
				apply = append(apply, name)
			}
		}
	}
	var errs error
	if len(stage) > 0 {
		a.setDoing("staging %s", strings.Join(stage, ", "))
		if _, err := a.stageComponents(ctx, stage); err != nil && !errors.Is(err, ErrAuthorizationRequired) {
			errs = err
		}
	}
	if err := a.applyByPolicy(ctx, apply); errors.Is(err, ErrRestart) {
		return ErrRestart
	} else if err != nil {
		errs = errors.Join(errs, err)
	}
	return errs
}

// autoApplyNames are the components whose policy installs (auto), if now
// is inside the apply window.
func (a *Agent) autoApplyNames(now time.Time) []string {
	var names []string
	for _, name := range a.cfg.Components {
		if a.cfg.Policy(name) == PolicyAuto && a.cfg.InWindow(now) {
			names = append(names, name)
		}
	}
	return names
}

// applyByPolicy applies names one at a time, as the service does: with no
// prompter and no decisions, a release with a gated feature waits for a
// person (ErrAuthorizationRequired, not an error here), as it must; a
// component with nothing staged is left as it is. ErrRestart when the
// agent updated itself.
func (a *Agent) applyByPolicy(ctx context.Context, names []string) error {
	var errs error
	for _, name := range names {
		a.setDoing("applying %s", name)
		if _, err := a.Apply(ctx, name, ApplyOptions{}); err != nil && !errors.Is(err, ErrAuthorizationRequired) {
			errs = errors.Join(errs, err)
		}
		if a.RestartRequired() {
			return ErrRestart
		}
	}
	return errs
}

// OpenWait is Open, waiting up to wait for another agent to let go of the
// state directory.
func OpenWait(ctx context.Context, stateDir string, o *OpenOptions, wait time.Duration) (*Agent, error) {
	deadline := time.Now().Add(wait)
	for {
		a, err := Open(stateDir, o)
		if !errors.Is(err, ErrLocked) || time.Now().After(deadline) {
			return a, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

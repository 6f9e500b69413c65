package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/textsafe"
	"github.com/beckmanconnect/bcupdate/repo"
)

// Decision is a person's decision on a gated feature.
type Decision string

// Consent decisions.
const (
	DecisionGranted  Decision = "granted"
	DecisionDeclined Decision = "declined"
	DecisionRevoked  Decision = "revoked"
)

// ConsentState is a feature's consent as status shows it.
type ConsentState string

// Feature consent states in status (DESIGN.md).
const (
	ConsentNotRequired ConsentState = "not-required"
	ConsentPending     ConsentState = "pending"
	ConsentGranted     ConsentState = "granted"
	ConsentDeclined    ConsentState = "declined"
	ConsentRevoked     ConsentState = "revoked"
)

// ConsentRecord is one entry of consent.jsonl.
type ConsentRecord struct {
	Time        time.Time `json:"time"`
	Decision    Decision  `json:"decision"`
	By          string    `json:"by"`
	OSUser      string    `json:"os_user"`
	DeviceID    string    `json:"device_id"`
	DeviceModel string    `json:"device_model"`
	Component   string    `json:"component"`
	Version     string    `json:"version"`
	Feature     string    `json:"feature"`
	TextSHA256  string    `json:"text_sha256"`
	// Interactive is true when the decision was typed at the prompt (kept
	// for records written before Method existed).
	Interactive bool `json:"interactive"`
	// Method is how the decision was given: "terminal" (typed at the
	// prompt) or "flags" (--authorize, --decline, consent revoke).
	Method string `json:"method,omitempty"`
	// Terminal says whether a terminal was attached to the command.
	Terminal bool `json:"terminal"`
}

// How a decision was given (ConsentRecord.Method).
const (
	MethodTerminal = "terminal"
	MethodFlags    = "flags"
)

// ErrNoAnswer: the prompt reached the end of its input before a person
// answered. It is "no decision", not a failure: the release keeps waiting.
var ErrNoAnswer = errors.New("no answer at the prompt (end of input)")

// FeatureText is exactly what a person is shown for a feature: its title,
// a blank line, its full description. Its sha256 ties a decision to it.
func FeatureText(f repo.Feature) string { return f.Title + "\n\n" + f.Description }

// FeatureTextSHA256 is the hex sha256 of FeatureText.
func FeatureTextSHA256(f repo.Feature) string {
	s := sha256.Sum256([]byte(FeatureText(f)))
	return hex.EncodeToString(s[:])
}

// ConsentRequest is what a Prompter shows.
type ConsentRequest struct {
	Component   string
	Version     string
	DeviceID    string
	DeviceModel string
	Feature     repo.Feature
	Text        string
}

// Prompter asks a person at a terminal to authorize a feature. It returns
// whether they typed the confirmation, and who they are.
type Prompter interface {
	Confirm(ctx context.Context, req ConsentRequest) (granted bool, by string, err error)
}

// ApplyOptions carry the decisions given on the command line and, at a
// terminal, the prompter.
//
// They come only from the command line or a person at the terminal: never
// from the environment, a configuration file or the service's settings
// (the service passes none, so a gated release waits for a person).
type ApplyOptions struct {
	Authorize []string
	Decline   []string
	By        string
	Prompter  Prompter
	// Terminal says whether a terminal is attached (recorded with each
	// decision).
	Terminal bool
}

func (o *ApplyOptions) validate() error {
	for _, id := range o.Authorize {
		if slices.Contains(o.Decline, id) {
			return usagef("--authorize %s and --decline %s contradict each other", id, id)
		}
	}
	if len(o.Authorize)+len(o.Decline) > 0 && strings.TrimSpace(o.By) == "" {
		return usagef("--by NAME is required with --authorize and --decline (who made the decision)")
	}
	if err := textsafe.Check(o.By, false); err != nil {
		return usagef("--by: %v", err)
	}
	return nil
}

// decisions reads the consent log (which must verify) and returns this
// device's latest decision per component and feature.
func (a *Agent) decisions() (map[string]ConsentRecord, error) {
	entries, err := a.consentLog().Verify()
	if err != nil {
		return nil, fmt.Errorf("consent log does not verify, so no consent in it can be trusted and nothing gated is activated: %w", err)
	}
	out := map[string]ConsentRecord{}
	for _, e := range entries {
		var r ConsentRecord
		if err := json.Unmarshal(e.Entry, &r); err != nil {
			return nil, fmt.Errorf("%w: consent log entry %d: %v", ErrLogDamaged, e.Seq, err)
		}
		if r.DeviceID != a.cfg.DeviceID {
			continue // a record copied from another PC grants nothing here
		}
		out[r.Component+"\x00"+r.Feature] = r
	}
	return out, nil
}

// decisionFor is the standing decision for a feature of a component: a
// decision counts only for the exact text it was made on.
func decisionFor(decs map[string]ConsentRecord, component string, f repo.Feature) Decision {
	r, ok := decs[component+"\x00"+f.ID]
	if !ok || r.TextSHA256 != FeatureTextSHA256(f) {
		return ""
	}
	return r.Decision
}

func osUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}

// recordDecision appends a decision to the consent log (fsynced) and the
// audit log. It is always called before anything is activated.
func (a *Agent) recordDecision(component, version string, f repo.Feature, decision Decision, by, method string, terminal bool) error {
	r := ConsentRecord{
		Time: time.Now().UTC(), Decision: decision, By: by, OSUser: osUser(),
		DeviceID: a.cfg.DeviceID, DeviceModel: a.cfg.DeviceModel,
		Component: component, Version: version, Feature: f.ID,
		TextSHA256: FeatureTextSHA256(f), Interactive: method == MethodTerminal,
		Method: method, Terminal: terminal,
	}
	if err := a.consentLog().Append(r); err != nil {
		return fmt.Errorf("record consent: %w", err)
	}
	ev := EventConsentDecision
	if decision == DecisionRevoked {
		ev = EventConsentRevoked
	}
	a.audit(AuditEvent{Event: ev, Component: component, Version: version, Feature: f.ID, Decision: decision, By: by,
		Detail: fmt.Sprintf("given by %s as OS user %s (terminal attached: %v)", method, r.OSUser, terminal)})
	return nil
}

// pendingFeatures lists the gated features of rel with no standing decision.
func (a *Agent) pendingFeatures(st *State, component string, rel *Release) ([]repo.Feature, error) {
	gated := a.gatedFeatures(st, rel)
	if len(gated) == 0 {
		return nil, nil
	}
	decs, err := a.decisions()
	if err != nil {
		return gated, err
	}
	var pending []repo.Feature
	for _, f := range gated {
		if decisionFor(decs, component, f) == "" {
			pending = append(pending, f)
		}
	}
	return pending, nil
}

// gatedFeatures lists a release's features that need a person's decision
// on this device: consent "required", or "phi-devices" on a PHI-class
// device.
func (a *Agent) gatedFeatures(st *State, rel *Release) []repo.Feature {
	var out []repo.Feature
	if rel == nil || rel.Meta == nil {
		return nil
	}
	for _, f := range rel.Meta.Features {
		if f.Consent == repo.ConsentRequired || (f.Consent == repo.ConsentPHIDevices && a.isPHIDevice(st)) {
			out = append(out, f)
		}
	}
	return out
}

// decide runs the gate for one staged release: it records the decisions
// given (flags or prompt) and returns the features to activate, or
// ErrAuthorizationRequired naming what still waits.
func (a *Agent) decide(ctx context.Context, st *State, component string, rel *Release, o ApplyOptions) ([]string, error) {
	// The release's features come from state.json: check them against the
	// publisher's code-signed gate manifest again before anything is
	// decided or activated.
	if err := a.verifyGates(rel); err != nil {
		return nil, err
	}
	gated := a.gatedFeatures(st, rel)
	decs := map[string]ConsentRecord{}
	if len(gated) > 0 {
		var err error
		if decs, err = a.decisions(); err != nil {
			return nil, err
		}
	}
	var active []string
	var pending []string
	for _, f := range rel.Meta.Features {
		if !slices.ContainsFunc(gated, func(g repo.Feature) bool { return g.ID == f.ID }) {
			active = append(active, f.ID) // not gated on this device
			continue
		}
		d := decisionFor(decs, component, f)
		switch chooseDecision(d, f.ID, o) {
		case grantByFlag:
			d = DecisionGranted
			if err := a.recordDecision(component, rel.Version, f, d, o.By, MethodFlags, o.Terminal); err != nil {
				return nil, err
			}
		case declineByFlag:
			d = DecisionDeclined
			if err := a.recordDecision(component, rel.Version, f, d, o.By, MethodFlags, o.Terminal); err != nil {
				return nil, err
			}
		case ask:
			granted, by, err := o.Prompter.Confirm(ctx, ConsentRequest{
				Component: component, Version: rel.Version, DeviceID: a.cfg.DeviceID,
				DeviceModel: a.cfg.DeviceModel, Feature: f, Text: FeatureText(f)})
			if errors.Is(err, ErrNoAnswer) {
				// End of input is no decision: the release keeps waiting,
				// and the prompt is not tried again for other features.
				a.audit(AuditEvent{Event: EventConsentNoAnswer, Component: component, Version: rel.Version, Feature: f.ID,
					Detail: "the prompt reached the end of its input before a person answered"})
				o.Prompter = nil
				pending = append(pending, f.ID)
				continue
			}
			if err != nil {
				return nil, err
			}
			if strings.TrimSpace(by) == "" {
				return nil, usagef("a name is needed to record the decision")
			}
			if err := textsafe.Check(by, false); err != nil {
				return nil, usagef("the name to record with the decision: %v", err)
			}
			d = DecisionDeclined
			if granted {
				d = DecisionGranted
			}
			if err := a.recordDecision(component, rel.Version, f, d, by, MethodTerminal, true); err != nil {
				return nil, err
			}
		}
		switch outcome(d) {
		case featureOn:
			active = append(active, f.ID)
		case featureWaits:
			pending = append(pending, f.ID)
		}
	}
	if len(pending) > 0 {
		return nil, a.authorizationRequired(component, rel.Version, pending)
	}
	sort.Strings(active)
	return active, nil
}

// choice is how one gated feature is decided in an apply.
type choice int

const (
	standing      choice = iota // the standing decision (or none) holds
	grantByFlag                 // --authorize ID
	declineByFlag               // --decline ID
	ask                         // no standing decision: ask the person at the terminal
)

// chooseDecision: a decision given on the command line wins over a
// standing one (and is recorded again); with none standing, a person at
// the terminal is asked; otherwise the standing decision holds.
func chooseDecision(d Decision, id string, o ApplyOptions) choice {
	switch {
	case slices.Contains(o.Authorize, id):
		return grantByFlag
	case slices.Contains(o.Decline, id):
		return declineByFlag
	case d == "" && o.Prompter != nil:
		return ask
	}
	return standing
}

// featureOutcome is what a decision means for a gated feature.
type featureOutcome int

const (
	featureOff   featureOutcome = iota // declined or revoked: installed with it off
	featureOn                          // granted
	featureWaits                       // no decision: the release waits for a person
)

func outcome(d Decision) featureOutcome {
	switch d {
	case DecisionGranted:
		return featureOn
	case "":
		return featureWaits
	}
	return featureOff
}

// authorizationRequired says what waits for a person, and the command that
// decides it, naming the feature IDs.
func (a *Agent) authorizationRequired(component, version string, ids []string) error {
	return &waitError{detail: fmt.Sprintf("%s %s turns on %s on %s (%s); run bcagent apply at a terminal, or bcagent apply --component %s %s --by NAME (--decline instead of --authorize installs with it off)",
		component, version, strings.Join(ids, ", "), a.cfg.DeviceID, a.cfg.DeviceModel,
		component, "--authorize "+strings.Join(ids, " --authorize "))}
}

// waitError is ErrAuthorizationRequired with what waits and how to decide
// it (detail), for the notification that says so; err, if set, is why
// (for example a consent log that does not verify).
type waitError struct {
	detail string
	err    error
}

func (e *waitError) Error() string        { return ErrAuthorizationRequired.Error() + ": " + e.detail }
func (e *waitError) Is(target error) bool { return target == ErrAuthorizationRequired }
func (e *waitError) Unwrap() error        { return e.err }

// waitDetail is what an authorization-required error says waits.
func waitDetail(err error) string {
	if we, ok := errors.AsType[*waitError](err); ok {
		return we.detail
	}
	return err.Error()
}

// FeaturesFile is <install-root>/<component>/features.json.
type FeaturesFile struct {
	Active []string `json:"active"`
}

func (a *Agent) featuresPath(component string) string {
	return filepath.Join(a.cfg.InstallRoot, component, "features.json")
}

// ActiveFeatures reads a component's features.json.
func (a *Agent) ActiveFeatures(component string) ([]string, error) {
	data, err := readFileLimited(a.featuresPath(component), 1<<20)
	if err != nil {
		if isNotExist(err) {
			return []string{}, nil
		}
		return nil, err
	}
	var ff FeaturesFile
	if err := json.Unmarshal(data, &ff); err != nil {
		return nil, fmt.Errorf("%s: %w", a.featuresPath(component), err)
	}
	return ff.Active, nil
}

func (a *Agent) writeFeatures(component string, active []string) error {
	if active == nil {
		active = []string{}
	}
	return writeJSON(a.featuresPath(component), FeaturesFile{Active: active}, 0o644)
}

// ConsentStatus is one standing decision, for `consent list`.
type ConsentStatus struct {
	ConsentRecord
	Active bool `json:"active"`
}

// ConsentList returns this device's standing decision per component and
// feature, verifying the consent log first.
func (a *Agent) ConsentList() ([]ConsentStatus, error) {
	decs, err := a.decisions()
	if err != nil {
		return nil, err
	}
	var out []ConsentStatus
	for _, r := range decs {
		active, _ := a.ActiveFeatures(r.Component)
		out = append(out, ConsentStatus{ConsentRecord: r, Active: slices.Contains(active, r.Feature)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Component != out[j].Component {
			return out[i].Component < out[j].Component
		}
		return out[i].Feature < out[j].Feature
	})
	return out, nil
}

// Revoke withdraws consent for a feature of the installed release: the
// decision is recorded and the feature is deactivated at once, without
// reinstalling.
func (a *Agent) Revoke(component, feature, by string, terminal bool) error {
	if _, err := a.selectComponents(component); err != nil || component == "" {
		return usagef("--component: give one of %v", a.cfg.Components)
	}
	if strings.TrimSpace(by) == "" {
		return usagef("--by NAME is required")
	}
	if err := textsafe.Check(by, false); err != nil {
		return usagef("--by: %v", err)
	}
	st, err := a.loadState()
	if err != nil {
		return err
	}
	c := st.Components[component]
	rel := c.InstalledRelease
	var f repo.Feature
	switch {
	case rel != nil && rel.Meta != nil:
		i := slices.IndexFunc(rel.Meta.Features, func(f repo.Feature) bool { return f.ID == feature })
		if i < 0 {
			return usagef("--feature %s: %s %s has no such feature", feature, component, rel.Version)
		}
		f = rel.Meta.Features[i]
	case c.Installed != "":
		// The installed release's metadata is unknown (state.json was
		// rebuilt): nothing of it is active, and a revocation recorded
		// without its text makes the next release ask again.
		if err := repo.ValidateName("feature", feature); err != nil {
			return usagef("--feature: %v", err)
		}
		f = repo.Feature{ID: feature}
	default:
		return usagef("%s has no installed release with features", component)
	}
	if err := a.recordDecision(component, c.Installed, f, DecisionRevoked, by, MethodFlags, terminal); err != nil {
		return err
	}
	active, err := a.ActiveFeatures(component)
	if err != nil {
		return err
	}
	return a.writeFeatures(component, slices.DeleteFunc(active, func(id string) bool { return id == feature }))
}

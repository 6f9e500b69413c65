package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

// Two keys for every gate decision (repo/gate.go): the features a release
// turns on and the consent each needs are taken only from a gate manifest
// the publisher code-signed, and the PHI device classes only ever grow
// from the floor the agent was installed with (its built-in list plus its
// configuration) by code-signed device policies whose version never goes
// back. The TUF targets key alone, or the code-signing key alone, cannot
// lower what the gate asks for.

// verifyGate checks that a release's declared features are exactly those
// of its code-signed gate manifest. A release without features needs none:
// it turns nothing on. It runs when a release is first seen (check), again
// before any decision or activation (apply, reconcile), because the release
// metadata is kept in state.json between the two.
func verifyGate(trust *signer.Trust, rel *Release) error {
	if rel == nil || rel.Meta == nil || len(rel.Meta.Features) == 0 {
		return nil
	}
	what := rel.Meta.Component + " " + rel.Version
	if rel.Meta.Gate == nil {
		return verifyf("%s declares features (%s) but carries no code-signed gate manifest: the TUF targets key alone cannot turn a feature on (this may be an attack)",
			what, featureIDs(rel.Meta.Features))
	}
	manifest, sig, err := rel.Meta.Gate.Decode()
	if err != nil {
		return verifyf("%s: %v (this may be an attack)", what, err)
	}
	if _, err := trust.VerifyDetached(bytes.NewReader(manifest), sig); err != nil {
		return verifyf("%s: the gate manifest's code signature does not verify: %v (this may be an attack)", what, err)
	}
	m, err := repo.ParseGateManifest(manifest)
	if err != nil {
		return verifyf("%s: %v (this may be an attack)", what, err)
	}
	if err := m.Match(rel.Meta, rel.SHA256); err != nil {
		return verifyf("%s: %v: the gate's inputs need both the TUF and the code-signing key (this may be an attack)", what, err)
	}
	return nil
}

func featureIDs(fs []repo.Feature) string {
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.ID+":"+f.Consent)
	}
	if len(ids) == 0 {
		return "none"
	}
	return fmt.Sprint(ids)
}

// verifyGates checks the gate manifest of every release in rels.
func (a *Agent) verifyGates(rels ...*Release) error {
	need := false
	for _, r := range rels {
		need = need || (r != nil && r.Meta != nil && len(r.Meta.Features) > 0)
	}
	if !need {
		return nil
	}
	trust, err := a.trustWithCRLs()
	if err != nil {
		return err
	}
	for _, r := range rels {
		if err := verifyGate(trust, r); err != nil {
			return err
		}
	}
	return nil
}

// phiFloor is the PHI device classes the agent was installed with: the
// built-in list (DESIGN.md's seed) and the local configuration's. Signed
// policies can add to it, never take away.
func (a *Agent) phiFloor() []string {
	return append(slices.Clone(repo.DefaultPHIDeviceClasses), a.cfg.PHIDeviceClasses...)
}

// isPHIDevice says whether the device model is in a PHI device class: the
// floor plus the classes of the last accepted code-signed policy, compared
// normalized (repo.NormalizeModel).
//
// Until the agent has accepted a code-signed policy at least as new as the
// one current when it was installed (config min_policy_version), it fails
// closed: a device that the repository's policy may name cannot be told
// apart from one an old or deleted policy leaves out, so it counts as a
// PHI device.
func (a *Agent) isPHIDevice(st *State) bool {
	if st.PolicyVersion < a.cfg.MinPolicyVersion {
		return true
	}
	return repo.ModelIn(a.cfg.DeviceModel, a.phiFloor()) || repo.ModelIn(a.cfg.DeviceModel, st.PHIClasses)
}

// KnownModel says whether model is in any PHI class the agent knows of
// without the repository (for init's warning) and returns its normalized
// form.
func KnownModel(model string, local []string) (bool, string) {
	return repo.ModelIn(model, append(slices.Clone(repo.DefaultPHIDeviceClasses), local...)), repo.NormalizeModel(model)
}

// BuiltinPHIClasses is the PHI device class list built into the agent.
func BuiltinPHIClasses() []string { return slices.Clone(repo.DefaultPHIDeviceClasses) }

// signedPolicy is a device policy as fetched, before its code signature is
// checked.
type signedPolicy struct {
	policy *repo.DevicePolicy
	data   []byte
	sig    []byte // nil: no policy/devices.json.p7s target
}

// fetchPolicy reads policy/devices.json and its signature, if published.
func (a *Agent) fetchPolicy(ctx context.Context, s *session) (*signedPolicy, error) {
	data, _, err := s.fetchSmall(ctx, repo.DevicePolicyPath, 1<<20)
	if errors.Is(err, errTargetNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", repo.DevicePolicyPath, classifyTUF(err))
	}
	p, err := repo.ParseDevicePolicy(data)
	if err != nil {
		return nil, verifyf("%s: %v", repo.DevicePolicyPath, err)
	}
	sp := &signedPolicy{policy: p, data: data}
	sig, _, err := s.fetchSmall(ctx, repo.SignaturePath(repo.DevicePolicyPath), signer.MaxSignatureSize)
	switch {
	case errors.Is(err, errTargetNotFound):
	case err != nil:
		return nil, fmt.Errorf("%s: %w", repo.SignaturePath(repo.DevicePolicyPath), classifyTUF(err))
	default:
		sp.sig = sig
	}
	return sp, nil
}

// acceptPolicy checks a fetched policy's code signature and version and
// records its classes in st. An unsigned policy is accepted only if it
// changes nothing (every class already in the floor: the seeded policy that
// bcpublish init writes); anything else signed by the TUF key alone is a
// possible attack.
func (a *Agent) acceptPolicy(st *State, sp *signedPolicy) error {
	if sp == nil {
		return nil // none published: the floor and the last accepted policy hold
	}
	p := sp.policy
	if sp.sig == nil {
		for _, c := range p.PHIDeviceClasses {
			if !repo.ModelIn(c, a.phiFloor()) && !repo.ModelIn(c, st.PHIClasses) {
				return verifyf("%s is not code-signed (no %s) but adds device class %q: a policy signed by the TUF targets key alone cannot change the consent gate (this may be an attack)",
					repo.DevicePolicyPath, repo.SignaturePath(repo.DevicePolicyPath), c)
			}
		}
		return nil
	}
	trust, err := a.trustWithCRLs()
	if err != nil {
		return err
	}
	if _, err := trust.VerifyDetached(bytes.NewReader(sp.data), sp.sig); err != nil {
		return verifyf("%s: code signature: %v (this may be an attack)", repo.DevicePolicyPath, err)
	}
	if p.Version < st.PolicyVersion {
		return verifyf("%s: version %d is older than version %d, which this agent already accepted (this may be an attack)", repo.DevicePolicyPath, p.Version, st.PolicyVersion)
	}
	if p.Version < a.cfg.MinPolicyVersion {
		return verifyf("%s: version %d is older than version %d, the one current when this agent was installed (min_policy_version; this may be an attack)", repo.DevicePolicyPath, p.Version, a.cfg.MinPolicyVersion)
	}
	if p.Version == st.PolicyVersion && st.PolicyVersion > 0 && !sameClasses(p.PHIDeviceClasses, st.PHIClasses) {
		return verifyf("%s: version %d names other device classes than the version %d this agent accepted: a new policy needs a new version (this may be an attack)", repo.DevicePolicyPath, p.Version, st.PolicyVersion)
	}
	if p.Version != st.PolicyVersion || !slices.Equal(p.PHIDeviceClasses, st.PHIClasses) {
		// The audit log keeps the ratchet too: a state.json rebuilt after
		// damage takes the last accepted version and classes from it.
		classes, _ := json.Marshal(p.PHIDeviceClasses)
		a.audit(AuditEvent{Event: EventPolicyAccepted, Version: strconv.FormatInt(p.Version, 10), Detail: string(classes)})
	}
	st.PHIClasses, st.PolicyVersion = p.PHIDeviceClasses, p.Version
	return nil
}

// sameClasses compares two class lists as normalized sets.
func sameClasses(x, y []string) bool {
	norm := func(l []string) []string {
		out := make([]string, 0, len(l))
		for _, c := range l {
			out = append(out, repo.NormalizeModel(c))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(x), norm(y))
}

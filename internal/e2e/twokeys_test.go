package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/client"
	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/repo"
)

// gateFor signs a gate manifest for (version, artifact, features) with leaf.
func (e *env) gateFor(t *testing.T, version string, artifact []byte, features []repo.Feature, leaf *testutil.Leaf) *repo.Gate {
	t.Helper()
	rel := &repo.Release{Component: component, Version: version, Platform: platform, Features: features}
	m, err := repo.NewGateManifest(rel, sha256Hex(artifact))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := e.codeSigner(leaf)(m)
	if err != nil {
		t.Fatal(err)
	}
	return repo.NewGate(m, sig)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// forgePolicy publishes policy/devices.json (and, if sig is given, its
// signature) with the TUF targets key alone, the way a thief of that key
// would: no bcpublish checks.
func (e *env) forgePolicy(t *testing.T, policy string, sig []byte) {
	t.Helper()
	r := e.loadRepo()
	pt := repo.NewTarget(repo.DevicePolicyPath, []byte(policy), nil)
	targets := []repo.Target{pt}
	if sig != nil {
		targets = append(targets, repo.NewTarget(repo.SignaturePath(repo.DevicePolicyPath), sig, nil))
	}
	for _, x := range targets {
		if err := r.Set(x); err != nil {
			t.Fatal(err)
		}
	}
	files, err := r.Commit(e.keys, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.writeTarget(pt, []byte(policy))
	if sig != nil {
		e.writeTarget(targets[1], sig)
	}
	e.writeMetadata(files)
}

// TestGateNeedsTwoKeys: neither the TUF targets key alone nor the
// code-signing key alone can (a) lower the consent a feature needs, (b)
// declare a gated feature ungated, (c) remove a PHI device class, or (d)
// reuse a grant for changed text. Both keys together can publish a
// feature as ungated (that is a release engineer's decision); neither key
// can do anything.
func TestGateNeedsTwoKeys(t *testing.T) {
	ungated := fileTransfer
	ungated.Consent = repo.ConsentNone
	reworded := fileTransfer
	reworded.Description = "Lets support copy files. (Shorter, friendlier text.)"
	attacker := func(e *env) *testutil.Leaf {
		return e.pki.Intermediate.Leaf(e.t, testutil.LeafOptions{Organization: "Mallory Software"})
	}
	cases := []struct {
		name    string
		publish func(t *testing.T, e *env, art, sig []byte)
		// want: the outcome of check/stage/apply. ErrVerification: refused
		// at check (exit 3); ErrAuthorizationRequired: the gate still asks
		// (exit 4); nil: installed with the feature active.
		want error
	}{
		{"targets key: signed artifact republished with consent none and no gate manifest", func(t *testing.T, e *env, art, sig []byte) {
			e.publishRaw(rawRelease{version: "1.2.0", artifact: art, sig: sig, features: []repo.Feature{ungated}})
		}, client.ErrVerification},
		{"targets key: consent none with the gate manifest of the real release", func(t *testing.T, e *env, art, sig []byte) {
			g := e.gateFor(t, "1.2.0", art, []repo.Feature{fileTransfer}, e.pki.Leaf)
			e.publishRaw(rawRelease{version: "1.2.0", artifact: art, sig: sig, features: []repo.Feature{ungated}, gate: g})
		}, client.ErrVerification},
		{"targets key: gate manifest of another version reused", func(t *testing.T, e *env, art, sig []byte) {
			g := e.gateFor(t, "1.1.0", art, []repo.Feature{ungated}, e.pki.Leaf)
			e.publishRaw(rawRelease{version: "1.2.0", artifact: art, sig: sig, features: []repo.Feature{ungated}, gate: g})
		}, client.ErrVerification},
		{"targets key: consent lowered from required to phi-devices", func(t *testing.T, e *env, art, sig []byte) {
			req := fileTransfer
			req.Consent = repo.ConsentRequired
			g := e.gateFor(t, "1.2.0", art, []repo.Feature{req}, e.pki.Leaf)
			e.publishRaw(rawRelease{version: "1.2.0", artifact: art, sig: sig, features: []repo.Feature{fileTransfer}, gate: g})
		}, client.ErrVerification},
		{"targets key: gate manifest signed by a certificate of another publisher", func(t *testing.T, e *env, art, sig []byte) {
			g := e.gateFor(t, "1.2.0", art, []repo.Feature{ungated}, attacker(e))
			e.publishRaw(rawRelease{version: "1.2.0", artifact: art, sig: sig, features: []repo.Feature{ungated}, gate: g})
		}, client.ErrVerification},
		{"targets key: text reworded to reuse the standing grant", func(t *testing.T, e *env, art, sig []byte) {
			g := e.gateFor(t, "1.2.0", art, []repo.Feature{fileTransfer}, e.pki.Leaf)
			e.publishRaw(rawRelease{version: "1.2.0", artifact: art, sig: sig, features: []repo.Feature{reworded}, gate: g})
		}, client.ErrVerification},
		{"targets key: device policy shrunk to one class, unsigned", func(t *testing.T, e *env, art, sig []byte) {
			e.forgePolicy(t, `{"phi_device_classes": ["DxFLEx"]}`, nil)
			e.publishFeatures("1.2.0", []repo.Feature{reworded})
		}, client.ErrAuthorizationRequired},
		{"targets key: device policy shrunk, signed by another publisher", func(t *testing.T, e *env, art, sig []byte) {
			p := `{"phi_device_classes": ["DxFLEx"], "version": 9}`
			s, _ := e.codeSigner(attacker(e))([]byte(p))
			e.forgePolicy(t, p, s)
			e.publishFeatures("1.2.0", []repo.Feature{reworded})
		}, client.ErrVerification},
		{"both keys: device policy signed by the publisher cannot go below the agent's floor", func(t *testing.T, e *env, art, sig []byte) {
			p := `{"phi_device_classes": ["DxFLEx"], "version": 9}`
			s, _ := e.codeSigner(e.pki.Leaf)([]byte(p))
			e.forgePolicy(t, p, s)
			e.publishFeatures("1.2.0", []repo.Feature{reworded})
		}, client.ErrAuthorizationRequired},
		{"code-signing key: a signed manifest with consent none, metadata edited without the TUF key", func(t *testing.T, e *env, art, sig []byte) {
			e.publishFeatures("1.2.0", []repo.Feature{fileTransfer})
			r := e.loadRepo()
			all, _ := r.AllTargets()
			for p, tf := range all {
				rel, err := repo.ParseRelease(tf.Custom)
				if err != nil || rel.Version != "1.2.0" {
					continue
				}
				rel.Features = []repo.Feature{ungated}
				rel.Gate = e.gateFor(t, "1.2.0", art, rel.Features, e.pki.Leaf)
				c, _ := rel.Custom()
				tf.Custom = c
				r.Targets.Signed.Targets[p] = tf
			}
			// The attacker cannot sign targets.json: the old signatures stay.
			b, _ := json.Marshal(r.Targets)
			v := r.Targets.Signed.Version
			os.WriteFile(filepath.Join(e.store.Dir, "metadata", strconv.FormatInt(v, 10)+".targets.json"), b, 0o644)
		}, client.ErrVerification},
		{"both keys: a release engineer publishes the feature as ungated", func(t *testing.T, e *env, art, sig []byte) {
			e.publishFeatures("1.2.0", []repo.Feature{ungated})
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t) // a Navios EX: a PHI device
			e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
			if err := e.check(); err != nil {
				t.Fatal(err)
			}
			if err := e.stage(); !errors.Is(err, client.ErrAuthorizationRequired) {
				t.Fatalf("stage 1.1.0: %v", err)
			}
			// A person declined file transfer: it is off, and must stay off
			// unless a person decides otherwise.
			if err := e.applyWith(client.ApplyOptions{Decline: []string{fileTransfer.ID}, By: "Dr. Ada"}); err != nil {
				t.Fatal(err)
			}
			// The signed artifact of 1.1.0 and its code signature, for the
			// attacker to republish.
			art, _ := os.ReadFile(filepath.Join(e.dir, "build", "1.1.0", artifactName("1.1.0")))
			sig, _ := os.ReadFile(filepath.Join(e.dir, "build", "1.1.0", artifactName("1.1.0")+".p7s"))
			tc.publish(t, e, art, sig)
			before := e.snap()
			err := e.check()
			if err == nil {
				err = e.stage()
			}
			if err == nil {
				err = e.apply()
			}
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("want installed, got %v", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("want %v, got %v", tc.want, err)
			}
			active := slices.Contains(e.active(), fileTransfer.ID)
			if tc.want != nil {
				if active || e.current() != "1.1.0" {
					t.Fatalf("the gate was opened: current %s, active %v", e.current(), e.active())
				}
				if errors.Is(tc.want, client.ErrVerification) && e.snap() != before {
					t.Fatal("a refused update changed install/ or state.json")
				}
			} else if !active || e.current() != "1.2.0" {
				t.Fatalf("both keys: current %s, active %v", e.current(), e.active())
			}
		})
	}
}

// TestPolicyRatchet: a signed device policy can only move forward, from
// the version the agent was installed with (min_policy_version); until the
// agent has seen that version, a device whose PHI class only the
// repository names counts as a PHI device (fail closed).
func TestPolicyRatchet(t *testing.T) {
	const model = "CytoFLEX LX" // in no built-in class: only the policy makes it PHI
	v := func(n int, classes string) string {
		return `{"phi_device_classes": [` + classes + `], "version": ` + strconv.Itoa(n) + `}`
	}
	withCyto := `"Navios EX", "CytoFLEX LX"`
	without := `"Navios EX"`
	cases := []struct {
		name    string
		min     int64
		publish func(t *testing.T, e *env)
		want    error // from check+stage: ErrVerification, ErrAuthorizationRequired (PHI) or nil (not PHI)
	}{
		{"current policy names the model", 2, func(t *testing.T, e *env) { e.signedPolicy(t, v(2, withCyto)) }, client.ErrAuthorizationRequired},
		{"old signed policy replayed to a new agent", 2, func(t *testing.T, e *env) { e.signedPolicy(t, v(1, without)) }, client.ErrVerification},
		{"no signed policy published (or it was deleted)", 2, nil, client.ErrAuthorizationRequired},
		{"a newer policy that drops the class (both keys)", 2, func(t *testing.T, e *env) { e.signedPolicy(t, v(3, without)) }, nil},
		{"no minimum: an old policy is all a new agent knows", 0, func(t *testing.T, e *env) { e.signedPolicy(t, v(1, without)) }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvWith(t, func(c *client.Config) { c.DeviceModel = model; c.MinPolicyVersion = tc.min })
			if tc.publish != nil {
				tc.publish(t, e)
			}
			e.publishFeatures("1.1.0", []repo.Feature{fileTransfer})
			err := e.check()
			if err == nil {
				err = e.stage()
			}
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("want %v, got %v", tc.want, err)
			}
		})
	}
	t.Run("same version, other classes", func(t *testing.T) {
		e := newEnvWith(t, func(c *client.Config) { c.DeviceModel = model })
		e.signedPolicy(t, v(2, withCyto))
		if err := e.check(); err != nil {
			t.Fatal(err)
		}
		p := v(2, without)
		s, _ := e.codeSigner(e.pki.Leaf)([]byte(p))
		e.forgePolicy(t, p, s)
		if err := e.check(); !errors.Is(err, client.ErrVerification) {
			t.Fatalf("want a verification failure, got %v", err)
		}
		if !e.status().Device.PHI {
			t.Fatal("the device lost its PHI class")
		}
	})
}

// signedPolicy publishes a policy signed by the pinned publisher, with the
// TUF keys (what bcpublish policy set does, without its version check).
func (e *env) signedPolicy(t *testing.T, policy string) {
	t.Helper()
	s, err := e.codeSigner(e.pki.Leaf)([]byte(policy))
	if err != nil {
		t.Fatal(err)
	}
	e.forgePolicy(t, policy, s)
}

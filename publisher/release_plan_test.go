package publisher

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/testutil"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

// fakePatcher stands in for bsdiff: the patch from base is "patch from
// BASE", and it records the bases it was asked for.
type fakePatcher struct {
	missing bool
	asked   []string // basePath@baseSum
}

func (f *fakePatcher) ready() error {
	if f.missing {
		return errors.New("no bsdiff here")
	}
	return nil
}

func (f *fakePatcher) patch(base, basePath, baseSum, version string) (string, []byte, error) {
	f.asked = append(f.asked, basePath+"@"+baseSum)
	return "", []byte("patch from " + base + " to " + version), nil
}

// planView is the part of a releasePlan a test states in full.
type planView struct {
	Artifact  string
	SHA256    string
	Length    int64
	Released  string
	Features  []string
	Gate      bool
	Deltas    []repo.Delta
	Patches   map[string]string // path: contents
	Signature string
	Pointers  map[string]repo.Pointer
	Index     map[string]string // nil: unchanged
}

func viewOf(t *testing.T, p *releasePlan) planView {
	t.Helper()
	v := planView{Artifact: p.Artifact.Path, SHA256: p.Artifact.SHA256, Length: p.Artifact.Length,
		Released: p.Release.Released, Gate: p.Release.Gate != nil, Deltas: p.Release.Deltas}
	for _, f := range p.Release.Features {
		v.Features = append(v.Features, f.ID)
	}
	// The artifact's custom metadata is the plan's release.
	custom, err := p.Release.Custom()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(*custom, *p.Artifact.Custom) {
		t.Errorf("artifact custom metadata %s, want the release %s", *p.Artifact.Custom, *custom)
	}
	for _, pf := range p.Patches {
		if v.Patches == nil {
			v.Patches = map[string]string{}
		}
		v.Patches[pf.target.Path] = pf.target.SHA256
	}
	if p.Signature != nil {
		v.Signature = p.Signature.Target.Path
		if !bytes.Equal(p.Signature.Data, testSig) || p.Signature.Target.SHA256 != sha(testSig) {
			t.Errorf("signature target %+v holds %q", p.Signature.Target, p.Signature.Data)
		}
	}
	for _, b := range p.Pointers {
		ptr, err := repo.ParsePointer(b.Data)
		if err != nil || b.Target.SHA256 != sha(b.Data) {
			t.Fatalf("pointer %s: %v (sha256 %s of %q)", b.Target.Path, err, b.Target.SHA256, b.Data)
		}
		if v.Pointers == nil {
			v.Pointers = map[string]repo.Pointer{}
		}
		v.Pointers[b.Target.Path] = *ptr
	}
	if p.Index != nil {
		ix, err := repo.ParseReleaseIndex(p.Index.Data, p.Release.Component, p.Release.Platform)
		if err != nil || p.Index.Target.SHA256 != sha(p.Index.Data) {
			t.Fatalf("release index: %v", err)
		}
		v.Index = ix.Releases
	}
	return v
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

var testSig = []byte("detached signature")

// planFixture is an in-memory repository (no store) and the trust and
// code signer of a test PKI.
type planFixture struct {
	r     *repo.Repo
	ix    *repo.ReleaseIndex
	trust *signer.Trust
	sign  CodeSigner
}

func newPlanFixture(t *testing.T) *planFixture {
	t.Helper()
	dir := t.TempDir()
	if _, err := GenerateKeys(dir, signer.KeyTypeECDSAP256); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadKeys(dir, repo.TopLevelRoles...)
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := repo.New(keys, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pki := testutil.NewPKI(t)
	trust, err := signer.LoadTrust(pki.TrustDir)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(content []byte) ([]byte, error) {
		return signer.SignDetached(bytes.NewReader(content), pki.Leaf.Chain, pki.Leaf.Key)
	}
	return &planFixture{r: r, ix: &repo.ReleaseIndex{Releases: map[string]string{}}, trust: trust, sign: sign}
}

var planNow = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

func planOptions(version string) ReleaseOptions {
	return ReleaseOptions{Component: "notification-client", Version: version, Platform: "windows-amd64",
		File: filepath.Join("/build", "notification-client-"+version+".zip"), Now: planNow}
}

// plan plans o (validated as release add does) against the fixture.
func (f *planFixture) plan(t *testing.T, o ReleaseOptions, pt patcher) (*releasePlan, error) {
	t.Helper()
	if err := o.validate(); err != nil {
		t.Fatalf("options: %v", err)
	}
	content := []byte("artifact " + o.Version)
	in := releaseInput{o: o, kind: signer.KindFor(o.File), sig: testSig, length: int64(len(content)), sum: sha(content),
		trust: f.trust, index: f.ix, patcher: pt}
	return planRelease(f.r, in)
}

// publish plans and stages o in the in-memory repository, as an earlier
// release.
func (f *planFixture) publish(t *testing.T, o ReleaseOptions) {
	t.Helper()
	p, err := f.plan(t, o, &fakePatcher{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.stage(f.r); err != nil {
		t.Fatal(err)
	}
	f.ix.Releases[o.Version] = p.Artifact.Path
}

func TestPlanRelease(t *testing.T) {
	const (
		comp  = "notification-client"
		plat  = "windows-amd64"
		art10 = comp + "/" + plat + "/1.0.0/notification-client-1.0.0.zip"
		art11 = comp + "/" + plat + "/1.1.0/notification-client-1.1.0.zip"
	)
	released := planNow.Format(time.RFC3339)
	stable := repo.ChannelPath(comp, plat, "stable")
	beta := repo.ChannelPath(comp, plat, "beta")
	sum11 := sha([]byte("artifact 1.1.0"))
	feature := repo.Feature{ID: "phi-file-transfer", Title: "File transfer", Description: "Lets support copy files.", Consent: "required"}
	cases := []struct {
		name    string
		edit    func(o *ReleaseOptions, f *planFixture)
		earlier bool // 1.0.0 is published on stable first
		patcher fakePatcher
		want    planView
		asked   []string // bases the patcher was asked for
		wantErr string
		errIs   error
	}{{
		name: "plain release",
		want: planView{Artifact: art11, SHA256: sum11, Length: 14, Released: released, Signature: art11 + repo.SignatureSuffix,
			Pointers: map[string]repo.Pointer{stable: {Release: art11}}, Index: map[string]string{"1.1.0": art11}},
	}, {
		name:    "plain release after another",
		earlier: true,
		want: planView{Artifact: art11, SHA256: sum11, Length: 14, Released: released, Signature: art11 + repo.SignatureSuffix,
			Pointers: map[string]repo.Pointer{stable: {Release: art11}}, Index: map[string]string{"1.0.0": art10, "1.1.0": art11}},
	}, {
		name: "features with a gate manifest signed here",
		edit: func(o *ReleaseOptions, f *planFixture) { o.Features = []repo.Feature{feature}; o.GateSign = f.sign },
		want: planView{Artifact: art11, SHA256: sum11, Length: 14, Released: released, Features: []string{feature.ID}, Gate: true,
			Signature: art11 + repo.SignatureSuffix, Pointers: map[string]repo.Pointer{stable: {Release: art11}}, Index: map[string]string{"1.1.0": art11}},
	}, {
		name: "features from a gate manifest signed elsewhere (--gate)",
		edit: func(o *ReleaseOptions, f *planFixture) {
			rel := &repo.Release{Component: o.Component, Version: o.Version, Platform: o.Platform, Features: []repo.Feature{feature}}
			m, err := repo.NewGateManifest(rel, sum11)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := f.sign(m)
			if err != nil {
				t.Fatal(err)
			}
			o.GateManifest, o.GateSignature = m, sig
		},
		want: planView{Artifact: art11, SHA256: sum11, Length: 14, Released: released, Features: []string{feature.ID}, Gate: true,
			Signature: art11 + repo.SignatureSuffix, Pointers: map[string]repo.Pointer{stable: {Release: art11}}, Index: map[string]string{"1.1.0": art11}},
	}, {
		name: "a gate manifest for another artifact",
		edit: func(o *ReleaseOptions, f *planFixture) {
			rel := &repo.Release{Component: o.Component, Version: o.Version, Platform: o.Platform, Features: []repo.Feature{feature}}
			m, _ := repo.NewGateManifest(rel, sha([]byte("another artifact")))
			sig, _ := f.sign(m)
			o.GateManifest, o.GateSignature = m, sig
		},
		errIs: ErrUsage, wantErr: "--gate: ",
	}, {
		name:  "features without a gate manifest",
		edit:  func(o *ReleaseOptions, f *planFixture) { o.Features = []repo.Feature{feature} },
		errIs: ErrUsage, wantErr: "--feature: a release that turns on features needs a code-signed gate manifest",
	}, {
		name:    "delta from the earlier release",
		earlier: true,
		edit:    func(o *ReleaseOptions, f *planFixture) { o.DeltaFrom = []string{"1.0.0"} },
		want: planView{Artifact: art11, SHA256: sum11, Length: 14, Released: released,
			Deltas:    []repo.Delta{{From: "1.0.0", BaseSHA256: sha([]byte("artifact 1.0.0")), Patch: art11 + ".from-1.0.0.bsdiff", ResultSHA256: sum11}},
			Patches:   map[string]string{art11 + ".from-1.0.0.bsdiff": sha([]byte("patch from 1.0.0 to 1.1.0"))},
			Signature: art11 + repo.SignatureSuffix, Pointers: map[string]repo.Pointer{stable: {Release: art11}},
			Index: map[string]string{"1.0.0": art10, "1.1.0": art11}},
		asked: []string{art10 + "@" + sha([]byte("artifact 1.0.0"))},
	}, {
		name:    "delta from a version not published",
		edit:    func(o *ReleaseOptions, f *planFixture) { o.DeltaFrom = []string{"0.9.0"} },
		errIs:   ErrUsage,
		wantErr: "--delta-from 0.9.0: " + comp + "/" + plat + "/0.9.0/notification-client-0.9.0.zip is not published",
	}, {
		name:    "delta without bsdiff",
		earlier: true,
		edit:    func(o *ReleaseOptions, f *planFixture) { o.DeltaFrom = []string{"1.0.0"} },
		patcher: fakePatcher{missing: true},
		wantErr: "no bsdiff here",
	}, {
		name:    "a second artifact for a published version",
		earlier: true,
		edit: func(o *ReleaseOptions, f *planFixture) {
			*o = planOptions("1.0.0")
			o.File = "/build/notification-client-1.0.0-hotfix.zip"
		},
		errIs:   repo.ErrConflict,
		wantErr: "notification-client 1.0.0 for windows-amd64 is already published as " + art10,
	}, {
		name: "percent rollout on two channels",
		edit: func(o *ReleaseOptions, f *planFixture) {
			o.Channels = []string{"beta", "stable", "beta"}
			o.Percent = 10
		},
		want: planView{Artifact: art11, SHA256: sum11, Length: 14, Released: released, Signature: art11 + repo.SignatureSuffix,
			Pointers: map[string]repo.Pointer{beta: {Release: art11, Percent: 10}, stable: {Release: art11, Percent: 10}},
			Index:    map[string]string{"1.1.0": art11}},
	}, {
		name: "percent 100 is everyone",
		edit: func(o *ReleaseOptions, f *planFixture) { o.Percent = 100 },
		want: planView{Artifact: art11, SHA256: sum11, Length: 14, Released: released, Signature: art11 + repo.SignatureSuffix,
			Pointers: map[string]repo.Pointer{stable: {Release: art11}}, Index: map[string]string{"1.1.0": art11}},
	}, {
		name:    "the same release again keeps its release time and changes nothing",
		earlier: true,
		edit: func(o *ReleaseOptions, f *planFixture) {
			*o = planOptions("1.0.0")
			o.Now = planNow.Add(time.Hour)
		},
		want: planView{Artifact: art10, SHA256: sha([]byte("artifact 1.0.0")), Length: 14, Released: released,
			Signature: art10 + repo.SignatureSuffix},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newPlanFixture(t)
			if tc.earlier {
				f.publish(t, planOptions("1.0.0"))
			}
			o := planOptions("1.1.0")
			if tc.edit != nil {
				tc.edit(&o, f)
			}
			pt := tc.patcher
			p, err := f.plan(t, o, &pt)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || (tc.errIs != nil && !errors.Is(err, tc.errIs)) {
					t.Fatalf("plan: %v, want an error containing %q (%v)", err, tc.wantErr, tc.errIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := viewOf(t, p); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan\n got %+v\nwant %+v", got, tc.want)
			}
			if !reflect.DeepEqual(pt.asked, tc.asked) {
				t.Errorf("patcher asked for %q, want %q", pt.asked, tc.asked)
			}
			if tc.want.Gate {
				checkGate(t, p, f.trust)
			}
			// The plan only read the repository: staging it is what adds.
			addedArt, changed, err := p.stage(f.r)
			if err != nil {
				t.Fatal(err)
			}
			if wantNew := tc.want.Index != nil; addedArt != wantNew || changed != wantNew {
				t.Errorf("stage: artifact added %v, changed %v; want %v", addedArt, changed, wantNew)
			}
		})
	}
}

// checkGate: the gate manifest names the release and its features, and is
// signed.
func checkGate(t *testing.T, p *releasePlan, trust *signer.Trust) {
	t.Helper()
	manifest, sig, err := p.Release.Gate.Decode()
	if err != nil {
		t.Fatal(err)
	}
	m, err := repo.ParseGateManifest(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Match(p.Release, p.Artifact.SHA256); err != nil {
		t.Errorf("gate manifest does not match the release: %v", err)
	}
	if _, err := trust.VerifyDetached(bytes.NewReader(manifest), sig); err != nil {
		t.Errorf("gate manifest signature: %v", err)
	}
}

// An artifact published again with other content is refused when the plan
// is staged (artifacts are immutable), and nothing is staged after it.
func TestStageRefusesChangedArtifact(t *testing.T) {
	f := newPlanFixture(t)
	f.publish(t, planOptions("1.0.0"))
	o := planOptions("1.0.0")
	o.HealthCheck = []string{"check.exe"}
	p, err := f.plan(t, o, &fakePatcher{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.stage(f.r); !errors.Is(err, repo.ErrConflict) {
		t.Fatalf("stage: %v, want %v", err, repo.ErrConflict)
	}
}

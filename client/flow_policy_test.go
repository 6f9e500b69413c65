package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beckmanconnect/bcupdate/repo"
)

var flowPHI = repo.Feature{
	ID:          "phi-export",
	Title:       "Export results",
	Description: "Copies patient results to a network share.",
	Consent:     repo.ConsentPHIDevices,
}

// setPolicy publishes a code-signed device policy.
func (e *flowEnv) setPolicy(version int64, classes ...string) error {
	e.t.Helper()
	f := filepath.Join(e.t.TempDir(), "devices.json")
	b := `{"version":` + strconv.FormatInt(version, 10) + `,"phi_device_classes":["` + strings.Join(classes, `","`) + `"]}`
	if err := os.WriteFile(f, []byte(b), 0o644); err != nil {
		e.t.Fatal(err)
	}
	_, err := e.bcpublish("policy", "set", "--repo", e.repoDir, "--keys", e.keysDir, "--trust", e.world.TrustDir, "--file", f,
		"--codesign-cert", e.codeCert, "--codesign-key", e.codeKey)
	return err
}

// TestFlowDevicePolicyGatesPHIFeatures: a phi-devices feature asks on a
// device whose model a code-signed policy names; a model it does not name
// turns the feature on without asking.
func TestFlowDevicePolicyGatesPHIFeatures(t *testing.T) {
	t.Parallel()
	// A model outside the built-in classes: the feature is not gated.
	e := newFlowEnv(t, func(c *Config) { c.DeviceModel = "Bench Analyzer 7" })
	if ok, _ := KnownModel("Navios EX", nil); !ok {
		t.Error("Navios EX is not a known model")
	}
	if !slices.Contains(BuiltinPHIClasses(), "Navios EX") {
		t.Errorf("built-in classes %v", BuiltinPHIClasses())
	}
	e.publish("1.0.0", flowPHI)
	e.install("1.0.0")
	e.do(func(a *Agent) error {
		active, _ := a.ActiveFeatures(flowComp)
		if !slices.Contains(active, flowPHI.ID) {
			t.Errorf("phi-devices feature off on a non-PHI model: %v", active)
		}
		return nil
	})

	// A signed policy adds the model: the next release asks.
	if err := e.setPolicy(2, "Bench Analyzer 7"); err != nil {
		t.Fatal(err)
	}
	e.publish("1.1.0", flowPHI)
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if err := e.stage(); !errors.Is(err, ErrAuthorizationRequired) {
		t.Fatalf("stage on a device the policy names PHI: %v", err)
	}
	st := e.statusOfComp()
	if st.State != StateAwaitingAuthorization {
		t.Fatalf("status %+v", st)
	}
	e.do(func(a *Agent) error {
		s, err := a.Status()
		if err != nil || !s.Device.PHI {
			t.Errorf("device not PHI after the policy: %+v %v", s, err)
		}
		au, _, _ := a.ExportLogs()
		if !flowAuditHas(au, EventPolicyAccepted) {
			t.Error("policy acceptance not audited")
		}
		return nil
	})
	if err := e.apply(ApplyOptions{Decline: []string{flowPHI.ID}, By: "Dr. Ada"}); err != nil {
		t.Fatal(err)
	}
	e.do(func(a *Agent) error {
		active, _ := a.ActiveFeatures(flowComp)
		if slices.Contains(active, flowPHI.ID) {
			t.Errorf("declined feature active: %v", active)
		}
		return nil
	})

	// The publisher refuses a policy whose version does not go up.
	if err := e.setPolicy(2, "Something Else"); err == nil {
		t.Error("publisher accepted a policy of the same version")
	} else if !strings.Contains(err.Error(), "not above the published policy's version") {
		t.Errorf("publisher refused a policy of the same version for another reason: %v", err)
	}
	// A policy changed by someone with the TUF keys only (its code
	// signature is the old one's) is refused by the agent.
	r, err := repo.Load(e.readMetadata)
	if err != nil {
		t.Fatal(err)
	}
	forged := repo.NewTarget(repo.DevicePolicyPath, []byte(`{"version":3,"phi_device_classes":["Other"]}`), nil)
	if err := r.Set(forged); err != nil {
		t.Fatal(err)
	}
	files, err := r.Commit(e.roleKeys(repo.RoleTargets, repo.RoleSnapshot, repo.RoleTimestamp), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tp := filepath.Join(e.repoDir, "targets", filepath.FromSlash(forged.StorageName()))
	os.MkdirAll(filepath.Dir(tp), 0o755)
	if err := os.WriteFile(tp, []byte(`{"version":3,"phi_device_classes":["Other"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	e.writeMetadata(files)
	if err := e.check(); !errors.Is(err, ErrVerification) || !strings.Contains(err.Error(), "code signature") {
		t.Fatalf("check with a policy the code signature does not cover: %v, want ErrVerification", err)
	}
}

// TestFlowYankedRelease: a yanked installed release is warned about, and
// the channel moved back is not a downgrade the agent applies.
func TestFlowYankedRelease(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	e.publish("1.0.0")
	e.publish("1.1.0")
	e.install("1.1.0")
	e.mustBcpublish("release", "yank", "--repo", e.repoDir, "--keys", e.keysDir, "--component", flowComp, "--platform", flowPlatform,
		"--version", "1.1.0", "--reason", "crashes on start")
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	e.do(func(a *Agent) error {
		list, _ := a.Notifications()
		found := false
		for _, n := range list {
			found = found || (n.Kind == NoteYanked && strings.Contains(n.Message, "crashes on start"))
		}
		if !found {
			t.Errorf("no yanked notification naming the reason: %+v", list)
		}
		return nil
	})
	if got := e.current(); got != "1.1.0" {
		t.Fatalf("current %q", got)
	}
	// Pinned to the yanked version: not offered.
	if err := e.do(func(a *Agent) error { return a.Pin(flowComp, "1.1.0") }); err != nil {
		t.Fatal(err)
	}
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	if c := e.componentState(); c.Available != nil {
		t.Fatalf("yanked pinned release offered: %+v", c.Available)
	}
}

// TestFlowRedirectToAnotherHostRefused: a repository answering an artifact
// with a redirect to a host outside the allow list is refused; the other
// host is never asked.
func TestFlowRedirectToAnotherHostRefused(t *testing.T) {
	t.Parallel()
	var other atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		other.Add(1)
		w.Write([]byte("evil"))
	}))
	defer elsewhere.Close()
	e := newFlowEnv(t, nil)
	e.publish("1.0.0")
	if err := e.check(); err != nil {
		t.Fatal(err)
	}
	target := strings.Replace(elsewhere.URL, "127.0.0.1", "localhost", 1)
	e.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, flowArtifact("1.0.0")) {
			http.Redirect(w, r, target+r.URL.Path, http.StatusFound)
			return true
		}
		return false
	})
	err := e.stage()
	if err == nil || !strings.Contains(err.Error(), "not the repository host") {
		t.Fatalf("stage through a redirect to another host: %v", err)
	}
	if n := other.Load(); n != 0 {
		t.Fatalf("the other host was asked %d times", n)
	}
	if c := e.componentState(); c.Staged != nil {
		t.Fatalf("staged through a refused redirect: %+v", c.Staged)
	}

	// Listed in allowed_hosts, the same redirect is followed (and the
	// bytes it gets fail verification).
	e2 := newFlowEnv(t, func(c *Config) { c.AllowedHosts = []string{strings.TrimPrefix(target, "http://")} })
	e2.publish("1.0.0")
	e2.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, flowArtifact("1.0.0")) {
			http.Redirect(w, r, target+r.URL.Path, http.StatusFound)
			return true
		}
		return false
	})
	if err := e2.stage(); err == nil {
		t.Fatal("stage of redirected wrong bytes succeeded")
	}
	if other.Load() == 0 {
		t.Fatal("a redirect to an allowed host was not followed")
	}
}

// TestFlowProgressAndServerErrors: the progress callback sees the whole
// artifact; a 404 for an artifact the metadata lists fails the stage, and
// a server error is retried.
func TestFlowProgressAndServerErrors(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, nil)
	res := e.publish("1.0.0")
	var last, total int64
	err := e.do(func(a *Agent) error {
		a.SetProgress(func(component string, done, tot int64) {
			if component == flowComp {
				last, total = done, tot
			}
		})
		_, err := a.Stage(context.Background(), flowComp)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if total != res.Length || last != res.Length {
		t.Fatalf("progress ended at %d of %d, artifact is %d bytes", last, total, res.Length)
	}
	e.do(func(a *Agent) error {
		if _, err := a.Stage(context.Background(), "other"); err == nil {
			t.Error("stage of an unknown component accepted")
		}
		return nil
	})

	e2 := newFlowEnv(t, nil)
	e2.publish("1.0.0")
	var fails atomic.Int32
	e2.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, flowArtifact("1.0.0")) && fails.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	if err := e2.stage(); err != nil {
		t.Fatalf("a 503 once was not retried: %v", err)
	}
	e3 := newFlowEnv(t, nil)
	e3.publish("1.0.0")
	e3.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, flowArtifact("1.0.0")) {
			http.NotFound(w, r)
			return true
		}
		return false
	})
	if err := e3.stage(); err == nil {
		t.Fatal("stage of a missing artifact succeeded")
	}
}

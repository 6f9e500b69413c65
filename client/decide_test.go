package client

import (
	"context"
	"testing"

	"github.com/beckmanconnect/bcupdate/repo"
)

type yes struct{}

func (yes) Confirm(context.Context, ConsentRequest) (bool, string, error) { return true, "x", nil }

// TestChooseDecision: how each gated feature is decided, for every
// standing decision and every way an apply can be run.
func TestChooseDecision(t *testing.T) {
	opts := map[string]ApplyOptions{
		"nothing":             {},
		"--authorize it":      {Authorize: []string{"ft"}, By: "A"},
		"--decline it":        {Decline: []string{"ft"}, By: "A"},
		"--authorize another": {Authorize: []string{"other"}, By: "A"},
		"at a terminal":       {Prompter: yes{}},
	}
	want := map[Decision]map[string]choice{
		"": {"nothing": standing, "--authorize it": grantByFlag, "--decline it": declineByFlag,
			"--authorize another": standing, "at a terminal": ask},
		DecisionGranted: {"nothing": standing, "--authorize it": grantByFlag, "--decline it": declineByFlag,
			"--authorize another": standing, "at a terminal": standing},
		DecisionDeclined: {"nothing": standing, "--authorize it": grantByFlag, "--decline it": declineByFlag,
			"--authorize another": standing, "at a terminal": standing},
		DecisionRevoked: {"nothing": standing, "--authorize it": grantByFlag, "--decline it": declineByFlag,
			"--authorize another": standing, "at a terminal": standing},
	}
	for d, row := range want {
		for name, o := range opts {
			if got := chooseDecision(d, "ft", o); got != row[name] {
				t.Errorf("standing %q, %s: choice %d, want %d", d, name, got, row[name])
			}
		}
	}
}

func TestDecisionOutcome(t *testing.T) {
	for d, want := range map[Decision]featureOutcome{
		"": featureWaits, DecisionGranted: featureOn, DecisionDeclined: featureOff, DecisionRevoked: featureOff,
	} {
		if got := outcome(d); got != want {
			t.Errorf("outcome(%q) = %d, want %d", d, got, want)
		}
	}
}

// TestDecisionFor: a standing decision counts only on this device's log,
// for the very component, feature and text it was made on.
func TestDecisionFor(t *testing.T) {
	f := repo.Feature{ID: "ft", Consent: repo.ConsentRequired, Title: "File transfer", Description: "Sends files."}
	rec := ConsentRecord{Component: "nc", Feature: "ft", Decision: DecisionGranted, TextSHA256: FeatureTextSHA256(f)}
	decs := map[string]ConsentRecord{"nc\x00ft": rec}
	reworded := f
	reworded.Description = "Sends files anywhere."
	for _, tc := range []struct {
		name      string
		component string
		f         repo.Feature
		want      Decision
	}{
		{"same text", "nc", f, DecisionGranted},
		{"reworded", "nc", reworded, ""},
		{"another component", "other", f, ""},
		{"another feature", "nc", repo.Feature{ID: "other", Consent: repo.ConsentRequired}, ""},
	} {
		if got := decisionFor(decs, tc.component, tc.f); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

package errs_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/beckmanconnect/bcupdate/internal/errs"
)

func TestKind(t *testing.T) {
	sig := errs.Kind(errs.ErrVerification, "code signature verification failed")
	md := errs.Kind(errs.ErrVerification, "repository metadata verification failed")
	err := fmt.Errorf("%w: bad chain", sig)
	if err.Error() != "code signature verification failed: bad chain" {
		t.Fatalf("message = %q", err)
	}
	if !errors.Is(err, errs.ErrVerification) || !errors.Is(err, sig) {
		t.Fatalf("%v is not a verification error", err)
	}
	if errors.Is(err, md) || errors.Is(err, errs.ErrUsage) || errors.Is(fmt.Errorf("%w", errs.ErrVerification), sig) {
		t.Fatal("a sentinel matches another of its kind, another kind, or the kind matches a sentinel")
	}
}

func TestUsageError(t *testing.T) {
	cause := errors.New("no such file")
	err := fmt.Errorf("loading: %w", errs.Usagef("trust", "--trust: %w", cause))
	if err.Error() != "loading: --trust: no such file" {
		t.Fatalf("message = %q", err)
	}
	var ue *errs.UsageError
	if !errors.Is(err, errs.ErrUsage) || !errors.As(err, &ue) || ue.Flag != "trust" || !errors.Is(err, cause) {
		t.Fatalf("%v: not a usage error about --trust wrapping its cause", err)
	}
	if errors.Is(err, errs.ErrVerification) || errs.Usage("x", nil) != nil {
		t.Fatal("usage error is of another kind, or Usage(nil) is not nil")
	}
}

// Package errs holds the one definition of the error kinds every package
// of bcupdate reports and both CLIs map to exit codes (docs/design.md):
// verification failures, usage errors and a missing authorization. It
// depends on nothing but the standard library, so every package can wrap
// these sentinels and callers test them with errors.Is and errors.As,
// never by text.
//
// A package that has always named the kind in its own words keeps its
// message with Kind: signer.ErrVerification reads "code signature
// verification failed" and still matches ErrVerification, while an error
// of another package's kind does not match it.
package errs

import (
	"errors"
	"fmt"
)

var (
	// ErrVerification: TUF metadata, an artifact's hash or its code
	// signature did not verify. It may be an attack (exit code 3).
	ErrVerification = errors.New("verification failed")
	// ErrUsage: bad input from the user, a flag or a configuration value
	// (exit code 2). Errors of this kind are *UsageError values, or wrap
	// ErrUsage.
	ErrUsage = errors.New("usage error")
	// ErrAuthorizationRequired: a release waits for a person to authorize
	// a feature; nothing was activated (exit code 4).
	ErrAuthorizationRequired = errors.New("a person must authorize a feature first")
)

// kindError is a sentinel with its own message that is of kind's kind.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// Kind returns a sentinel reading msg that errors.Is matches both to
// itself and to kind (one of the sentinels above). Two sentinels of the
// same kind do not match each other.
func Kind(kind error, msg string) error { return &kindError{msg: msg, kind: kind} }

// UsageError is bad input from the user. Flag is the flag it is about,
// without dashes ("" when it is about no one flag, or the value came from
// elsewhere, such as config.json). Its message is Err's: it names the flag
// or setting itself, in the words the user sees; the kind is not part of
// the text (errors.Is(err, ErrUsage) says it).
type UsageError struct {
	Flag string
	Err  error
}

func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the cause, so errors.Is and errors.As reach what Err wraps.
func (e *UsageError) Unwrap() error { return e.Err }

// Is makes every UsageError match ErrUsage.
func (e *UsageError) Is(target error) bool { return target == ErrUsage }

// Usagef returns a UsageError about flag (may be "") with the message
// fmt.Errorf(format, args...) would give; %w wraps as there.
func Usagef(flag, format string, args ...any) error {
	return &UsageError{Flag: flag, Err: fmt.Errorf(format, args...)}
}

// Usage makes err a UsageError about flag; nil stays nil.
func Usage(flag string, err error) error {
	if err == nil {
		return nil
	}
	return &UsageError{Flag: flag, Err: err}
}

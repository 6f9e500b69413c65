package signer

import "github.com/beckmanconnect/bcupdate/internal/errs"

// quietError reads as err and wraps both err and cause: for a library
// error whose text would only confuse a person (encoding/asn1 prints
// struct tags), still reachable with errors.Is and errors.As.
type quietError struct{ err, cause error }

func (e *quietError) Error() string   { return e.err.Error() }
func (e *quietError) Unwrap() []error { return []error{e.err, e.cause} }

func quiet(err, cause error) error { return &quietError{err, cause} }

// ErrVerification marks a code signature that does not verify. It may be an
// attack: callers map it to exit code 3. It is of kind errs.ErrVerification
// (errors.Is matches both), with its own message.
var ErrVerification = errs.Kind(errs.ErrVerification, "code signature verification failed")

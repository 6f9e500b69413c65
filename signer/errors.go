package signer

import "github.com/beckmanconnect/bcupdate/internal/errs"

// ErrVerification marks a code signature that does not verify. It may be an
// attack: callers map it to exit code 3. It is of kind errs.ErrVerification
// (errors.Is matches both), with its own message.
var ErrVerification = errs.Kind(errs.ErrVerification, "code signature verification failed")

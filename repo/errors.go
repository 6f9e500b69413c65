package repo

import "github.com/beckmanconnect/bcupdate/internal/errs"

// ErrVerification: the repository's own metadata does not verify, or a
// key does not belong to the role it is used for. It is of kind
// errs.ErrVerification (errors.Is matches both), with its own message.
var ErrVerification = errs.Kind(errs.ErrVerification, "repository metadata verification failed")

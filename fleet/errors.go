package fleet

import "github.com/beckmanconnect/bcupdate/internal/errs"

// errUsage is a usage error (exit 2) in the words given.
func errUsage(format string, args ...any) error { return errs.Usagef("", format, args...) }

// ErrUsage: bad input from a person (exit 2).
var ErrUsage = errs.ErrUsage

package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	neturl "net/url"
	"strings"
	"syscall"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/beckmanconnect/bcupdate/internal/errs"
	"github.com/beckmanconnect/bcupdate/repo"
	"github.com/beckmanconnect/bcupdate/signer"
)

var (
	// ErrVerification: TUF metadata, an artifact's hash or its code
	// signature did not verify. It may be an attack (exit code 3).
	ErrVerification = errs.ErrVerification
	// ErrUsage: bad input from the user (exit code 2); such errors are
	// *errs.UsageError values.
	ErrUsage = errs.ErrUsage
	// ErrNotInitialized: the state directory has no configuration.
	ErrNotInitialized = errors.New("agent not initialized")
	// ErrTooSlow: a download fell below the minimum rate (a network
	// failure: the repository could not be reached in useful time).
	ErrTooSlow = errors.New("download too slow")
	// ErrLocked: another agent holds the state directory.
	ErrLocked = errors.New("state directory is in use by another agent")
)

// usagef is a usage error; its message names the flag or setting.
func usagef(format string, args ...any) error {
	return errs.Usagef("", format, args...)
}

func verifyf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrVerification}, args...)...)
}

// classifyTUF marks go-tuf errors that mean the repository's data does not
// verify (bad signature, rollback, freeze, mix-and-match, wrong length or
// hash, endless data) as ErrVerification; network errors stay operational.
func classifyTUF(err error) error {
	if err == nil {
		return nil
	}
	var (
		repoErr  *metadata.ErrRepository
		lenErr   *metadata.ErrDownloadLengthMismatch
		expired  *metadata.ErrExpiredMetadata
		badVer   *metadata.ErrBadVersionNumber
		unsigned *metadata.ErrUnsignedMetadata
		hashErr  *metadata.ErrLengthOrHashMismatch
		valueErr *metadata.ErrValue
		typeErr  *metadata.ErrType
		syntax   *json.SyntaxError
		jsonType *json.UnmarshalTypeError
		hint     string
	)
	switch {
	case errors.As(err, &expired):
		hint = "repository metadata has expired (a freeze attack, or the publisher has not refreshed it)"
	case errors.As(err, &badVer):
		hint = "repository metadata is older than what this agent has already seen (a rollback attack?)"
	case errors.As(err, &unsigned):
		hint = "repository metadata is not signed by the keys this PC trusts (if the repository was set up anew, this PC's trusted root is not its root: ask its release engineers for the right root.json; otherwise someone may be serving forged metadata)"
	case errors.As(err, &hashErr), errors.As(err, &lenErr):
		hint = "repository data does not match its signed length or hash"
	case errors.As(err, &repoErr), errors.As(err, &valueErr), errors.As(err, &typeErr):
		hint = "repository metadata is invalid"
	case errors.As(err, &syntax), errors.As(err, &jsonType), errors.Is(err, io.ErrUnexpectedEOF) && !isNetwork(err):
		// Signed data that does not even parse: the same class as data
		// that does not verify, never "could not be reached".
		hint = "repository metadata is malformed (not valid TUF JSON)"
	case errors.Is(err, signer.ErrVerification), errors.Is(err, repo.ErrBadPath), errors.Is(err, ErrUnsafeArchive):
		return fmt.Errorf("%w: %w", ErrVerification, err)
	default:
		return err
	}
	return fmt.Errorf("%w: %s; this may be an attack, nothing was changed: %w", ErrVerification, hint, err)
}

// unreachableError is a failure to reach the repository in the agent's
// words: where it tried, the cause in short, and what to check. The
// library's own error is kept for errors.Is/As and for the log.
type unreachableError struct {
	url, cause string
	err        error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach the repository at %s (%s): is its server running, and is repository_url right (bcagent config show)? What is installed keeps running; detail: %v", e.url, e.cause, e.err)
}

func (e *unreachableError) Unwrap() error { return e.err }

// unreachable wraps a network error (isNetwork) for people, once.
func unreachable(url string, err error) error {
	var done *unreachableError
	if errors.As(err, &done) {
		return err
	}
	return &unreachableError{url: url, cause: networkCause(err), err: err}
}

// networkCause names a network failure in a few words.
func networkCause(err error) string {
	var (
		dnsErr *net.DNSError
		dlHTTP *metadata.ErrDownloadHTTP
		nerr   net.Error
	)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("host %s not found", dnsErr.Name)
	case errors.Is(err, ErrTooSlow):
		return "the server sent too little, too slowly"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return "timed out"
	case errors.As(err, &dlHTTP):
		return fmt.Sprintf("HTTP status %d", dlHTTP.StatusCode)
	}
	var cerr *tls.CertificateVerificationError
	if errors.As(err, &cerr) {
		return "its TLS certificate is not trusted by this PC"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		msg = msg[i+2:]
	}
	return msg
}

// checkFailure classifies a failed check for status.
func checkFailure(err error) CheckFailure {
	switch {
	case errors.Is(err, ErrVerification):
		return CheckVerification
	case isNetwork(err):
		return CheckUnreachable
	default:
		return CheckError
	}
}

// isNetwork says whether err is a failure to reach the repository or to
// get a whole answer from it (connection, TLS, timeout, HTTP status, a
// body cut short or too slow): the only failures reported as "could not be
// reached". Anything about the bytes themselves is ErrVerification.
func isNetwork(err error) bool {
	if err == nil || errors.Is(err, ErrVerification) {
		return false
	}
	var (
		uerr   *neturl.Error
		nerr   net.Error
		opErr  *net.OpError
		dnsErr *net.DNSError
		dl     *metadata.ErrDownload
		dlHTTP *metadata.ErrDownloadHTTP
	)
	return errors.As(err, &uerr) || errors.As(err, &nerr) || errors.As(err, &opErr) || errors.As(err, &dnsErr) ||
		errors.As(err, &dl) || errors.As(err, &dlHTTP) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, ErrTooSlow) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

//go:build windows

package eventlog

import (
	"errors"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
	"golang.org/x/sys/windows/svc/eventlog"

	"github.com/beckmanconnect/bcupdate/client"
)

// sourceKey is where the Application log's sources are registered.
const sourceKey = `SYSTEM\CurrentControlSet\Services\EventLog\Application\`

// typesSupported: errors, warnings and information (7).
const typesSupported = eventlog.Error | eventlog.Warning | eventlog.Info

// Log writes to the Application log under a source.
type Log struct{ l *eventlog.Log }

var _ client.EventSink = (*Log)(nil)

// Open opens the Application log for writing under source. It works
// before the source is registered too (Event Viewer then shows the text
// with a note that the source's description is missing).
func Open(source string) (*Log, error) {
	l, err := eventlog.Open(source)
	if err != nil {
		return nil, err
	}
	return &Log{l: l}, nil
}

// Close closes the log.
func (l *Log) Close() error { return l.l.Close() }

// Info writes an Information event.
func (l *Log) Info(id uint32, msg string) error { return l.l.Info(id, Truncate(msg)) }

// Warning writes a Warning event.
func (l *Log) Warning(id uint32, msg string) error { return l.l.Warning(id, Truncate(msg)) }

// Error writes an Error event.
func (l *Log) Error(id uint32, msg string) error { return l.l.Error(id, Truncate(msg)) }

// Install registers source in the Application log with EventCreate.exe as
// its message file (the registry values the MSI writes too:
// EventMessageFile, TypesSupported 7, CustomSource 1). A source already
// registered, by the MSI or an earlier install, is left as it is; it
// reports whether it registered the source.
func Install(source string) (bool, error) {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, sourceKey+source, registry.QUERY_VALUE)
	if err == nil {
		k.Close()
		return false, nil
	}
	if !errors.Is(err, registry.ErrNotExist) {
		return false, err
	}
	if err := eventlog.InstallAsEventCreate(source, typesSupported); err != nil {
		return false, err
	}
	return true, nil
}

// Remove removes source's registration; one that is not there is not an
// error. It reports whether it removed one.
func Remove(source string) (bool, error) {
	err := eventlog.Remove(source)
	if errors.Is(err, registry.ErrNotExist) || errors.Is(err, windows.ERROR_FILE_NOT_FOUND) {
		return false, nil
	}
	return err == nil, err
}

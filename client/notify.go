package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"sort"
	"time"
)

// NoteKind is a kind of notification.
type NoteKind string

// Severity says how urgent a notification is.
type Severity string

// Severities.
const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Notification kinds.
const (
	NoteUpdateAvailable       NoteKind = "update-available"
	NoteStaged                NoteKind = "staged"
	NoteAwaitingAuthorization NoteKind = "awaiting-authorization"
	NoteInstalled             NoteKind = "installed"
	NoteFailed                NoteKind = "failed"
	NoteRolledBack            NoteKind = "rolled-back"
	NoteMetadataExpiring      NoteKind = "metadata-expiring"
	NoteMetadataExpired       NoteKind = "metadata-expired"
	NoteVerificationFailure   NoteKind = "verification-failure"
	NoteLogDamaged            NoteKind = "log-damaged"
	NoteRepositoryUnreachable NoteKind = "repository-unreachable"
	NoteYanked                NoteKind = "yanked"
	NoteFeaturesRestored      NoteKind = "features-restored"
	NoteCheckFailed           NoteKind = "check-failed"
	NoteNoRelease             NoteKind = "no-release"
)

// Notification is one active notice for the people at the PC.
type Notification struct {
	ID        string    `json:"id"`
	Kind      NoteKind  `json:"kind"`
	Severity  Severity  `json:"severity"`
	Component string    `json:"component,omitempty"`
	Version   string    `json:"version,omitempty"`
	Message   string    `json:"message"`
	Since     time.Time `json:"since"`
}

type notificationFile struct {
	Active []Notification `json:"active"`
}

const notifyCommandTimeout = 10 * time.Second

// Notifications returns the active notifications, oldest first.
func (a *Agent) Notifications() ([]Notification, error) {
	root, err := a.openRoot()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	data, err := readFileRoot(root, "notifications.json", 4<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return []Notification{}, nil
	}
	if err != nil {
		return nil, err
	}
	var nf notificationFile
	if err := json.Unmarshal(data, &nf); err != nil {
		return nil, err
	}
	if nf.Active == nil {
		nf.Active = []Notification{}
	}
	return nf.Active, nil
}

func (a *Agent) saveNotifications(list []Notification) error {
	sort.SliceStable(list, func(i, j int) bool { return list[i].Since.Before(list[j].Since) })
	data, err := json.MarshalIndent(notificationFile{Active: list}, "", "  ")
	if err != nil {
		return err
	}
	root, err := a.openRoot()
	if err != nil {
		return err
	}
	defer root.Close()
	return writeFileRootSync(root, "notifications.json", append(data, '\n'), 0o600)
}

// raise adds a notification unless the same one is already active; a new
// or changed one is handed to notify_command. In a batch (batch.go) the
// file is written, and the command run, at the batch's flush.
func (a *Agent) raise(kind NoteKind, severity Severity, component, version, message string) {
	list, err := a.notes()
	if err != nil {
		a.log.Error("notifications", "err", err)
		list = []Notification{}
	}
	id := string(kind)
	if component != "" {
		id += ":" + component
	}
	n := Notification{ID: id, Kind: kind, Severity: severity, Component: component, Version: version, Message: message, Since: time.Now().UTC().Truncate(time.Second)}
	for i, old := range list {
		if old.ID == id {
			if old.Version == version && old.Message == message {
				return // already shown: do not repeat
			}
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	list = append(list, n)
	if b := a.batch; b != nil {
		b.notes, b.dirty = list, true
		b.handed = append(b.handed, n)
		return
	}
	if err := a.saveNotifications(list); err != nil {
		a.log.Error("notifications", "err", err)
		return
	}
	a.runNotifyCommand(context.Background(), n)
}

// resolve clears notifications of the given kinds for a component
// ("" component: repository-wide ones).
func (a *Agent) resolve(component string, kinds ...NoteKind) {
	list, err := a.notes()
	if err != nil || len(list) == 0 {
		return
	}
	kept := list[:0:0]
	for _, n := range list {
		drop := false
		for _, k := range kinds {
			if n.Kind == k && n.Component == component {
				drop = true
			}
		}
		if !drop {
			kept = append(kept, n)
		}
	}
	if len(kept) == len(list) {
		return
	}
	if b := a.batch; b != nil {
		b.notes, b.dirty = kept, true
		return
	}
	if err := a.saveNotifications(kept); err != nil {
		a.log.Error("notifications", "err", err)
	}
}

// notes is the active notifications: the batch's working list while there
// is one, else notifications.json.
func (a *Agent) notes() ([]Notification, error) {
	b := a.batch
	if b == nil {
		return a.Notifications()
	}
	if !b.loaded {
		list, err := a.Notifications()
		if err != nil {
			return nil, err
		}
		b.notes, b.loaded = list, true
	}
	return slices.Clone(b.notes), nil
}

// runNotifyCommand hands a new or changed notification to the event sink
// (eventlog.go) and to the site's hook as JSON on stdin.
func (a *Agent) runNotifyCommand(parent context.Context, n Notification) {
	a.emitNote(n)
	if len(a.cfg.NotifyCommand) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(parent, notifyCommandTimeout)
	defer cancel()
	body, _ := json.Marshal(n)
	cmd := exec.CommandContext(ctx, a.cfg.NotifyCommand[0], a.cfg.NotifyCommand[1:]...)
	cmd.Stdin = bytes.NewReader(body)
	cmd.Env = append(os.Environ(), "BCAGENT_NOTIFICATION_KIND="+string(n.Kind))
	if out, err := cmd.CombinedOutput(); err != nil {
		a.log.Error("notify_command failed", "err", err, "output", string(out))
	}
}

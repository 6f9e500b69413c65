package client

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/beckmanconnect/bcupdate/internal/errs"
	"github.com/beckmanconnect/bcupdate/internal/textsafe"
)

// Acknowledging a notification (bcagent notifications ack). A critical
// notification is never cleared silently: it may be an attack. Most are
// resolved by what ends their cause (a successful check, an install), but
// a PC that lives on offline bundles never makes the online check that
// resolves a verification failure. A person who has looked into one ends
// it by hand, and the audit log records who, why, and what it said, before
// it is removed. Nothing else changes: the same condition later raises it
// again, as any notification is raised.

// Acknowledgement is what Acknowledge ended.
type Acknowledgement struct {
	Notification Notification `json:"notification"`
	By           string       `json:"by"`
	Reason       string       `json:"reason,omitempty"`
	Time         time.Time    `json:"time"`
}

// Acknowledge ends the active notification named by key, its ID
// ("verification-failure", "verification-failure:COMPONENT", as
// bcagent notifications shows) or its kind when one notification of that
// kind is active. by names the person (required); reason is optional.
// The audit entry (notification-acknowledged) is appended first: if it
// cannot be, the notification stays. A key that names no active
// notification, or a kind active for several components, is a usage
// error naming what is active.
func (a *Agent) Acknowledge(key, by, reason string) (*Acknowledgement, error) {
	if strings.TrimSpace(by) == "" {
		return nil, errs.Usagef("by", "--by NAME is required: the person acknowledging the notification")
	}
	if err := textsafe.Check(by, false); err != nil {
		return nil, errs.Usagef("by", "--by: %v", err)
	}
	if err := textsafe.Check(reason, false); err != nil {
		return nil, errs.Usagef("reason", "--reason: %v", err)
	}
	if strings.TrimSpace(key) == "" {
		return nil, usagef("give the ID or kind of an active notification (bcagent notifications shows them)")
	}
	list, err := a.Notifications()
	if err != nil {
		return nil, fmt.Errorf("notifications.json: %w", err)
	}
	n, err := findNotification(list, key)
	if err != nil {
		return nil, err
	}
	reason = strings.TrimSpace(reason)
	why := reason
	if why == "" {
		why = "none given"
	}
	ack := &Acknowledgement{Notification: n, By: by, Reason: reason}
	if err := a.auditNow(AuditEvent{Event: EventNotificationAcknowledged, Component: n.Component, Version: n.Version, By: by,
		Detail: fmt.Sprintf("%s notification %s (raised %s) acknowledged by %s as OS user %s; reason: %s; it said: %s",
			n.Severity, n.ID, n.Since.UTC().Format(time.RFC3339), by, osUser(), why, n.Message)}); err != nil {
		return nil, fmt.Errorf("record the acknowledgement in the audit log (the notification stays active): %w", err)
	}
	ack.Time = time.Now().UTC().Truncate(time.Second)
	// The lock is held: list is still what notifications.json holds.
	kept := slices.DeleteFunc(list, func(o Notification) bool { return o.ID == n.ID })
	if err := a.saveNotifications(kept); err != nil {
		return nil, fmt.Errorf("notifications.json (the acknowledgement is in the audit log; run the command again): %w", err)
	}
	return ack, nil
}

// findNotification is the active notification whose ID is key, else the
// only active one of kind key.
func findNotification(list []Notification, key string) (Notification, error) {
	if i := slices.IndexFunc(list, func(n Notification) bool { return n.ID == key }); i >= 0 {
		return list[i], nil
	}
	var ofKind []string
	for _, n := range list {
		if string(n.Kind) == key {
			ofKind = append(ofKind, n.ID)
		}
	}
	switch {
	case len(ofKind) == 1:
		return list[slices.IndexFunc(list, func(n Notification) bool { return n.ID == ofKind[0] })], nil
	case len(ofKind) > 1:
		return Notification{}, usagef("%s notifications are active for several components (%s): give the ID of one",
			textsafe.Escape(key), textsafe.Escape(strings.Join(ofKind, ", ")))
	}
	active := "none is active"
	if len(list) > 0 {
		ids := make([]string, len(list))
		for i, n := range list {
			ids[i] = n.ID
		}
		active = "active: " + strings.Join(ids, ", ")
	}
	if _, known := noteEventIDs[NoteKind(key)]; known {
		return Notification{}, usagef("no %s notification is active (%s; bcagent notifications shows them)", key, textsafe.Escape(active))
	}
	return Notification{}, usagef("no active notification has the ID or kind %q (%s; bcagent notifications shows them)", key, textsafe.Escape(active))
}

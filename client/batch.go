package client

import "context"

// A batch collects the audit events and notification changes of one step
// of the agent (a check, a stage, one component's install) and writes
// them once at its end: one audit append (one fsync, chainLog.AppendAll)
// and one notifications.json, however many components the step touched.
// Before, each event was an append of its own (a head announced, the line
// fsynced, the head committed) and each notification a rewrite of the
// file, so the cost of a step grew with the number of components.
//
// What this does not change: consent decisions never wait in a batch (they
// go to the consent log, fsynced, before anything is activated), and a
// step's audit events are durable before the step returns. What a crash
// in the middle of a step can lose is that step's audit events and
// notifications, never state: state.json is the truth, a later check
// raises the notifications again, and the lost events are of work the
// next cycle repeats (update available, staged). An install's events are
// flushed right after that component's commit, not at the end of apply.
type batch struct {
	ctx    context.Context // the step's: notify_command runs under it
	events []AuditEvent
	// notes is the working list of active notifications, read from the
	// file at the batch's first raise or resolve (loaded).
	notes         []Notification
	loaded, dirty bool
	// handed are the new or changed notifications for notify_command,
	// run after the file is saved.
	handed []Notification
}

// beginBatch starts a batch and returns its flush; inside a batch it
// returns a flush that does nothing (the outer batch writes).
func (a *Agent) beginBatch(ctx context.Context) (flush func()) {
	if a.batch != nil {
		return func() {}
	}
	b := &batch{ctx: ctx}
	a.batch = b
	return func() {
		if a.batch != b {
			return // flushed already
		}
		a.batch = nil
		if len(b.events) > 0 {
			a.appendAudit(b.events...)
		}
		if b.dirty {
			if err := a.saveNotifications(b.notes); err != nil {
				a.log.Error("notifications", "err", err)
				return
			}
		}
		for _, n := range b.handed {
			a.runNotifyCommand(b.ctx, n)
		}
	}
}

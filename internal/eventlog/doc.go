// Package eventlog puts the agent's log where Windows administrators look:
// the Application log of the Windows Event Log, under the event source
// "bcagent" (docs/operations.md, "The Windows Event Log").
//
// Handler is a slog.Handler for the Windows service: every record goes to
// the handler the log flags configure (--log-format, --log-level), and
// warnings and errors also go to an event sink, as events 310 and 311;
// it carries the sink, so that the agent (client.Open) writes its
// notifications and audit entries there too, under their own IDs
// (client/eventlog.go). The mapping and the handler are plain Go, tested
// on Linux with a fake sink; only the sink itself (Open, over
// golang.org/x/sys/windows/svc/eventlog) and the registration of the
// source (Install, Remove) are Windows code.
//
// It trusts nothing it writes to be short or printable: messages are cut
// to what ReportEvent takes. It never fails the caller: a sink that
// cannot be written to is ignored by Handler (it cannot log about its own
// log) and logged by the agent.
package eventlog

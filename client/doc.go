// Package client is the agent as a library: TUF refresh, release
// selection, staging, install, rollback, agent state and status.
//
// What it trusts: the root in <state>/tuf/root.json (installed with the
// agent, then only replaced by roots that root signed) and the code-signing
// trust directory named in config.json. Everything from the network is
// untrusted until go-tuf has verified the metadata (delegated roles through
// the agent's own walk, against the delegator of the path walked:
// tufspec.go) and the artifact's length and every hash it lists match it
// as it streams to disk, and the artifact's code signature has been
// verified against the trust directory. Nothing is installed from memory or
// before both checks pass.
//
// What it must never do: talk to a host that is not the repository's or in
// the allow list, use plain http except to loopback, hold an artifact in
// memory, leave a component between two versions, downgrade a component
// because a channel points at an older release, or import the publisher or
// the AWS SDK (the agent binary carries no publishing code).
//
// State layout (DESIGN.md, "Agent state"):
//
//	<state>/config.json  tuf/  staging/  state.json  agent.lock
//	<install-root>/<component>/<version>/  and  current -> <version>
package client

// Package e2e holds the end-to-end tests: a publisher and an agent talking
// over a real HTTP server, and the attacks the agent must refuse.
package e2e

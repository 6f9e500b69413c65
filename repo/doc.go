// Package repo is the TUF repository as data: it builds, signs, loads and
// verifies the root, targets, snapshot and timestamp metadata, defines the
// target layout (artifact, signature, channel pointer, device policy) and the
// `bc` custom metadata schema.
//
// It trusts nothing it reads: Load verifies every role's signatures and the
// snapshot/targets hashes before a caller can change anything, and Commit
// checks that what it signed verifies under the repository's root (so a
// publisher holding the wrong key fails before writing).
//
// It never touches the network or the disk and never prints; the publisher
// package moves its files, the client package reads them through go-tuf.
package repo

// Package walkthrough runs the release engineer's walk-through of
// docs/operations.md: every ```sh block marked <!-- walkthrough -->, in
// order, with freshly built binaries, in a temporary directory on a free
// loopback port. It has only tests.
package walkthrough

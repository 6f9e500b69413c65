// Package publisher is the release engineers' workflow: role keys on disk,
// repository stores, `init`, `release add`, listing and status, code-signing
// helpers, and serving a repository over HTTP.
//
// Stores: a directory (DirStore) or an S3 bucket (S3Store), behind one
// Store interface with write-if-absent and compare-and-swap; every publish
// writes immutable objects if absent and swaps timestamp.json only if it is
// still the one the publish started from, so concurrent publishers and
// killed publishes never lose or half-publish anything.
//
// Publishing order is what keeps agents safe from half-published states:
// every check (inputs, the artifact's code signature, the artifact opened
// as the agents will open it (an archive unpacked by internal/archive, the
// agents' own code), the repository's own signatures, immutability of
// published paths) runs before anything is written; then the hash-named target files, then versioned metadata, and
// timestamp.json last, each written atomically. A release add that fails
// before that point leaves the repository byte-for-byte as it was.
//
// What it trusts from the user: nothing about the files flags name. Each
// is opened as a regular file and size-checked against a named limit
// before it is read (internal/regfile), so a device or FIFO is refused, not
// read into memory or waited on. A directory repository is read and
// written only through an os.Root on its directory: a symbolic link in it
// never leads a read (serve) or a write outside (ErrOutside).
//
// It never holds code-signing trust anchors of its own: it verifies with the
// same signer.Trust an agent uses, so a release the publisher accepts is one
// every agent accepts.
package publisher

// Package archive unpacks release archives (.tar.gz, .tgz, .zip) into a
// directory and confines them to it. It is the one implementation both
// sides use: the agent installs with it (client), and `bcpublish release
// add` runs the same extraction into a temporary directory, so a release
// engineer is told at publish time about an archive every agent would
// refuse.
//
// What it trusts: nothing in the archive. An archive reaching the agent has
// passed TUF and code signing, so a refusal here means a publisher mistake
// or an attack. Every write goes through an os.Root opened on the
// destination, so neither ".." nor a symbolic link can lead a write out of
// it; entry names are checked lexically first (no absolute paths, no "..",
// no backslashes or NULs), symlink targets must stay inside once every link
// is in place (chains included), hard links may point only at files
// extracted before them, devices and FIFOs are refused, and the entry count
// and unpacked size have named limits (MaxEntries, MaxBytes). A stream that
// is not what it claims to be (a truncated or corrupt gzip, tar or zip, a
// size in a header that the data does not match) is refused too.
//
// Every refusal wraps ErrUnsafe and is an *Error that names the entry; only
// a local failure (a full disk) is returned as a plain error. What it must
// never do: leave anything outside the destination, or leave a partial
// tree in it after an error (the destination is emptied again).
package archive

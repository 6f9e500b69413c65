// Package textsafe keeps untrusted text from taking over a terminal.
//
// Names a person types (--by, --device-model), feature titles and
// descriptions from release metadata, yank reasons and anything read back
// from the consent and audit logs end up on a screen. A C0 or C1 control
// (ESC starts ANSI sequences that move the cursor, erase lines, recolour),
// a bidi override or isolate (which reorders what is shown: the Trojan
// Source trick), a zero-width or other format character, or an unassigned
// code point can make a line show something other than what it holds: a
// forged "declined by …" row, an erased real one, a name that reads
// differently from the bytes recorded.
//
// Check refuses such text where it comes in (flags, prompts, release
// metadata); Escape renders any text visibly and unambiguously where it
// goes out (consent list, status, notifications, audit export, error
// lines), because logs written by an older agent, or by an attacker, were
// never checked. What is allowed is the same in both: letters, marks,
// numbers, punctuation, symbols and spaces (unicode.IsGraphic), in valid
// UTF-8; newlines and tabs only in multi-line text.
//
// The package trusts nothing it is given and has no I/O. It never changes
// printable text ("Müller", "李" pass unchanged), so what is escaped on the
// screen is exactly what is refused on input.
package textsafe

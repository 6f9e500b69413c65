package textsafe

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Error says which rune of a string is refused, and where.
type Error struct {
	// Rune is the refused rune; for invalid UTF-8 it is utf8.RuneError and
	// Byte is the offending byte.
	Rune    rune
	Byte    byte
	Invalid bool
	// Pos is the 1-based position of the rune among the string's
	// characters (an invalid byte counts as one).
	Pos int
}

func (e *Error) Error() string {
	if e.Invalid {
		return fmt.Sprintf("invalid UTF-8 byte 0x%02X at character %d", e.Byte, e.Pos)
	}
	return fmt.Sprintf("U+%04X (%s) at character %d; only printable text is allowed", e.Rune, kind(e.Rune), e.Pos)
}

// kind names why a rune is refused, for people.
func kind(r rune) string {
	switch {
	case r == '\n' || r == '\t':
		return "a line break or tab, not allowed here"
	case unicode.IsControl(r):
		return "a control character"
	case r == '\u2028' || r == '\u2029':
		return "a line or paragraph separator"
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069', r == '\u200e', r == '\u200f', r == '\u061c':
		return "a bidirectional-text control"
	case unicode.Is(unicode.Cf, r):
		return "an invisible format character"
	case unicode.Is(unicode.Co, r):
		return "a private-use character"
	default:
		return "an unassigned or non-printing character"
	}
}

// allowed reports whether r may be shown as it is. Everything refused here
// is outside unicode.IsGraphic: Cc (C0, DEL, C1), Cf (bidi embeddings,
// overrides, isolates and marks, zero-width characters, soft hyphen, tags),
// Zl and Zp (U+2028, U+2029), Co (private use), Cs and Cn (unassigned).
func allowed(r rune, multiline bool) bool {
	if multiline && (r == '\n' || r == '\t') {
		return true
	}
	return unicode.IsGraphic(r)
}

// Check returns nil if s is valid UTF-8 of printable characters only
// (newlines and tabs too if multiline), else an *Error naming the first
// refused rune as U+XXXX and its position.
func Check(s string, multiline bool) error {
	pos := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		pos++
		if r == utf8.RuneError && size == 1 {
			return &Error{Rune: r, Byte: s[i], Invalid: true, Pos: pos}
		}
		if !allowed(r, multiline) {
			return &Error{Rune: r, Pos: pos}
		}
		i += size
	}
	return nil
}

// Escape returns s with every rune that Check(s, false) would refuse
// replaced by a visible escape: \n, \t and \r by name, other ASCII
// controls as \xNN, other runes as \uNNNN or \UNNNNNNNN, and bytes that
// are not valid UTF-8 as \xNN (always 0x80 or more, so never confused with
// an ASCII control). A backslash becomes \\, so no escape can be faked.
// Printable text, including non-ASCII letters, is unchanged.
func Escape(s string) string {
	if safe(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case allowed(r, false):
			b.WriteString(s[i : i+size])
		default:
			escapeRune(&b, r)
		}
		i += size
	}
	return b.String()
}

// EscapeMultiline is Escape for multi-line text shown as it is laid out
// (a feature description): newlines and tabs are kept, everything else
// Escape would escape is escaped.
func EscapeMultiline(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		cells := strings.Split(l, "\t")
		for j, c := range cells {
			cells[j] = Escape(c)
		}
		lines[i] = strings.Join(cells, "\t")
	}
	return strings.Join(lines, "\n")
}

// safe is the fast path: no backslash and nothing Check refuses.
func safe(s string) bool {
	for _, r := range s {
		// An invalid byte decodes as utf8.RuneError (U+FFFD); a real
		// U+FFFD takes the slow path too, which leaves it as it is.
		if r == '\\' || r == utf8.RuneError || !allowed(r, false) {
			return false
		}
	}
	return true
}

func escapeRune(b *strings.Builder, r rune) {
	switch r {
	case '\n':
		b.WriteString(`\n`)
	case '\t':
		b.WriteString(`\t`)
	case '\r':
		b.WriteString(`\r`)
	default:
		switch {
		case r < utf8.RuneSelf:
			fmt.Fprintf(b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			fmt.Fprintf(b, `\U%08x`, r)
		}
	}
}

// EscapeJSON rewrites JSON as encoding/json writes it so that it is safe
// on a terminal too: every rune Check(…, true) refuses becomes a \uXXXX
// escape (a surrogate pair above U+FFFF), which a JSON reader decodes to
// the same string. encoding/json escapes C0 controls, U+2028 and U+2029
// itself, but writes C1 controls (U+009B is CSI to many terminals), bidi
// controls and zero-width characters as they are. Newlines and tabs, which
// encoding/json only writes as indentation, are kept. Bytes that are not
// valid UTF-8 (encoding/json never writes them) become \ufffd.
func EscapeJSON(b []byte) []byte {
	if Check(string(b), true) == nil {
		return b
	}
	out := make([]byte, 0, len(b)+32)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = append(out, `\ufffd`...)
		case allowed(r, true):
			out = append(out, b[i:i+size]...)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		i += size
	}
	return out
}

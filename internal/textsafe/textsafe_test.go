package textsafe

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheck(t *testing.T) {
	cases := []struct {
		name      string
		in        string
		multiline bool
		want      string // "" means accepted; else a substring of the error
	}{
		{"plain", "Ann Smith", false, ""},
		{"empty", "", false, ""},
		{"non-ASCII letters", "Müller, 李, Ørsted-Łukasz", false, ""},
		{"punctuation and symbols", `O'Brien (QA) #2 <lab> "x" €`, false, ""},
		{"no-break space", "Ann\u00a0Smith", false, ""},
		{"replacement character itself", "\ufffd", false, ""},
		{"emoji", "ok 👍", false, ""},
		{"ESC", "Ann\x1b[2K", false, "U+001B (a control character) at character 4"},
		{"cursor up", "\x1b[1A", false, "U+001B"},
		{"NUL", "a\x00", false, "U+0000"},
		{"BEL", "a\a", false, "U+0007"},
		{"DEL", "a\x7f", false, "U+007F"},
		{"C1 CSI", "a\u009b2K", false, "U+009B (a control character)"},
		{"C1 NEL", "a\u0085", false, "U+0085"},
		{"carriage return", "Ann\rBob", false, "U+000D"},
		{"carriage return multiline", "Ann\rBob", true, "U+000D"},
		{"newline", "Ann\nBob", false, "U+000A (a line break or tab, not allowed here) at character 4"},
		{"tab", "Ann\tBob", false, "U+0009"},
		{"newline multiline", "Ann\nBob", true, ""},
		{"tab multiline", "a\tb\n\tc", true, ""},
		{"line separator", "a\u2028b", true, "U+2028 (a line or paragraph separator)"},
		{"paragraph separator", "a\u2029b", false, "U+2029"},
		{"LRE", "a\u202a", false, "U+202A (a bidirectional-text control)"},
		{"RLO", "Ann\u202egnilcnnA", false, "U+202E (a bidirectional-text control) at character 4"},
		{"LRI", "\u2066x", false, "U+2066"},
		{"PDI", "x\u2069", false, "U+2069 (a bidirectional-text control) at character 2"},
		{"LRM", "a\u200e", false, "U+200E"},
		{"RLM", "a\u200f", false, "U+200F"},
		{"Arabic letter mark", "a\u061c", false, "U+061C"},
		{"zero-width space", "An\u200bn", false, "U+200B (an invisible format character) at character 3"},
		{"zero-width joiner", "a\u200db", false, "U+200D"},
		{"BOM", "\ufeffAnn", false, "U+FEFF"},
		{"soft hyphen", "An\u00adn", false, "U+00AD"},
		{"tag character", "a\U000E0041", false, "U+E0041"},
		{"private use", "a\ue000", false, "U+E000 (a private-use character)"},
		{"unassigned", "a\U0010FFFD", false, "U+10FFFD"},
		{"noncharacter", "a\uffff", false, "U+FFFF (an unassigned or non-printing character)"},
		{"invalid UTF-8", "Ann\xff", false, "invalid UTF-8 byte 0xFF at character 4"},
		{"truncated UTF-8", "M\xc3", false, "invalid UTF-8 byte 0xC3 at character 2"},
		{"surrogate encoded", "a\xed\xa0\x80", false, "invalid UTF-8 byte 0xED"},
		{"position counts characters", "李李\x1b", false, "at character 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Check(c.in, c.multiline)
			if c.want == "" {
				if err != nil {
					t.Fatalf("Check(%q, %v) = %v, want nil", c.in, c.multiline, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Check(%q, %v) = %v, want an error containing %q", c.in, c.multiline, err, c.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Check(%q): %T is not *Error", c.in, err)
			}
		})
	}
}

func TestEscape(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"plain", "Ann Smith", "Ann Smith"},
		{"empty", "", ""},
		{"non-ASCII letters", "Müller 李", "Müller 李"},
		{"replacement character itself", "a\ufffdb", "a\ufffdb"},
		{"ESC", "Ann\x1b[2K", `Ann\x1b[2K`},
		{"fake row", "Ann\r\n\x1b[1Adeclined by Bob", `Ann\r\n\x1b[1Adeclined by Bob`},
		{"tab", "a\tb", `a\tb`},
		{"NUL and DEL", "\x00\x7f", `\x00\x7f`},
		{"C1", "a\u009bb", `a\u009bb`},
		{"RLO", "Ann\u202egnilcnnA", `Ann\u202egnilcnnA`},
		{"isolates", "\u2066x\u2069", `\u2066x\u2069`},
		{"marks", "\u200e\u200f\u061c", `\u200e\u200f\u061c`},
		{"line separator", "a\u2028b", `a\u2028b`},
		{"zero-width space", "a\u200bb", `a\u200bb`},
		{"tag character", "a\U000E0041", `a\U000e0041`},
		{"invalid bytes", "Ann\xff\xc3", `Ann\xff\xc3`},
		{"backslash", `C:\state`, `C:\\state`},
		{"faked escape", `Ann\x1b`, `Ann\\x1b`},
		{"faked escape next to a real one", "\\\x1b", `\\\x1b`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Escape(c.in)
			if got != c.want {
				t.Fatalf("Escape(%q) = %q, want %q", c.in, got, c.want)
			}
			if err := Check(got, false); err != nil {
				t.Fatalf("Escape(%q) = %q does not pass Check: %v", c.in, got, err)
			}
		})
	}
}

func TestEscapeMultiline(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"plain", "Title\n\nFiles may\thold PHI.", "Title\n\nFiles may\thold PHI."},
		{"ESC in a line", "Title\n\x1b[2Kgone", "Title\n\\x1b[2Kgone"},
		{"carriage return", "a\r\nb", "a\\r\nb"},
		{"RLO", "a\u202eb\n", "a\\u202eb\n"},
		{"backslash", `a\b`, `a\\b`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := EscapeMultiline(c.in)
			if got != c.want {
				t.Fatalf("EscapeMultiline(%q) = %q, want %q", c.in, got, c.want)
			}
			if err := Check(got, true); err != nil {
				t.Fatalf("EscapeMultiline(%q) = %q does not pass Check(…, true): %v", c.in, got, err)
			}
		})
	}
}

func TestEscapeJSON(t *testing.T) {
	cases := []struct {
		name string
		v    any
		want string // a substring of the output
	}{
		{"plain", map[string]string{"by": "Müller 李"}, `"Müller 李"`},
		{"C0 by encoding/json", map[string]string{"by": "a\x1b[2K"}, `a\u001b[2K`},
		{"line separator by encoding/json", map[string]string{"by": "a\u2028"}, `a\u2028`},
		{"C1 CSI", map[string]string{"by": "a\u009b2K"}, `a\u009b2K`},
		{"RLO", map[string]string{"by": "Ann\u202e"}, `Ann\u202e`},
		{"zero-width space", []string{"a\u200bb"}, `a\u200bb`},
		{"tag character", []string{"a\U000E0041"}, `a\udb40\udc41`},
		{"backslash kept as JSON has it", []string{`a\b`}, `a\\b`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw, err := json.MarshalIndent(c.v, "", "\t")
			if err != nil {
				t.Fatal(err)
			}
			got := EscapeJSON(raw)
			if !strings.Contains(string(got), c.want) {
				t.Fatalf("EscapeJSON(%s) = %s, want it to contain %s", raw, got, c.want)
			}
			if err := Check(string(got), true); err != nil {
				t.Fatalf("EscapeJSON(%s) = %s does not pass Check(…, true): %v", raw, got, err)
			}
			var a, b any
			json.Unmarshal(raw, &a)
			if err := json.Unmarshal(got, &b); err != nil || !reflect.DeepEqual(a, b) {
				t.Fatalf("EscapeJSON changed the value: %s -> %s (%v)", raw, got, err)
			}
		})
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{
		"", "Ann", "Müller", "李", `back\slash`, "Ann\x1b[2K", "\x1b[1A\rdeclined by Bob",
		"\u202e", "\u2066\u2069", "\u200b", "\xff", "M\xc3", "\ufffd", "a\nb\tc", "\x85", "\u0085",
		"\U000E0041", "\ue000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		if err := Check(e, false); err != nil {
			t.Fatalf("Escape(%q) = %q does not pass Check: %v", s, e, err)
		}
		if !utf8.ValidString(e) {
			t.Fatalf("Escape(%q) = %q is not valid UTF-8", s, e)
		}
		if Check(s, false) == nil && !strings.Contains(s, `\`) && e != s {
			t.Fatalf("Escape changed printable %q to %q", s, e)
		}
		if m := EscapeMultiline(s); Check(m, true) != nil {
			t.Fatalf("EscapeMultiline(%q) = %q does not pass Check(…, true)", s, m)
		}
		raw, _ := json.MarshalIndent([]string{s}, "", "  ")
		j := EscapeJSON(raw)
		var want, back []string
		json.Unmarshal(raw, &want)
		if err := json.Unmarshal(j, &back); err != nil || !reflect.DeepEqual(back, want) {
			t.Fatalf("EscapeJSON(%s) = %s decodes to %q, want %q (%v)", raw, j, back, want, err)
		}
		if err := Check(string(j), true); err != nil {
			t.Fatalf("EscapeJSON(%s) = %s does not pass Check(…, true): %v", raw, j, err)
		}
	})
}

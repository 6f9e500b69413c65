package repo

import (
	"strings"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// NormalizeModel is how device models are compared with PHI device
// classes: the way people type a model must not take a PHI device out of
// its class. Unicode NFKC (full-width letters, ligatures and compatibility
// forms fold to their plain form), case folded, and runs of white space
// (any Unicode space) collapsed to one space, trimmed. "NAVIOS  EX",
// " navios ex " and "Ｎａｖｉｏｓ ＥＸ" all normalize to "navios ex".
func NormalizeModel(s string) string {
	s = norm.NFKC.String(s)
	s = cases.Fold().String(s)
	s = norm.NFKC.String(s) // folding can produce non-normalized sequences
	return strings.Join(strings.Fields(s), " ")
}

// ModelIn says whether model is one of classes, compared normalized.
func ModelIn(model string, classes []string) bool {
	n := NormalizeModel(model)
	for _, c := range classes {
		if NormalizeModel(c) == n {
			return true
		}
	}
	return false
}

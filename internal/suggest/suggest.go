// Package suggest finds what a mistyped name was meant to be (a command,
// a flag, a setting), for "did you mean" answers. Standard library only.
package suggest

import "strings"

// Closest is the candidate closest to name when it is close enough to be
// what was meant (a typo of one or two letters, or a prefix), else "".
func Closest(name string, candidates []string) string {
	best, bestD := "", 1<<30
	limit := max(1, len(name)/3)
	for _, c := range candidates {
		if len(name) >= 2 && strings.HasPrefix(c, name) && c != name {
			return c
		}
		if d := editDistance(name, c); d <= limit && d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance, a swap of two neighbours
// counting as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

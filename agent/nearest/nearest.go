// Package nearest finds the word a user probably meant: the known word
// within two edits of a misspelt one, for messages that suggest it (a
// shell command, a member of a configuration file).
package nearest

import "strings"

// maxEdits is how far a word may be from the one it is taken for: more
// than two edits suggest words that were not meant.
const maxEdits = 2

// Word returns the word of known nearest to w, ignoring case, if one is
// within two edits; else "". Of equally near words the first wins.
func Word(w string, known []string) string {
	w = strings.ToLower(w)
	best, bestD := "", maxEdits+1
	for _, k := range known {
		if d := distance(w, strings.ToLower(k), bestD); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b, or limit when it is
// at least limit (words much longer than the known ones are not worth
// comparing).
func distance(a, b string, limit int) int {
	if len(a) > len(b)+limit || len(b) > len(a)+limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}

package tentacle

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxTypoDistance is how many edits apart a word may be from a known one
// and still be taken for a typo of it.
const maxTypoDistance = 2

// suggest returns the candidate that s is most likely a typo of. It
// compares case-insensitively and needs fewer edits than s has characters,
// so that "x" does not suggest "to". Ties go to the earlier candidate.
func suggest(s string, candidates []string) (string, bool) {
	ls := strings.ToLower(s)
	best, bestDist := "", maxTypoDistance+1
	for _, c := range candidates {
		if abs(len(c)-len(s)) >= bestDist { // a cheap lower bound
			continue
		}
		if d := editDistance(ls, strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" || bestDist >= utf8.RuneCountInString(s) {
		return "", false
	}
	return best, true
}

// didYouMean is a message suffix such as `; did you mean "nodes"?`, or "".
func didYouMean(s string, candidates []string) string {
	if c, ok := suggest(s, candidates); ok {
		return fmt.Sprintf("; did you mean %q?", c)
	}
	return ""
}

// unknownHint suggests the likely intended field, or lists the known ones
// when nothing is close.
func unknownHint(s string, known []string) string {
	if hint := didYouMean(s, known); hint != "" {
		return hint
	}
	return " (known fields: " + oneOf(known) + ")"
}

// editDistance is the optimal string alignment distance: Levenshtein plus
// transposition of adjacent characters, the commonest typo.
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

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

package tentacle

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

const (
	// maxTypoDistance is how many edits apart a word may be from a known
	// one and still be taken for a typo of it.
	maxTypoDistance = 2
	// maxTypoLength bounds the words worth a suggestion; nobody types a
	// key that long by hand.
	maxTypoLength = 64
)

// suggest returns the candidate that s is most likely a typo of. It
// compares case-insensitively and needs fewer edits than s has characters,
// so that "x" does not suggest "to". Ties go to the earlier candidate.
func suggest(s string, candidates []string) (string, bool) {
	n := utf8.RuneCountInString(s)
	if n > maxTypoLength {
		return "", false
	}
	best, bestDist := "", maxTypoDistance+1
	for _, c := range candidates {
		if abs(utf8.RuneCountInString(c)-n) >= bestDist { // a cheap lower bound
			continue
		}
		if d := editDistance(s, c, bestDist-1); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" || bestDist >= n {
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

// editDistance is the case-insensitive optimal string alignment distance
// (Levenshtein plus transposition of adjacent characters, the commonest
// typo) between a and b, or limit+1 when it exceeds limit. Only the band
// of cells within limit of the diagonal can stay within limit, so only
// those are computed: comparing many long words stays cheap.
func editDistance(a, b string, limit int) int {
	ra, rb := []rune(strings.ToLower(a)), []rune(strings.ToLower(b))
	out := limit + 1
	if abs(len(ra)-len(rb)) > limit {
		return out
	}
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = min(j, out)
	}
	for i := 1; i <= len(ra); i++ {
		lo, hi := max(1, i-limit), min(len(rb), i+limit)
		cur[0] = min(i, out)
		if lo > 1 { // left of the band: out of reach
			cur[lo-1] = out
		}
		rowMin := cur[lo-1]
		for j := lo; j <= hi; j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d = min(d, prev2[j-2]+1)
			}
			cur[j] = min(d, out)
			rowMin = min(rowMin, cur[j])
		}
		if hi < len(rb) {
			cur[hi+1] = out
		}
		if rowMin >= out {
			return out
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

package chat

import (
	"math"
	"regexp"
	"strings"
)

// Redacted replaces a secret-looking value in anything the model reads.
const Redacted = "[redacted]"

// tokenFormats are credentials recognisable by their shape. Each match is
// replaced whole.
var tokenFormats = []*regexp.Regexp{
	// PEM private keys, up to their end line (or the end of the text, if
	// a paste was cut short).
	regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)`),
	// Slack bot, user, app-level, refresh and config tokens.
	regexp.MustCompile(`\b(?:xox[abeoprs]|xapp|xoxe\.xox[bp])-[A-Za-z0-9-]{8,}`),
	// Slack incoming webhooks.
	regexp.MustCompile(`hooks\.slack\.com/services/[A-Za-z0-9/_-]+`),
	// GitHub tokens.
	regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})`),
	// AWS access key ids.
	regexp.MustCompile(`\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b`),
	// OpenAI, Anthropic and similar "sk-" keys; Stripe keys.
	regexp.MustCompile(`\bsk-[A-Za-z0-9_-]{16,}`),
	regexp.MustCompile(`\b[rsp]k_(?:live|test)_[A-Za-z0-9]{10,}`),
	// Google API keys.
	regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{30,}`),
	// JSON Web Tokens.
	regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`),
}

// Credentials that follow a word saying what they are; the word is kept
// so the sentence still reads ("Bearer [redacted]", "password=[redacted]").
var (
	bearer      = regexp.MustCompile(`(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/-]{8,}=*)`)
	urlPassword = regexp.MustCompile(`(://[^/\s:@]+:)([^/\s@]+)(@)`)
	// key=value, unquoted, as in env files and query strings.
	assigned = regexp.MustCompile(`(?i)(\b[a-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?)\s*=\s*)([^\s"'&,;<>]{4,})`)
	// "key": "value" and key: 'value', quoted, as in JSON and YAML.
	quoted = regexp.MustCompile(`(?i)(["']?[a-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?)["']?\s*[:=]\s*)(["'])([^"'\s]{4,})(["'])`)
	// key: value, unquoted, as people type it ("my db password: hunter22").
	colon = regexp.MustCompile(`(?i)(\b(?:password|passwd|secret|token|api[_-]?key|apikey|access[_-]?key)s?\s*:\s*)([^\s"'` + "`" + `,;(){}\[\]<>]{6,})`)
	// codeRef is a property path in code (ctx.secrets.weather), which
	// follows "token:" in a node without being a secret.
	codeRef = regexp.MustCompile(`^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+$`)
	// candidate is a run of characters a random credential is made of.
	candidate = regexp.MustCompile(`[A-Za-z0-9+/_=-]{32,}`)
)

// Redact replaces secret-looking values in s with [redacted]: known token
// formats, credentials after words like password= or Bearer, and long
// random-looking strings. It errs on the side of hiding: a hidden value
// costs the model a detail, a shown one can't be taken back.
func Redact(s string) string {
	for _, re := range tokenFormats {
		s = re.ReplaceAllString(s, Redacted)
	}
	s = bearer.ReplaceAllStringFunc(s, func(m string) string {
		g := bearer.FindStringSubmatch(m)
		if !credentialLike(g[3]) {
			return m
		}
		return g[1] + g[2] + Redacted
	})
	s = urlPassword.ReplaceAllString(s, "${1}"+Redacted+"${3}")
	s = assigned.ReplaceAllStringFunc(s, func(m string) string {
		g := assigned.FindStringSubmatch(m)
		if g[2] == Redacted || codeRef.MatchString(g[2]) {
			return m
		}
		return g[1] + Redacted
	})
	s = quoted.ReplaceAllStringFunc(s, func(m string) string {
		g := quoted.FindStringSubmatch(m)
		if g[3] == Redacted || codeRef.MatchString(g[3]) {
			return m
		}
		return g[1] + g[2] + Redacted + g[4]
	})
	s = colon.ReplaceAllStringFunc(s, func(m string) string {
		g := colon.FindStringSubmatch(m)
		if codeRef.MatchString(g[2]) || !credentialLike(g[2]) {
			return m
		}
		return g[1] + Redacted
	})
	return candidate.ReplaceAllStringFunc(s, func(m string) string {
		if random(m) {
			return Redacted
		}
		return m
	})
}

// HasSecret reports whether s holds anything Redact would hide.
func HasSecret(s string) bool { return Redact(s) != s }

// credentialLike tells a value typed after "password:" or "Bearer" from
// a word of a sentence ("the secret: please tell me"): it has a digit, a
// symbol, or a capital after its first letter.
func credentialLike(s string) bool {
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			return true
		case r >= 'A' && r <= 'Z':
			if i > 0 {
				return true
			}
		case r >= 'a' && r <= 'z':
		default:
			return true
		}
	}
	return false
}

// random reports whether a long run of characters looks like a generated
// credential rather than a word, a path or a hex digest: upper case,
// lower case and digits mixed, with high entropy. Hex digests and UUIDs
// (one case only) pass through, as people paste those to mean commits
// and runs.
func random(s string) bool {
	var upper, lower, digit bool
	counts := map[rune]int{}
	for _, r := range s {
		switch {
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= '0' && r <= '9':
			digit = true
		}
		counts[r]++
	}
	if !upper || !lower || !digit {
		return false
	}
	entropy := 0.0
	for _, n := range counts {
		p := float64(n) / float64(len(s))
		entropy -= p * math.Log2(p)
	}
	// Random base64 of this length scores about 4.5 to 5 bits a
	// character; English in camelCase stays well under 4.
	return entropy >= 4.0 && !strings.Contains(s, "--")
}

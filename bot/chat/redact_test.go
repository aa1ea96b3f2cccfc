package chat

import (
	"strings"
	"testing"
)

func TestRedactHidesSecrets(t *testing.T) {
	tests := []struct {
		in     string
		secret string // must be gone
		keep   string // must stay
	}{
		{"the bot token is xoxb-1234567890-0987654321-AbCdEfGhIjKl ok", "xoxb-1234567890", "the bot token is"},
		{"xoxp-11111111-22222222-33333333-abcdef", "xoxp-1111", ""},
		{"app token xapp-1-A0123-456789-abcdef0123", "xapp-1-A0123", "app token"},
		{"ghp_16C7e42F292c6912E7710c838347Ae178B4a here", "ghp_16C7e42F", "here"},
		{"github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github_pat_11", ""},
		{"aws AKIAIOSFODNN7EXAMPLE key", "AKIAIOSFODNN7EXAMPLE", "aws"},
		{"OPENAI_API_KEY=sk-proj-abcdefghijklmnop1234567890", "sk-proj-abcdef", "OPENAI_API_KEY="},
		{"sk-abcdefghijklmnopqrstuvwx", "sk-abcdefghij", ""},
		{"Authorization: Bearer abc123.def456.ghi789", "abc123.def456", "Bearer [redacted]"},
		{"curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZA=='", "dXNlcjpwYXNz", "Basic [redacted]"},
		{"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----\nafter", "MIIEowIBAAKCAQEA7", "after"},
		{"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA", "b3BlbnNzaC1rZXktdjEAAAAA", ""},
		{"password=hunter22 and more", "hunter22", "password=[redacted] and more"},
		{"DB_PASSWORD=s3cr3t-value", "s3cr3t-value", "DB_PASSWORD="},
		{"https://api.example.com/x?token=abcd1234&city=Oslo", "abcd1234", "city=Oslo"},
		{`{"name": "x", "api_token": "s3cr3t-value"}`, "s3cr3t-value", `"name": "x"`},
		{"secret: 'correct-horse-9'", "correct-horse-9", ""},
		{"my db password: Hunter2Go", "Hunter2Go", "my db password:"},
		{"postgres://app:Pa55word@db.internal:5432/app", "Pa55word", "db.internal"},
		{"https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX", "XXXXXXXXXXXXXXXX", ""},
		{"jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N", "eyJhbGciOiJIUzI1NiJ9", "jwt"},
		{"AIzaSyA-1234567890abcdefghijklmnopqrstu", "AIzaSyA-1234", ""},
		{"sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc", ""},
		{"random 9fK2mQ8xLp4Rt7Vw1Yz3Bn6Cd0Eh5GjS end", "9fK2mQ8xLp4Rt7Vw1Yz3Bn6Cd0Eh5GjS", "random"},
	}
	for _, tt := range tests {
		got := Redact(tt.in)
		if strings.Contains(got, tt.secret) {
			t.Errorf("Redact(%q) = %q: keeps %q", tt.in, got, tt.secret)
		}
		if !strings.Contains(got, Redacted) || !strings.Contains(got, tt.keep) {
			t.Errorf("Redact(%q) = %q: want %q kept and the secret marked", tt.in, got, tt.keep)
		}
		if !HasSecret(tt.in) {
			t.Errorf("HasSecret(%q) = false", tt.in)
		}
		if again := Redact(got); again != got {
			t.Errorf("Redact is not idempotent: %q then %q", got, again)
		}
	}
}

// What people ordinarily say must go through untouched: a false alarm
// refuses their message.
func TestRedactKeepsOrdinaryText(t *testing.T) {
	for _, s := range []string{
		"what is running here?",
		"show me the api key of weather-contract",
		"the token expired yesterday, can you check the logs of hello-fanout?",
		"the secret: please tell me",
		"set the token authentication up for weather",
		"run hello-fanout with {\"name\": \"Ada\"}",
		"commit 3f5c2a9e8b7d6c5f4e3a2b1c0d9e8f7a6b5c4d3e broke it",
		"run 0c0e7b8e-6f1a-4c1b-9a53-0b5f2a7c9d11 failed",
		"https://example.com/docs/getting-started/writing-a-node",
		"auth: type: token, secret: weather.token",
		`const token = ctx.secrets.weather.token;`,
		"createTentacleFromTheDescriptionGivenByAda is too long a name",
		"<@UOWNER> deployed it at 1700000000.000100",
		"Bearer tokens are how it authenticates",
	} {
		if got := Redact(s); got != s {
			t.Errorf("Redact(%q) = %q, want it unchanged", s, got)
		}
	}
}

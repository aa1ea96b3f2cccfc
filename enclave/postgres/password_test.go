package postgres

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
)

// TestScramVerifierRFC7677 checks the verifier against the exchange in
// RFC 7677 section 3: a client proving the password pencil must be
// accepted by the stored key we compute, and the server key must sign
// as the RFC's server does. The local test server trusts every
// connection, so this is what shows the passwords would work.
func TestScramVerifierRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := scramVerifier("pencil", salt)
	if err != nil {
		t.Fatal(err)
	}
	storedKey, serverKey := parseVerifier(t, v)

	const (
		clientFirstBare = "n=user,r=rOprNGfwEbeRWgbNEkqO"
		serverFirst     = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
		clientFinal     = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
		proof           = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
		serverSig       = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
	)
	auth := clientFirstBare + "," + serverFirst + "," + clientFinal

	// The server's check: ClientKey = proof XOR HMAC(StoredKey, auth),
	// and H(ClientKey) must be StoredKey.
	p, _ := base64.StdEncoding.DecodeString(proof)
	sig := mac(storedKey, auth)
	clientKey := make([]byte, len(p))
	for i := range p {
		clientKey[i] = p[i] ^ sig[i]
	}
	if got := sha256.Sum256(clientKey); !hmac.Equal(got[:], storedKey) {
		t.Error("the RFC's client proof does not match the stored key")
	}
	if got := base64.StdEncoding.EncodeToString(mac(serverKey, auth)); got != serverSig {
		t.Errorf("server signature = %s, want %s", got, serverSig)
	}
}

func TestScramVerifierIsStable(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	a, _ := scramVerifier("secret", scramSalt(key, "role-a"))
	again, _ := scramVerifier("secret", scramSalt(key, "role-a"))
	b, _ := scramVerifier("secret", scramSalt(key, "role-b"))
	if a != again {
		t.Error("the same password and role give different verifiers")
	}
	if a == b {
		t.Error("two roles with the same password share a salt")
	}
	if strings.Contains(a, "secret") {
		t.Error("the verifier holds the password")
	}
}

func TestQuoteLiteral(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abc", "'abc'"},
		{"it's", "'it''s'"},
		{`a\b`, `E'a\\b'`},
		{`'\`, `E'''\\'`},
		{"", "''"},
	}
	for _, tt := range tests {
		if got := quoteLiteral(tt.in); got != tt.want {
			t.Errorf("quoteLiteral(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// parseVerifier splits SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>.
func parseVerifier(t *testing.T, v string) (storedKey, serverKey []byte) {
	t.Helper()
	parts := strings.Split(v, "$")
	if len(parts) != 3 || parts[0] != "SCRAM-SHA-256" || !strings.HasPrefix(parts[1], "4096:") {
		t.Fatalf("verifier %q is not SCRAM-SHA-256$4096:<salt>$<keys>", v)
	}
	keys := strings.Split(parts[2], ":")
	if len(keys) != 2 {
		t.Fatalf("verifier %q has no StoredKey:ServerKey", v)
	}
	var err error
	if storedKey, err = base64.StdEncoding.DecodeString(keys[0]); err != nil {
		t.Fatal(err)
	}
	if serverKey, err = base64.StdEncoding.DecodeString(keys[1]); err != nil {
		t.Fatal(err)
	}
	return storedKey, serverKey
}

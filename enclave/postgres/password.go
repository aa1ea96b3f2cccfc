package postgres

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// scramIterations is Postgres' own default (scram_iterations).
const scramIterations = 4096

// scramVerifier is what Postgres stores for password under SCRAM-SHA-256
// with salt. Sending it instead of the password keeps the password out
// of the SQL text, and so out of the server's statement and error logs,
// pg_stat_activity and pg_stat_statements: the verifier does not let
// anyone log in. The same password and salt give the same verifier, so
// setting it again changes nothing.
func scramVerifier(password string, salt []byte) (string, error) {
	// Derived passwords are base64url, which SASLprep leaves unchanged.
	salted, err := pbkdf2.Key(sha256.New, password, salt, scramIterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("postgres: scram: %w", err)
	}
	clientKey := mac(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}

// scramSalt is the salt of role's verifier: derived, so the verifier is
// the same on every replica and every Grant, and different per role.
func scramSalt(key []byte, role string) []byte {
	return mac(key, "kraken postgres scram salt\x00"+role)[:16]
}

func mac(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// quoteLiteral quotes s as an SQL string literal, whatever the server's
// standard_conforming_strings says.
func quoteLiteral(s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		q = "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

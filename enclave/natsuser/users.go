package natsuser

import (
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/kraken-ops/kraken/enclave"
)

// user is a minted NATS user.
type user struct {
	pub, seed, jwt string
}

// userKey derives the tentacle's user key from the platform's key, so
// every replica holds the same one without storing it.
func (b *Backend) userKey(parts ...string) (nkeys.KeyPair, error) {
	raw, err := base64.RawURLEncoding.DecodeString(enclave.DeriveSecret(b.key, append([]string{string(enclave.Messaging)}, parts...)...))
	if err != nil || len(raw) < 32 {
		return nil, errors.New("natsuser: derived secret is not 32 bytes of base64")
	}
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteUser, raw[:32])
	if err != nil {
		return nil, fmt.Errorf("natsuser: user key: %w", err)
	}
	return kp, nil
}

// user mints the user of a tentacle of enclave enc, allowed only under
// the enclave's prefix (its inbox included).
func (b *Backend) user(enc, tentacle string) (user, error) {
	kp, err := b.userKey(enc, tentacle)
	if err != nil {
		return user{}, err
	}
	within := b.Prefix(enc) + ".>"
	return b.mint(kp, enc+"/"+tentacle, jwt.Permissions{
		Pub: jwt.Permission{Allow: jwt.StringList{within}},
		Sub: jwt.Permission{Allow: jwt.StringList{within}},
	})
}

// mint signs a user JWT for kp. It is encoded here rather than by
// jwt.Encode, which stamps the current time in "iat" and so would give a
// different token every second: the token leaves out "iat" and is thus
// the same, byte for byte, every time (Ed25519 signatures are
// deterministic). A revocation in the account JWT still applies, as it
// covers every JWT issued before its time.
func (b *Backend) mint(kp nkeys.KeyPair, name string, perms jwt.Permissions) (user, error) {
	pub, err := kp.PublicKey()
	if err != nil {
		return user{}, fmt.Errorf("natsuser: user key: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil {
		return user{}, fmt.Errorf("natsuser: user key: %w", err)
	}

	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	uc.Permissions = perms
	uc.IssuerAccount = b.issuerAccount
	uc.Issuer = b.issuer
	uc.Type = jwt.UserClaim
	uc.Version = 2 // the claims format the jwt/v2 library writes
	vr := jwt.CreateValidationResults()
	uc.Validate(vr)
	if errs := vr.Errors(); len(errs) > 0 {
		return user{}, fmt.Errorf("natsuser: user claims: %w", errors.Join(errs...))
	}
	// The ID is the hash of the standard claims without it, as
	// jwt.Encode makes it.
	std, err := json.Marshal(uc.ClaimsData)
	if err != nil {
		return user{}, fmt.Errorf("natsuser: user claims: %w", err)
	}
	sum := sha512.Sum512_256(std)
	uc.ID = base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:])

	payload, err := json.Marshal(uc)
	if err != nil {
		return user{}, fmt.Errorf("natsuser: user claims: %w", err)
	}
	toSign := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig := ed25519.Sign(b.signer, []byte(toSign))
	return user{pub: pub, seed: string(seed), jwt: toSign + "." + base64.RawURLEncoding.EncodeToString(sig)}, nil
}

// jwtHeader is the encoded JOSE header of every NATS JWT.
var jwtHeader = func() string {
	h, _ := json.Marshal(jwt.Header{Type: jwt.TokenTypeJwt, Algorithm: jwt.AlgorithmNkey})
	return base64.RawURLEncoding.EncodeToString(h)
}()

// Creds is s's credentials as a standard NATS .creds file, for
// nats.UserCredentials and the nats CLI. It holds the seed: it is a
// secret.
func Creds(s enclave.Space) ([]byte, error) {
	if s.Token == "" || s.Secret == "" {
		return nil, errors.New("natsuser: creds: the space has no NATS user JWT or seed")
	}
	c, err := jwt.FormatUserConfig(s.Token, []byte(s.Secret))
	if err != nil {
		// FormatUserConfig's errors name the problem, not the values.
		return nil, fmt.Errorf("natsuser: creds: %w", err)
	}
	return c, nil
}

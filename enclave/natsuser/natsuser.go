// Package natsuser is the exoskeleton's messaging service on NATS: every
// enclave gets the subject prefix <prefix>.<enclave>, and every tentacle
// a NATS user that may publish and subscribe under it and nowhere else.
//
// The platform runs NATS in operator mode (decentralized JWT auth) and
// gives the bot the seed of one account's signing key. The bot mints user
// JWTs with it; the server trusts them because it trusts the account, so
// no server reload or API call is needed per tentacle, and nothing is
// stored server-side. A user's key is derived from the platform's key
// (enclave.DeriveSecret), so every replica mints the same user.
//
// # Permissions (for tentacle authors)
//
// A tentacle of enclave payments (prefix kraken) may publish and
// subscribe to kraken.payments.> only. Anything else, including ">",
// "_INBOX.>" and other enclaves' subjects, is refused by the server with
// a permissions violation.
//
// Request-reply needs an inbox under the prefix: connect with
// nats.CustomInboxPrefix("kraken.payments._INBOX") (Space.Prefix +
// "._INBOX", see Inbox). The default _INBOX.> is refused. Other enclaves
// cannot subscribe there, so they never see the enclave's replies;
// tentacles of the same enclave can, as they can see all its subjects:
// the enclave, not the tentacle, is the unit of isolation.
//
// Users get no allow_responses: with it, a responder may publish once to
// any reply subject it is handed, and a tentacle could hand its sibling a
// reply subject in another enclave's prefix and so write there. Without
// it, a reply goes only where the responder may publish anyway: its own
// prefix. Anyone requesting a tentacle must therefore use an inbox under
// the enclave's prefix.
//
// # Revocation
//
// A minted user cannot be cut off by the bot: NATS revokes a user only
// through the account JWT, which the operator signs, and the bot holds an
// account signing key only. Revoke therefore does nothing but log; user
// JWTs carry no expiry (running pods must not be cut off), so a leaked
// credential stays valid until the platform revokes the user's public key
// in the account JWT, signed by the operator, and pushes it to the
// servers' resolver (with nsc: revocations add-user, then push); Revoke
// logs that public key. The user key is derived from the enclave and
// tentacle names, so a tentacle deployed again under the same name gets
// the same, still revoked, user until the platform removes that
// revocation.
package natsuser

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nkeys"

	"github.com/kraken-ops/kraken/enclave"
)

// DefaultPrefix is the first token of every enclave's subjects, as in
// the bot's queue triggers.
const DefaultPrefix = "kraken"

// InboxToken is the token under an enclave's prefix that request-reply
// inboxes live under.
const InboxToken = "_INBOX"

// ErrConfig is wrapped by every error New returns for a bad Config.
var ErrConfig = errors.New("natsuser: invalid configuration")

// ErrName is wrapped by the errors for an enclave or tentacle name that
// cannot name a NATS space.
var ErrName = errors.New("natsuser: invalid name")

// Config sets a Backend up.
type Config struct {
	// URL is what tentacles and the bot dial: nats://host:port, or
	// tls://host:port for TLS. The port defaults to 4222.
	URL string
	// AccountSeed is the seed ("SA…") of the account, or of one of its
	// signing keys, that user JWTs are signed with.
	AccountSeed string
	// Account is the account's public key ("A…"). It is required when
	// AccountSeed is a signing key; when empty, AccountSeed is taken to
	// be the account's own key.
	Account string
	// Prefix is the first token(s) of every enclave's subjects; empty
	// means DefaultPrefix.
	Prefix string
	// Network is what a tentacle's egress must open to reach the server.
	Network []enclave.Network
	// Key is the platform's secret (at least 32 bytes) user keys are
	// derived from.
	Key []byte
	// Logger gets Revoke's warnings; nil discards them.
	Logger *slog.Logger
}

// Backend is the NATS messaging service. It implements enclave.Backend
// and is safe for concurrent use.
type Backend struct {
	host    string
	port    int
	tls     bool
	prefix  string
	network []enclave.Network
	key     []byte
	log     *slog.Logger

	// signer signs user JWTs; issuer is its public key. Both are
	// derived once: nkeys derives them again on every call.
	signer ed25519.PrivateKey
	issuer string
	// account is the account the users belong to; issuerAccount is set
	// in user JWTs only when the signer is a signing key.
	account, issuerAccount string
}

var _ enclave.Backend = (*Backend)(nil)

// New checks cfg and makes a Backend. It contacts no server: there is
// nothing to set up server-side.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	b := &Backend{
		prefix:  cmp.Or(cfg.Prefix, DefaultPrefix),
		network: slices.Clone(cfg.Network),
		key:     slices.Clone(cfg.Key),
		log:     cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
	}
	var err error
	if b.host, b.port, b.tls, err = parseURL(cfg.URL); err != nil {
		return nil, fmt.Errorf("%w: url: %w", ErrConfig, err)
	}
	if err := checkPrefix(b.prefix); err != nil {
		return nil, fmt.Errorf("%w: prefix: %w", ErrConfig, err)
	}
	if len(b.key) < 32 {
		return nil, fmt.Errorf("%w: the key must be at least 32 bytes, got %d", ErrConfig, len(b.key))
	}
	for i, n := range b.network {
		if n.Port <= 0 || n.Port > 65535 || (n.CIDR == "" && n.Namespace == "") {
			return nil, fmt.Errorf("%w: network %d needs a port and a CIDR or namespace", ErrConfig, i+1)
		}
	}
	if b.signer, b.issuer, err = accountKey(cfg.AccountSeed); err != nil {
		return nil, fmt.Errorf("%w: account seed: %w", ErrConfig, err)
	}
	switch {
	case cfg.Account == "" || cfg.Account == b.issuer:
		b.account = b.issuer
	case !nkeys.IsValidPublicAccountKey(cfg.Account):
		return nil, fmt.Errorf("%w: account %q is not an account public key (A…)", ErrConfig, cfg.Account)
	default:
		b.account, b.issuerAccount = cfg.Account, cfg.Account
	}
	return b, nil
}

// accountKey reads an account seed, naming what it is instead when it is
// another kind of key, and never repeating it.
func accountKey(seed string) (ed25519.PrivateKey, string, error) {
	seed = strings.TrimSpace(seed)
	if seed == "" {
		return nil, "", errors.New("empty")
	}
	prefix, raw, err := nkeys.DecodeSeed([]byte(seed))
	if err != nil {
		// nkeys' errors are constants: they do not echo the seed.
		return nil, "", fmt.Errorf("not an nkey seed: %w", err)
	}
	if prefix != nkeys.PrefixByteAccount {
		return nil, "", fmt.Errorf("is %s seed; want an account or account signing key seed (SA…)", seedKind(prefix))
	}
	if len(raw) != ed25519.SeedSize {
		return nil, "", fmt.Errorf("not an nkey seed: %w", nkeys.ErrInvalidSeedLen)
	}
	key := ed25519.NewKeyFromSeed(raw)
	pub, err := nkeys.Encode(nkeys.PrefixByteAccount, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, "", fmt.Errorf("not an nkey seed: %w", err)
	}
	return key, string(pub), nil
}

func seedKind(p nkeys.PrefixByte) string {
	switch p {
	case nkeys.PrefixByteOperator:
		return "an operator"
	case nkeys.PrefixByteUser:
		return "a user"
	case nkeys.PrefixByteServer:
		return "a server"
	case nkeys.PrefixByteCluster:
		return "a cluster"
	case nkeys.PrefixByteCurve:
		return "a curve (xkey)"
	}
	return "an unknown kind of"
}

// parseURL reads the server's address. Its errors show the URL with any
// password redacted, and not at all when it does not parse.
func parseURL(raw string) (host string, port int, tls bool, err error) {
	if raw == "" {
		return "", 0, false, errors.New("empty; want nats://host:port")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", 0, false, errors.New("not a URL; want nats://host:port")
	}
	shown := u.Redacted()
	switch u.Scheme {
	case "nats":
	case "tls":
		tls = true
	default:
		return "", 0, false, fmt.Errorf("%q: scheme must be nats or tls", shown)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", 0, false, fmt.Errorf("%q: want only nats://host:port (credentials come from Grant)", shown)
	}
	host = u.Hostname()
	if host == "" {
		return "", 0, false, fmt.Errorf("%q has no host", shown)
	}
	port = 4222
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port <= 0 || port > 65535 {
			return "", 0, false, fmt.Errorf("%q: bad port", shown)
		}
	}
	return host, port, tls, nil
}

// token is what one subject token of a prefix may be: no wildcards,
// separators or spaces, and not the reserved $-tokens.
var token = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func checkPrefix(p string) error {
	for t := range strings.SplitSeq(p, ".") {
		if !token.MatchString(t) {
			return fmt.Errorf("%q must be dot-separated tokens of letters, digits, '_' and '-'", p)
		}
	}
	return nil
}

var tentacleName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func checkNames(enc, tentacle string) error {
	if err := checkEnclave(enc); err != nil {
		return err
	}
	if len(tentacle) > 63 || !tentacleName.MatchString(tentacle) {
		return fmt.Errorf("%w: tentacle %q must be lower-case letters, digits and dashes, at most 63", ErrName, tentacle)
	}
	return nil
}

// checkEnclave holds enclave names to the enclave's own rule, which also
// keeps them single subject tokens without wildcards: "a.b" or "*" would
// widen the prefix to other enclaves.
func checkEnclave(enc string) error {
	if err := enclave.ValidateName(enc); err != nil {
		return fmt.Errorf("%w: %w", ErrName, err)
	}
	return nil
}

// Kind is enclave.Messaging.
func (b *Backend) Kind() enclave.Kind { return enclave.Messaging }

// Prefix is the subject prefix of an enclave: <prefix>.<enclave>.
func (b *Backend) Prefix(enc string) string { return b.prefix + "." + enc }

// Inbox is the inbox prefix a client in the space must set with
// nats.CustomInboxPrefix for request-reply.
func Inbox(s enclave.Space) string { return s.Prefix + "." + InboxToken }

// Open checks the enclave's name. An enclave's subject prefix exists as
// soon as users may use it: nothing is made on the server.
func (b *Backend) Open(_ context.Context, enc string) error {
	return checkEnclave(enc)
}

// Grant mints the tentacle's user: its public key, seed and JWT. The same
// names and key always give the same credentials, byte for byte.
func (b *Backend) Grant(_ context.Context, enc, tentacle string) (enclave.Space, error) {
	if err := checkNames(enc, tentacle); err != nil {
		return enclave.Space{}, err
	}
	u, err := b.user(enc, tentacle)
	if err != nil {
		return enclave.Space{}, err
	}
	return enclave.Space{
		Kind:     enclave.Messaging,
		Protocol: "nats",
		Host:     b.host,
		Port:     b.port,
		TLS:      b.tls,
		Prefix:   b.Prefix(enc),
		Subject:  b.Prefix(enc) + ".>",
		User:     u.pub,
		Secret:   u.seed,
		Token:    u.jwt,
		Network:  slices.Clone(b.network),
		Inbox:    b.Prefix(enc) + "." + InboxToken,
	}, nil
}

// Revoke cannot cut the user off (see the package comment): it checks the
// names and warns with the user's public key, which is what the platform
// must revoke in the account JWT. It returns nil, so undeploying a
// tentacle is not held up by what no retry could do.
func (b *Backend) Revoke(ctx context.Context, enc, tentacle string) error {
	if err := checkNames(enc, tentacle); err != nil {
		return err
	}
	kp, err := b.userKey(enc, tentacle)
	if err != nil {
		return err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return fmt.Errorf("natsuser: user key: %w", err)
	}
	b.log.WarnContext(ctx, "natsuser: a NATS user stays valid until the operator revokes it in the account JWT",
		"enclave", enc, "tentacle", tentacle, "account", b.account, "user", pub)
	return nil
}

// Usage tells the enclave's subject prefix. NATS core keeps nothing for
// it (no streams are granted), so there are no bytes to count.
func (b *Backend) Usage(_ context.Context, enc string) (enclave.Usage, error) {
	if err := checkEnclave(enc); err != nil {
		return enclave.Usage{}, err
	}
	return enclave.Usage{
		Kind:   enclave.Messaging,
		What:   "messaging subjects " + b.Prefix(enc) + ".>",
		Exists: true,
	}, nil
}

// Drop does nothing: an enclave keeps nothing on NATS. Its users stay
// valid (see Revoke), and an enclave made again under the same name gets
// the same prefix and, for the same tentacle names, the same users.
func (b *Backend) Drop(_ context.Context, enc string) error {
	return checkEnclave(enc)
}

// URL is the server's address as clients dial it.
func (b *Backend) URL() string {
	scheme := "nats"
	if b.tls {
		scheme = "tls"
	}
	return scheme + "://" + net.JoinHostPort(b.host, strconv.Itoa(b.port))
}

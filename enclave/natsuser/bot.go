package natsuser

import (
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
)

// BotOptions are the options of the bot's own connection (its queue
// triggers): a user allowed to publish and subscribe under every
// enclave's prefix (<prefix>.>) and nowhere else, with its inbox at
// <prefix>._INBOX (no enclave can have that name). Every replica gets
// the same user.
func (b *Backend) BotOptions() ([]nats.Option, error) {
	u, err := b.bot()
	if err != nil {
		return nil, err
	}
	return []nats.Option{
		nats.UserJWTAndSeed(u.jwt, u.seed),
		nats.CustomInboxPrefix(b.prefix + "." + InboxToken),
	}, nil
}

// bot mints the bot's user. Its derivation has two parts where a
// tentacle's has three, so it is no tentacle's user.
func (b *Backend) bot() (user, error) {
	kp, err := b.userKey("bot")
	if err != nil {
		return user{}, err
	}
	all := b.prefix + ".>"
	return b.mint(kp, "kraken bot", jwt.Permissions{
		Pub: jwt.Permission{Allow: jwt.StringList{all}},
		Sub: jwt.Permission{Allow: jwt.StringList{all}},
	})
}

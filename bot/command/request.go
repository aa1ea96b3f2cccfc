// Package command is every verb people can ask of the bot, each defined
// once: its words, the right it takes, whether it needs a person's
// confirmation, and what it does. The Slack transport, its buttons, the
// console, the admin API and the LLM's tools all call a Registry, so a
// rule written here (authorization, audit, redaction, frozen enclaves
// refusing deploys) holds on every path.
package command

import (
	"context"
	"io"
	"time"

	"github.com/kraken-ops/kraken/enclave"
)

// Where a request came from, as the audit log records it.
const (
	ViaSlack   = "slack"
	ViaConsole = "console"
	ViaAdmin   = "admin"
	ViaLLM     = "llm"
)

// Request is one person asking for one thing.
type Request struct {
	// Actor is who asks. Ignored when Admin is set.
	Actor enclave.Principal
	// ActorEmail is the actor's email when the transport knows it, for
	// the audit log.
	ActorEmail string
	// Admin is set when a platform administrator asks through the admin
	// API: the mode does not apply to them (their identity provider's
	// admin group is the right), but the audit log, the lifecycle rules
	// and confirmations do.
	Admin *Admin
	// Via is where the request came from: ViaSlack, ViaConsole, ...
	Via string
	// Channel is the channel asked in; the enclave is the channel's.
	Channel enclave.Channel
	// Enclave names the enclave directly, for callers with no channel
	// (the admin API). It wins over Channel.
	Enclave string
	// Thread is the conversation the request is part of (a Slack
	// thread's ts), empty for the channel's main conversation. The
	// conversation loop keeps its memory per channel and thread.
	Thread string
	// Text is the command line without "/kraken": "run hello {"n": 1}".
	Text string
	// Files are the files recently shared in the channel, newest first;
	// deploy takes a tentacle bundle from one of them.
	Files []File
	// Confirmed carries a typed confirmation for callers that cannot
	// click a card (the admin API): the enclave's name for deprovision,
	// the tentacle's for the other destructive verbs. Ignored on other
	// paths.
	Confirmed string
}

// Admin is a platform administrator signed in with the identity
// provider.
type Admin struct {
	Issuer  string
	Subject string
	Email   string
}

// File is a file shared in a channel. Open fetches its content, at most
// max bytes (more is an error).
type File struct {
	ID       string
	Name     string
	Size     int
	Shared   time.Time
	SharedBy string
	Open     func(ctx context.Context, max int64) (io.ReadCloser, error)
}

// Click is a person pressing a button on one of the bot's cards.
type Click struct {
	Actor      enclave.Principal
	ActorEmail string
	Via        string
	Channel    enclave.Channel
	// Value is the button's value as the Reply gave it.
	Value string
	// Typed is what the person typed on the card, when it asked them to
	// type a name.
	Typed string
}

// ChannelEventKind is something that happened to a Slack channel.
type ChannelEventKind int

const (
	// BotJoined: the bot was invited to the channel (User is who
	// invited it, when known).
	BotJoined ChannelEventKind = iota + 1
	// MemberJoined and MemberLeft: User joined or left.
	MemberJoined
	MemberLeft
	Archived
	Unarchived
	// Renamed: Channel.Name is the new name.
	Renamed
	Deleted
)

// ChannelEvent is a channel event, from Slack or simulated by the
// console. The registry applies it to the channel's enclave.
type ChannelEvent struct {
	Kind    ChannelEventKind
	Channel enclave.Channel
	User    string
	Via     string
}

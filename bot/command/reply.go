package command

import (
	"context"
	"time"
)

// Reply is what the bot answers, independent of the transport that shows
// it. Text is always set and is plain language a person can act on: no
// namespaces, pods, raw JSON, tables or ids. It may use *bold*, _italic_,
// `code` and <@USERID> mentions, which every transport can show.
type Reply struct {
	Text string
	// Private: only the person who asked sees it (an ephemeral message).
	Private bool
	// Failed: the request was refused or did not work. Text says why and
	// what to do next.
	Failed bool
	// Fields are labelled facts shown beside the text (e.g. "Owner",
	// "Mode"), in order.
	Fields []Field
	// Image is a picture to show with the reply, e.g. a tentacle's DAG.
	Image *Image
	// Buttons are actions offered with the reply; a click comes back as
	// a Click with the button's Value.
	Buttons []Button
	// Confirm asks the person to confirm a destructive act.
	Confirm *Confirm
	// Secret asks the person for a secret's value in a private form, so
	// that it is never typed in a channel.
	Secret *SecretForm
	// Details are the long part of a reply, kept out of the message
	// itself: a run's output and errors. A transport with threads posts
	// them in the reply's thread; others show them after Text.
	Details string
	// Progress: this reply tells how work goes on, and another follows
	// it (it came through Later before the end).
	Progress bool
	// Later, when set, is how the work this reply started goes on (a
	// run): zero or more progress replies ("Running… 2 of 5 steps
	// done"), then the reply that ends it, then the channel is closed.
	// Transports show this reply, then update it in place with each one.
	// Only the newest reply waits in the channel: a transport that reads
	// slowly skips progress, never the end.
	Later <-chan Reply
}

// Wait returns the reply that ends the work, as one message: Later's
// last, once the channel closes (or the newest there is, with a note, if
// ctx ends first), or this one when there is no Later. Its Details are
// appended to its Text: whoever waits has no thread to put them in.
func (r Reply) Wait(ctx context.Context) Reply {
	last := r
	for r.Later != nil {
		select {
		case rep, open := <-r.Later:
			if !open {
				r.Later = nil
				break
			}
			last = rep
		case <-ctx.Done():
			r.Later = nil
			last.Text += " (still going; `/kraken runs` shows how it ends)"
		}
	}
	last.Later = nil
	if last.Details != "" {
		last.Text += "\n" + last.Details
		last.Details = ""
	}
	return last
}

// SecretForm asks for one secret of a tentacle. The transport shows a
// private form and hands the value to Registry.SubmitSecret with Token.
type SecretForm struct {
	Tentacle string
	Key      string
	Token    string
	Expires  time.Time
}

// Field is one labelled fact.
type Field struct {
	Label string
	Value string
}

// Image is a PNG picture.
type Image struct {
	Name  string // file name, e.g. "hello-fanout.png"
	Title string
	Alt   string
	PNG   []byte
}

// Button is an action offered on a reply.
type Button struct {
	Label string
	// Value identifies the action; transports send it back in a Click
	// and never interpret it.
	Value string
	// Style is "", "primary" or "danger".
	Style string
}

// Confirm is a confirmation card: the act runs only when the person who
// asked presses Confirm before Expires (and, when TypeName is set, types
// that name).
type Confirm struct {
	Title  string
	Prompt string
	// ConfirmLabel and CancelLabel are the buttons' words.
	ConfirmLabel string
	CancelLabel  string
	// ConfirmValue and CancelValue are the buttons' values.
	ConfirmValue string
	CancelValue  string
	// TypeName, when set, must be typed exactly to confirm.
	TypeName string
	Expires  time.Time
}

// Command describes a verb for help, the LLM's tool list and the admin
// API.
type Command struct {
	Name    string
	Usage   string // arguments, e.g. "<tentacle> [json input]"
	Summary string
	// Destructive verbs only run after a person confirms.
	Destructive bool
	// Enclave: the verb acts on an enclave (and needs one, except
	// provision); false for help and list-style verbs that do not.
	Enclave bool
	// Params are its arguments in order, for the LLM's tool list.
	Params []Param
}

// Param is one argument of a command.
type Param struct {
	Name        string
	Kind        ParamKind
	Required    bool
	Description string
}

// ParamKind says what an argument holds and how it is written on a
// command line.
type ParamKind string

const (
	// ParamWord is one word: a tentacle's name, a mode, an example.
	ParamWord ParamKind = "word"
	// ParamPerson is a Slack user id, written as a mention.
	ParamPerson ParamKind = "person"
	// ParamJSON is any JSON value, written compact.
	ParamJSON ParamKind = "json"
	// ParamNumber is a positive whole number.
	ParamNumber ParamKind = "number"
)

// Home is what the App Home tab shows a person: the enclaves they are in
// and their recent runs.
type Home struct {
	Enclaves []HomeEnclave
	Runs     []RunSummary
}

// HomeEnclave is one enclave on a person's home tab.
type HomeEnclave struct {
	Name        string
	ChannelID   string
	ChannelName string
	Role        string
	State       string
	Tentacles   int
}

// RunSummary is one run of a tentacle, as people see it.
type RunSummary struct {
	Enclave  string
	Tentacle string
	Actor    string
	At       time.Time
	Duration time.Duration
	OK       bool
	// Summary is one line: "succeeded: 3 steps" or the first error.
	Summary string
}

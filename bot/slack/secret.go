package slack

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/enclave"
)

// Secrets are typed into a private form (a modal), never into a channel.
// The registry's reply asks for one (Reply.Secret); the bot opens the
// form with the request's trigger_id when it has one (slash commands,
// clicks) and always leaves the asker a private "Enter the secret" button
// too: a mention has no trigger_id, a trigger_id lasts three seconds,
// which a slow answer outlives, and a form closed by mistake can be
// opened again.
//
// The value comes back in a view_submission. Slack wants the answer to
// that (close the form, or show an error on it) within three seconds, so
// the request waits, up to submitBudget, for the registry to set the
// secret. The value itself is never logged, never put in a reply, and
// never written to the store: the request is claimed in the store like
// any other (so a retry is recognised), but with the form's state cut
// out; the value travels to the worker in memory only (job.Secret). If
// the process dies before the secret is set, the replayed request has no
// value, and the person is told to set it again. That is the price of
// not writing secrets to disk, and a small one: it takes a restart in the
// second the form is submitted.

// Ids on the secret form.
const (
	secretCallback    = "kraken_secret"
	blockSecretValue  = "kraken_secret_value"
	actionSecretValue = "value"
	// secretButton starts the value of the button that opens the form;
	// the registry's button values never do.
	secretButton = "kraken-secret-form:"
)

// Slack's limits for a modal.
const (
	maxModalTitle = 24
	maxErrorText  = 300
)

// submitBudget is how long the answer to a form's submission waits for
// the secret to be set: under Slack's three seconds, with room for the
// way there and back. A slower registry still finishes; the form closes
// and the outcome comes as a private message.
const submitBudget = 2500 * time.Millisecond

// secretForm is what a form carries in its private_metadata (and its
// button in its value): which secret, the registry's token for it, and
// where to tell the person how it went. No secret in it: the token works
// only for the person it was made for, once.
type secretForm struct {
	Token    string `json:"token"`
	Tentacle string `json:"tentacle"`
	Key      string `json:"key"`
	Channel  string `json:"channel"`
	Thread   string `json:"thread,omitempty"`
	// Direct: Channel is the person's direct conversation with the bot.
	Direct  bool  `json:"direct,omitempty"`
	Expires int64 `json:"expires,omitempty"`
}

func (f secretForm) encode() string {
	b, _ := json.Marshal(f)
	return string(b)
}

func decodeForm(s string) (secretForm, error) {
	var f secretForm
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		return f, fmt.Errorf("secret form: %w", err)
	}
	if f.Token == "" {
		return f, errors.New("secret form without a token")
	}
	return f, nil
}

// submission is a filled-in form as only the process that received it
// holds it: the value, and where the answer to Slack waits.
type submission struct {
	value string
	// reply takes the registry's reply; it has room for one, so the
	// worker never waits on a request that stopped listening.
	reply chan command.Reply
}

func newSubmission(value string) *submission {
	return &submission{value: value, reply: make(chan command.Reply, 1)}
}

// String and MarshalJSON keep the value out of anything that prints or
// encodes a job by accident: a log line, the store.
func (*submission) String() string                   { return "[secret form]" }
func (*submission) MarshalJSON() ([]byte, error)     { return []byte("null"), nil }
func (s *submission) answer(rep command.Reply)       { s.reply <- rep }
func (s *submission) answered() <-chan command.Reply { return s.reply }

// prepare adapts a reply to where it goes: a secret form becomes a
// private reply with its button (and the form itself when there is a
// trigger_id), and in a direct conversation nothing needs hiding.
func (a *App) prepare(ctx context.Context, t target, rep command.Reply) command.Reply {
	if s := rep.Secret; s != nil {
		f := secretForm{Token: s.Token, Tentacle: s.Tentacle, Key: s.Key, Channel: t.channel, Thread: t.thread, Direct: t.direct}
		if !s.Expires.IsZero() {
			f.Expires = s.Expires.Unix()
		}
		if t.trigger != "" {
			if err := a.openSecretForm(ctx, t.trigger, f); err != nil {
				a.logOf(ctx).Info("secret form not opened; the button will", "err", err)
			}
		}
		rep.Secret, rep.Private = nil, true
		rep.Buttons = append(slices.Clip(rep.Buttons), command.Button{Label: "Enter the secret", Value: secretButton + f.encode(), Style: "primary"})
	}
	if t.direct {
		rep.Private = false
	}
	return rep
}

// openSecretForm opens the form for a secret with a trigger_id.
func (a *App) openSecretForm(ctx context.Context, trigger string, f secretForm) error {
	_, err := call(ctx, a, "views.open", func(ctx context.Context) (*slackapi.ViewResponse, error) {
		return a.api.OpenViewContext(ctx, trigger, secretModal(f))
	})
	return err
}

// secretModal is the form: what is asked, and one line to type it in.
func secretModal(f secretForm) slackapi.ModalViewRequest {
	in := slackapi.NewPlainTextInputBlockElement(nil, actionSecretValue)
	about := fmt.Sprintf("Type the value of secret `%s` of *%s*. Only you see this form; the value goes to the tentacle and is never shown in the chat or kept by me.",
		escape(f.Key), escape(f.Tentacle))
	return slackapi.ModalViewRequest{
		Type:       slackapi.VTModal,
		CallbackID: secretCallback,
		Title:      plain(truncate("Secret "+f.Key+" of "+f.Tentacle, maxModalTitle)),
		Submit:     plain("Set"),
		Close:      plain("Cancel"),
		Blocks: slackapi.Blocks{BlockSet: []slackapi.Block{
			slackapi.NewSectionBlock(mrkdwn(truncate(about, maxSectionText)), nil, nil),
			slackapi.NewInputBlock(blockSecretValue, plain("Value"), nil, in),
		}},
		PrivateMetadata: f.encode(),
		ClearOnClose:    true,
	}
}

// openFormFromButton opens a secret form from its button, with the
// click's fresh trigger_id.
func (a *App) openFormFromButton(ctx context.Context, ia interaction, chID, value string) error {
	f, err := decodeForm(value)
	if err != nil {
		return err
	}
	t := target{channel: chID, thread: ia.Message.ThreadTS, user: ia.User.ID, responseURL: ia.ResponseURL}
	if f.Expires != 0 && time.Now().Unix() > f.Expires {
		return a.deliver(ctx, t, command.Reply{Private: true, Failed: true,
			Text: fmt.Sprintf("This form has expired. Ask again with `/kraken secret %s %s`.", f.Tentacle, f.Key)})
	}
	if err := a.openSecretForm(ctx, ia.TriggerID, f); err != nil {
		a.logOf(ctx).Info("secret form not opened", "err", err)
		return a.deliver(ctx, t, command.Reply{Private: true, Failed: true, Text: "I couldn't open the form just now. Press *Enter the secret* again."})
	}
	return nil
}

// redactSubmission splits a secret form's submission into what may be
// stored (the payload without the form's state, where the value is, and
// without the verification token) and the value.
func redactSubmission(payload []byte) ([]byte, string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, "", fmt.Errorf("view submission: %w", err)
	}
	var view map[string]json.RawMessage
	if err := json.Unmarshal(m["view"], &view); err != nil {
		return nil, "", fmt.Errorf("view submission: view: %w", err)
	}
	var state struct {
		Values map[string]map[string]struct {
			Value string `json:"value"`
		} `json:"values"`
	}
	if len(view["state"]) > 0 {
		if err := json.Unmarshal(view["state"], &state); err != nil {
			return nil, "", fmt.Errorf("view submission: state: %w", err)
		}
	}
	value := state.Values[blockSecretValue][actionSecretValue].Value
	delete(view, "state")
	v, err := json.Marshal(view)
	if err != nil {
		return nil, "", fmt.Errorf("view submission: %w", err)
	}
	m["view"] = v
	delete(m, "token")
	body, err := json.Marshal(m)
	if err != nil {
		return nil, "", fmt.Errorf("view submission: %w", err)
	}
	return body, value, nil
}

// handleSubmission is the second half of a secret form's submission: the
// registry sets the secret, the waiting request answers Slack, and the
// person is told privately how it went. sub is nil when the request was
// replayed from the store, which never had the value.
func (a *App) handleSubmission(ctx context.Context, cmds Commands, ia interaction, sub *submission) error {
	f, err := decodeForm(ia.View.PrivateMetadata)
	if err != nil {
		if sub != nil {
			sub.answer(command.Reply{Failed: true, Text: "I couldn't read this form. Close it and ask again."})
		}
		return err
	}
	team := cmp.Or(ia.User.TeamID, ia.Team.ID)
	user := ia.User.ID
	if sub == nil {
		return a.tellPrivately(ctx, f, user, command.Reply{Private: true, Failed: true, Text: fmt.Sprintf(
			"I was restarted just as you sent secret %s of *%s*, and I never keep what is typed in the form, so I can't tell whether it was set. To be sure, set it again with `/kraken secret %s %s`.",
			f.Key, escape(f.Tentacle), f.Tentacle, f.Key)})
	}
	rep := cmds.SubmitSecret(ctx, command.SecretSubmission{
		Actor:      enclave.Principal{TeamID: team, UserID: user},
		ActorEmail: a.userEmail(ctx, user),
		Via:        command.ViaSlack,
		Token:      f.Token,
		Value:      sub.value,
	})
	sub.answer(rep)
	return a.tellPrivately(ctx, f, user, rep)
}

// tellPrivately tells the person who filled in a form how it went, where
// the form came from; their direct conversation with the bot when it
// cannot post there any more.
func (a *App) tellPrivately(ctx context.Context, f secretForm, user string, rep command.Reply) error {
	rep.Private = true
	t := target{channel: f.Channel, thread: f.Thread, user: user, direct: f.Direct}
	err := a.deliver(ctx, t, rep)
	if err == nil {
		return nil
	}
	a.logOf(ctx).Info("secret form outcome not shown where the form came from; sending it directly", "err", err)
	rep.Private = false
	return a.deliver(ctx, target{channel: user}, rep)
}

// submissionAnswer is the answer to a form's submission: close every
// view, or keep the form open with what went wrong under the input.
func submissionAnswer(rep command.Reply) *slackapi.ViewSubmissionResponse {
	if rep.Failed {
		return slackapi.NewErrorsViewSubmissionResponse(map[string]string{blockSecretValue: truncate(rep.Text, maxErrorText)})
	}
	return slackapi.NewClearViewSubmissionResponse()
}

// awaitSubmission waits, until submitBudget after the request arrived,
// for the registry's reply to a submission that adm let in, and says how
// to answer Slack: nil for an empty answer (which closes the form).
func awaitSubmission(ctx context.Context, sub *submission, adm admission, arrived time.Time) *slackapi.ViewSubmissionResponse {
	switch adm {
	case duplicate:
		return nil // the first delivery is being answered
	case busy:
		return submissionAnswer(command.Reply{Failed: true, Text: "I'm too busy to take this right now. Press Set again in a moment."})
	}
	t := time.NewTimer(submitBudget - time.Since(arrived))
	defer t.Stop()
	select {
	case rep := <-sub.answered():
		return submissionAnswer(rep)
	case <-t.C:
		// Still working: the form closes, and the person is told the
		// outcome privately once there is one.
		return slackapi.NewClearViewSubmissionResponse()
	case <-ctx.Done():
		return nil
	}
}

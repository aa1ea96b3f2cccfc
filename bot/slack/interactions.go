package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/enclave"
)

// interaction is an interactivity payload, as far as the bot reads it.
type interaction struct {
	Type        string `json:"type"`
	TriggerID   string `json:"trigger_id"`
	ResponseURL string `json:"response_url"`
	User        struct {
		ID     string `json:"id"`
		TeamID string `json:"team_id"`
	} `json:"user"`
	Team struct {
		ID string `json:"id"`
	} `json:"team"`
	Channel struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"channel"`
	Container struct {
		Type        string `json:"type"`
		MessageTS   string `json:"message_ts"`
		ChannelID   string `json:"channel_id"`
		IsEphemeral bool   `json:"is_ephemeral"`
	} `json:"container"`
	Message struct {
		TS       string          `json:"ts"`
		ThreadTS string          `json:"thread_ts"`
		Blocks   json.RawMessage `json:"blocks"`
	} `json:"message"`
	Actions []struct {
		ActionID string `json:"action_id"`
		BlockID  string `json:"block_id"`
		Type     string `json:"type"`
		Value    string `json:"value"`
		Text     struct {
			Text string `json:"text"`
		} `json:"text"`
	} `json:"actions"`
	State struct {
		Values map[string]map[string]struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"values"`
	} `json:"state"`
	// View is the form submitted, for a view_submission. Its state is
	// not read here: a secret form's value is taken apart from the rest
	// (redactSubmission).
	View struct {
		ID              string `json:"id"`
		CallbackID      string `json:"callback_id"`
		PrivateMetadata string `json:"private_metadata"`
	} `json:"view"`
}

// parseInteractionForm reads an interaction posted over HTTP: a form with
// the JSON in "payload".
func parseInteractionForm(body []byte) (inbound, error) {
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return inbound{}, fmt.Errorf("interaction: %w", err)
	}
	return parseInteraction([]byte(v.Get("payload")))
}

// parseInteraction reads an interaction payload. The bot acts on button
// presses in messages and on its secret form; anything else is
// acknowledged and dropped.
func parseInteraction(payload []byte) (inbound, error) {
	if len(payload) == 0 {
		return inbound{}, errors.New("interaction without a payload")
	}
	var ia interaction
	if err := json.Unmarshal(payload, &ia); err != nil {
		return inbound{}, fmt.Errorf("interaction: %w", err)
	}
	if ia.Type == "view_submission" && ia.View.CallbackID == secretCallback {
		body, value, err := redactSubmission(payload)
		if err != nil {
			return inbound{}, err
		}
		id := "interaction:" + ia.TriggerID
		if ia.TriggerID == "" {
			id = hashID("interaction", body) // a hash of the value could be guessed back
		}
		return inbound{kind: kindInteraction, id: id, job: job{Kind: kindInteraction, Body: body, Secret: newSubmission(value)}}, nil
	}
	if ia.Type != "block_actions" || clicked(ia) == "" {
		return inbound{kind: kindInteraction}, nil
	}
	id := "interaction:" + ia.TriggerID
	if ia.TriggerID == "" {
		id = hashID("interaction", payload)
	}
	return inbound{kind: kindInteraction, id: id, job: job{Kind: kindInteraction, Body: withoutToken(payload)}}, nil
}

// clicked is the value of the button pressed, "" when none was.
func clicked(ia interaction) string {
	for _, act := range ia.Actions {
		if act.Type == "button" && act.Value != "" {
			return act.Value
		}
	}
	return ""
}

// handleInteraction is the second half of a button press: the registry
// decides, and the card shows the outcome. A refusal only the presser
// should see (someone else's confirmation, a wrong name typed) leaves the
// card as it was. A secret form's submission and its button are the
// transport's own.
func (a *App) handleInteraction(ctx context.Context, cmds Commands, payload []byte, sub *submission) error {
	var ia interaction
	if err := json.Unmarshal(payload, &ia); err != nil {
		return fmt.Errorf("interaction: %w", err)
	}
	if ia.Type == "view_submission" {
		return a.handleSubmission(withLog(ctx, a.logOf(ctx).With("user", ia.User.ID)), cmds, ia, sub)
	}
	team := ia.User.TeamID
	if team == "" {
		team = ia.Team.ID
	}
	chID := ia.Channel.ID
	if chID == "" {
		chID = ia.Container.ChannelID
	}
	ctx = withLog(ctx, a.logOf(ctx).With("channel", chID, "user", ia.User.ID))
	if form, ok := strings.CutPrefix(clicked(ia), secretButton); ok {
		// First, before any lookup: the click's trigger_id lasts 3s.
		return a.openFormFromButton(ctx, ia, chID, form)
	}
	name := ia.Channel.Name
	if name == "" || name == "privategroup" || name == "directmessage" {
		name = a.channelName(ctx, chID)
	}
	label := ""
	for _, act := range ia.Actions {
		if act.Type == "button" && act.Value != "" {
			label = act.Text.Text
			break
		}
	}
	k := command.Click{
		Actor:      enclave.Principal{TeamID: team, UserID: ia.User.ID},
		ActorEmail: a.userEmail(ctx, ia.User.ID),
		Via:        command.ViaSlack,
		Channel:    enclave.Channel{TeamID: team, ID: chID, Name: name},
		Value:      clicked(ia),
		Typed:      ia.State.Values[blockTypeName][actionTypeName].Value,
	}
	rep := cmds.Click(ctx, k)

	thread := ia.Message.ThreadTS
	if rep.Private || rep.Secret != nil {
		return a.deliver(ctx, target{channel: chID, thread: thread, user: ia.User.ID, responseURL: ia.ResponseURL, trigger: ia.TriggerID}, rep)
	}
	card := cardUpdate{
		channel: chID, ts: ia.Container.MessageTS, ephemeral: ia.Container.IsEphemeral,
		responseURL: ia.ResponseURL, original: ia.Message.Blocks,
		by: fmt.Sprintf("<@%s> chose *%s*", ia.User.ID, escape(label)),
	}
	if card.ts == "" {
		card.ts = ia.Message.TS
	}
	if err := a.updateCard(ctx, card, rep); err != nil {
		// The card could not change (deleted, archived channel): say it
		// in the channel instead, so the outcome is not lost.
		a.logOf(ctx).Warn("card not updated; posting the outcome", "err", err)
		return a.deliver(ctx, target{channel: chID, thread: thread, user: ia.User.ID}, rep)
	}
	if rep.Image != nil {
		if err := a.upload(ctx, chID, thread, rep.Image); err != nil {
			return fmt.Errorf("upload %s: %w", rep.Image.Name, err)
		}
	}
	return nil
}

package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
)

// roles is a registry that can say a person's role in the channel's
// enclave ("owner", "member", "other"; "" when the channel has none). It
// is optional: without it the prompt lets the tools speak for the rights.
type roles interface {
	Role(ctx context.Context, req command.Request) (string, error)
}

type systemData struct {
	Date    string
	Enclave string
	Role    string
}

// systemPrompt fills the system prompt in for this person and channel.
func (c *Chat) systemPrompt(ctx context.Context, req command.Request, enclaveName string) (string, error) {
	d := systemData{
		Date:    c.cfg.Now().UTC().Format("Monday 2 January 2006"),
		Enclave: "This channel has no enclave yet; the provision tool makes one.",
		Role:    "someone in this channel; what they may do here is exactly what your tools do",
	}
	if enclaveName != "" {
		d.Enclave = fmt.Sprintf("This channel's enclave is called %s.", enclaveName)
	}
	if r, ok := c.cfg.Registry.(roles); ok && enclaveName != "" {
		role, err := r.Role(ctx, req)
		if err != nil {
			c.log.Warn("role not read", "channel", req.Channel.ID, "err", err)
		}
		switch role {
		case "owner":
			d.Role = "the owner of this enclave"
		case "member":
			d.Role = "a member of this enclave"
		case "other":
			d.Role = "not a member of this enclave"
		}
	}
	return render(c, d)
}

func render(c *Chat, d systemData) (string, error) {
	var b strings.Builder
	if err := c.system.Execute(&b, d); err != nil {
		return "", fmt.Errorf("system prompt: %w", err)
	}
	return b.String(), nil
}

// PromptTokens estimates the tokens every model request pays before the
// conversation itself: the system prompt (for a member of an enclave)
// and the tool list as the API receives it. The estimate is bytes / 4,
// rounded up, OpenAI's rule of thumb for English; no tokenizer is
// involved, so treat it as within about 20% of a real count.
func PromptTokens(tools []ToolSpec) int {
	t, err := parseSystem()
	if err != nil {
		return 0
	}
	var b strings.Builder
	_ = t.Execute(&b, systemData{
		Date:    time.Date(2026, time.November, 23, 0, 0, 0, 0, time.UTC).Format("Monday 2 January 2006"),
		Enclave: "This channel's enclave is called payments.",
		Role:    "a member of this enclave",
	})
	type function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	}
	type tool struct {
		Type     string   `json:"type"`
		Function function `json:"function"`
	}
	wire := make([]tool, len(tools))
	for i, s := range tools {
		wire[i] = tool{Type: "function", Function: function(s)}
	}
	list, _ := json.Marshal(wire)
	return estimate(b.String()) + estimate(string(list))
}

func estimate(s string) int { return (len(s) + 3) / 4 }

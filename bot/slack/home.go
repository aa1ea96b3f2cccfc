package slack

import (
	"context"

	slackapi "github.com/slack-go/slack"

	"github.com/kraken-ops/kraken/enclave"
)

// publishHome shows a person their App Home: their enclaves and latest
// runs. When the registry cannot say, the tab says so rather than show
// nothing.
func (a *App) publishHome(ctx context.Context, cmds Commands, who enclave.Principal) error {
	var blocks []slackapi.Block
	h, err := cmds.Home(ctx, who)
	if err != nil {
		a.logOf(ctx).Warn("home not read", "user", who.UserID, "err", err)
		blocks = []slackapi.Block{slackapi.NewSectionBlock(mrkdwn("I couldn't read your enclaves just now. Open this tab again in a minute."), nil, nil)}
	} else {
		blocks = renderHome(h)
	}
	view := slackapi.HomeTabViewRequest{Type: slackapi.VTHomeTab, Blocks: slackapi.Blocks{BlockSet: blocks}}
	_, err = call(ctx, a, "views.publish", func(ctx context.Context) (*slackapi.ViewResponse, error) {
		return a.api.PublishViewContext(ctx, slackapi.PublishViewContextRequest{UserID: who.UserID, View: view})
	})
	return err
}

package slack

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/kraken-ops/kraken/bot/command"
)

// keepFiles is how many of the files shared in a channel the bot
// remembers: deploy takes the newest archive, or one named.
const keepFiles = 20

// sharedFile is a file shared in a channel, as the store keeps it. The
// content stays in Slack until someone deploys it.
type sharedFile struct {
	ID       string
	Name     string
	Size     int
	Shared   time.Time
	SharedBy string
}

func fileKeyPrefix(team, channel string) string { return team + "/" + channel + "/" }

func unix(sec int64) time.Time {
	if sec <= 0 {
		return time.Now()
	}
	return time.Unix(sec, 0)
}

// rememberFile records a file shared in a channel, and forgets the
// channel's oldest beyond keepFiles. A file seen twice (Slack sends both
// a message and file_shared) is one record.
func (a *App) rememberFile(ctx context.Context, team, channel string, f sharedFile) {
	if f.ID == "" || channel == "" {
		return
	}
	if bot, err := a.botUser(ctx); err == nil && f.SharedBy == bot {
		return // the bot's own pictures
	}
	prefix := fileKeyPrefix(team, channel)
	if _, err := a.files.Update(ctx, prefix+f.ID, func(old sharedFile, ok bool) (sharedFile, error) {
		if ok && f.Name == "" {
			return old, nil
		}
		if ok {
			f.Shared = old.Shared
		}
		return f, nil
	}); err != nil {
		a.logOf(ctx).Warn("shared file not remembered", "file", f.ID, "err", err)
		return
	}
	all, err := a.files.List(ctx, prefix, 0)
	if err != nil || len(all) <= keepFiles {
		return
	}
	newestFirst(all)
	cut := all[keepFiles-1].Shared
	keep := map[string]bool{}
	for _, f := range all[:keepFiles] {
		keep[f.ID] = true
	}
	// A file shared meanwhile is newer than cut, and stays.
	_, _ = a.files.DeleteFunc(ctx, prefix, func(_ string, v sharedFile) bool { return !keep[v.ID] && !v.Shared.After(cut) })
}

func newestFirst(fs []sharedFile) {
	slices.SortStableFunc(fs, func(x, y sharedFile) int {
		return cmp.Or(y.Shared.Compare(x.Shared), cmp.Compare(y.ID, x.ID))
	})
}

// fileShared records a file from a file_shared event, which names only
// its id: files.info says the rest.
func (a *App) fileShared(ctx context.Context, team string, ev event) error {
	channel, _ := ev.channel()
	f, err := a.fileInfo(ctx, ev.FileID)
	if err != nil {
		return err
	}
	user := ev.UserID
	if user == "" {
		user = f.User
	}
	a.rememberFile(ctx, team, channel, sharedFile{ID: f.ID, Name: f.Name, Size: f.Size, SharedBy: user, Shared: unix(int64(f.Created))})
	return nil
}

func (a *App) fileInfo(ctx context.Context, id string) (*slackapi.File, error) {
	return call(ctx, a, "files.info", func(ctx context.Context) (*slackapi.File, error) {
		f, _, _, err := a.api.GetFileInfoContext(ctx, id, 0, 0)
		return f, err
	})
}

// recentFiles are the files shared in a channel, newest first, each
// opened on demand.
func (a *App) recentFiles(ctx context.Context, team, channel string) []command.File {
	all, err := a.files.List(ctx, fileKeyPrefix(team, channel), 0)
	if err != nil {
		a.logOf(ctx).Warn("shared files not read", "err", err)
		return nil
	}
	newestFirst(all)
	out := make([]command.File, 0, len(all))
	for _, f := range all {
		out = append(out, command.File{
			ID: f.ID, Name: f.Name, Size: f.Size, Shared: f.Shared, SharedBy: f.SharedBy,
			Open: func(ctx context.Context, max int64) (io.ReadCloser, error) { return a.openFile(ctx, f.ID, max) },
		})
	}
	return out
}

// errTooBig is a file larger than the reader asked for.
var errTooBig = errors.New("file too large")

// openFile downloads a file with the bot token, at most max bytes.
func (a *App) openFile(ctx context.Context, id string, max int64) (io.ReadCloser, error) {
	f, err := a.fileInfo(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("slack: file %s: %w", id, err)
	}
	if max > 0 && int64(f.Size) > max {
		return nil, fmt.Errorf("slack: file %s is %d bytes: %w", id, f.Size, errTooBig)
	}
	buf, err := call(ctx, a, "files.download", func(ctx context.Context) (*bytes.Buffer, error) {
		w := &capped{max: max}
		return &w.buf, a.api.GetFileContext(ctx, f.URLPrivateDownload, w)
	})
	if err != nil {
		return nil, fmt.Errorf("slack: file %s: %w", id, err)
	}
	return io.NopCloser(buf), nil
}

// capped is a buffer that refuses to grow past max bytes (no limit when
// max <= 0): files.info's size is what the uploader said.
type capped struct {
	buf bytes.Buffer
	max int64
}

func (c *capped) Write(p []byte) (int, error) {
	if c.max > 0 && int64(c.buf.Len()+len(p)) > c.max {
		return 0, errTooBig
	}
	return c.buf.Write(p)
}

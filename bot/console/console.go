// Package console is a terminal transport: one line a message, over the
// command registry. It simulates one chat channel and the people in it,
// so everything the bot does in Slack can be tried on one machine:
// `/kraken <command>` lines go to the registry as slash commands, and
// lines starting with "!" are what would happen around it in Slack
// (the bot invited, people joining, the channel archived, a file shared,
// a button pressed). Replies are printed as plain text.
package console

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/enclave"
)

// Commands is what the console needs of the command registry.
type Commands interface {
	Do(ctx context.Context, req command.Request) command.Reply
	Click(ctx context.Context, k command.Click) command.Reply
	ChannelEvent(ctx context.Context, ev command.ChannelEvent) []command.Post
	Commands() []command.Command
	SubmitSecret(ctx context.Context, s command.SecretSubmission) command.Reply
}

// Config wires a Console.
type Config struct {
	In  io.Reader
	Out io.Writer
	// Commands is the registry. Build it with Channel as its Channels,
	// so that the registry and the console see the same channel.
	Commands Commands
	// Channel is the simulated channel the person types in.
	Channel *Channel
	// User is the simulated person typing; default "you".
	User string
	// ImageDir is where pictures (a tentacle's DAG) are saved, since a
	// terminal can't show them; "" leaves them unsaved.
	ImageDir string
	// Styled forces ANSI styling on or off; nil styles only when Out is
	// a terminal.
	Styled *bool
	Logger *slog.Logger
}

// Console reads lines and answers them. It is not safe for concurrent
// use: a person types one line at a time.
type Console struct {
	cfg     Config
	log     *slog.Logger
	style   style
	prompt  bool
	ch      *Channel
	actor   string
	uploads []command.File // newest first
	// buttons and confirm are the last card's, for !click, !confirm and
	// !cancel; an earlier card's are replaced, as a person would only
	// scroll back so far.
	buttons []command.Button
	confirm *command.Confirm
	// secret is the last secret form, for !secret.
	secret *command.SecretForm
	// live: Run is writing answers out, so progress may go out before
	// the answer it belongs to is complete.
	live bool
}

// New makes a Console.
func New(cfg Config) (*Console, error) {
	if cfg.In == nil || cfg.Out == nil || cfg.Commands == nil || cfg.Channel == nil {
		return nil, errors.New("console: needs In, Out, Commands and Channel")
	}
	cfg.User = cmp.Or(strings.TrimPrefix(cfg.User, "@"), "you")
	if !person.MatchString(cfg.User) {
		return nil, fmt.Errorf("console: %q is not a user name (letters, digits, . _ -)", cfg.User)
	}
	terminal := isTerminal(cfg.Out)
	styled := terminal
	if cfg.Styled != nil {
		styled = *cfg.Styled
	}
	return &Console{
		cfg:    cfg,
		log:    cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		style:  style{on: styled},
		prompt: terminal && isTerminal(cfg.In),
		ch:     cfg.Channel,
		actor:  cfg.User,
	}, nil
}

// isTerminal reports whether f is a character device, a terminal.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	fi, err := file.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Run reads lines until the input ends or !quit (and returns nil) or
// ctx is done (and returns ctx's error). A line runs to its end before
// the next is read; cancelling ctx cancels the line in flight.
func (c *Console) Run(ctx context.Context) error {
	c.live = true
	defer func() { c.live = false }()
	lines := make(chan string)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	// The reader may stay blocked on a terminal after Run returns; it
	// holds nothing, and the process is ending when that happens.
	go func() {
		sc := bufio.NewScanner(c.cfg.In)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-done:
				return
			}
		}
		readErr <- sc.Err()
		close(lines)
	}()
	for {
		if c.prompt {
			if _, err := fmt.Fprint(c.cfg.Out, c.style.dim(fmt.Sprintf("@%s in #%s › ", c.actor, c.ch.Ref().Name))); err != nil {
				return fmt.Errorf("console: %w", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case line, ok := <-lines:
			if !ok {
				if c.prompt {
					fmt.Fprintln(c.cfg.Out) // leave the terminal on a new line
				}
				if err := <-readErr; err != nil {
					return fmt.Errorf("console: read: %w", err)
				}
				return nil
			}
			out, quit := c.Line(ctx, line)
			if _, err := io.WriteString(c.cfg.Out, out); err != nil {
				return fmt.Errorf("console: %w", err)
			}
			if quit {
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
}

// Line answers one line and says whether it asked to quit.
func (c *Console) Line(ctx context.Context, line string) (out string, quit bool) {
	line = strings.TrimSpace(line)
	var b strings.Builder
	switch {
	case line == "" || strings.HasPrefix(line, "#"):
		return "", false // a blank line, or a comment in a script
	case isSlash(line):
		c.slash(ctx, &b, strings.TrimSpace(strings.TrimPrefix(line, "/kraken")))
	case strings.HasPrefix(line, "!"):
		name, arg, _ := strings.Cut(line[1:], " ")
		quit = c.bang(ctx, &b, strings.ToLower(name), strings.TrimSpace(arg))
	default:
		c.hint(&b, line)
	}
	if b.Len() > 0 {
		b.WriteByte('\n')
	}
	return b.String(), quit
}

// isSlash reports whether line is a /kraken command.
func isSlash(line string) bool {
	rest, ok := strings.CutPrefix(line, "/kraken")
	return ok && (rest == "" || unicode.IsSpace(rune(rest[0])))
}

// hint answers a line that is neither a command nor an event. It is not
// run, even when it names a verb: in Slack plain text is a message to
// people, and the console should not teach otherwise.
func (c *Console) hint(b *strings.Builder, line string) {
	if strings.HasPrefix(line, "/") {
		fmt.Fprintf(b, "%s Only /kraken is a command here. Type `/kraken help` for what the bot does, `!help` for the console.\n", c.style.red("✗"))
		return
	}
	verb := strings.ToLower(strings.Fields(line)[0])
	for _, cmd := range c.cfg.Commands.Commands() {
		if cmd.Name == verb {
			fmt.Fprintf(b, "(a message to the channel, which the bot does not read.) To ask the bot, type `/kraken %s`.\n", line)
			return
		}
	}
	b.WriteString("(a message to the channel, which the bot does not read.) `/kraken help` lists what the bot does, `!help` what the console takes.\n")
}

// slash sends a /kraken command to the registry.
func (c *Console) slash(ctx context.Context, b *strings.Builder, text string) {
	if c.closed(b) {
		return
	}
	rep := c.cfg.Commands.Do(ctx, command.Request{
		Actor:   c.principal(),
		Via:     command.ViaConsole,
		Channel: c.ch.Ref(),
		Text:    text,
		Files:   c.uploads,
	})
	c.show(b, c.waited(ctx, b, rep))
}

// waited shows the first words of work that goes on (a run), a line for
// each step of its progress, and waits for the reply that ends it: a
// terminal line can't be updated in place. While Run reads the input,
// the lines go out as they come.
func (c *Console) waited(ctx context.Context, b *strings.Builder, rep command.Reply) command.Reply {
	if rep.Later == nil {
		return rep
	}
	shown := rep.Text
	c.progressLine(b, shown)
	later, last := rep.Later, rep
	for {
		select {
		case r, open := <-later:
			if !open {
				last.Later = nil
				return last.Wait(ctx) // the end, details and all
			}
			last = r
			if r.Progress && r.Text != shown {
				shown = r.Text
				c.progressLine(b, shown)
			}
		case <-ctx.Done():
			last.Later = later
			return last.Wait(ctx)
		}
	}
}

// progressLine shows a line of progress: at once while Run reads the
// input, else with the rest of the answer.
func (c *Console) progressLine(b *strings.Builder, text string) {
	b.WriteString(c.style.dim(c.mrkdwn(text)) + "\n")
	if c.live {
		if _, err := io.WriteString(c.cfg.Out, b.String()); err != nil {
			c.log.Debug("progress not shown", "err", err)
		}
		b.Reset()
	}
}

// closed refuses typing in an archived or deleted channel, as Slack does.
func (c *Console) closed(b *strings.Builder) bool {
	s := c.ch.State()
	switch {
	case s.Deleted:
		fmt.Fprintf(b, "%s #%s was deleted: nothing can be typed in it any more. The bot's direct message still takes !confirm or !cancel. For a fresh start, quit and use a new data directory.\n", c.style.red("✗"), s.Name)
	case s.Archived:
		fmt.Fprintf(b, "%s #%s is archived: no one can type in it. `!unarchive` brings it back.\n", c.style.red("✗"), s.Name)
	default:
		return false
	}
	return true
}

func (c *Console) principal() enclave.Principal {
	return enclave.Principal{TeamID: c.ch.Ref().TeamID, UserID: c.actor}
}

// show renders a reply and remembers its card.
func (c *Console) show(b *strings.Builder, rep command.Reply) {
	c.render(b, rep)
	if len(rep.Buttons) > 0 {
		c.buttons = rep.Buttons
	}
	if rep.Confirm != nil {
		c.confirm = rep.Confirm
	}
	if rep.Secret != nil {
		c.secret = rep.Secret
	}
}

// posts shows what the bot said on its own after a channel event.
func (c *Console) posts(b *strings.Builder, posts []command.Post) {
	for i, p := range posts {
		if i > 0 {
			b.WriteByte('\n')
		}
		if p.User != "" {
			b.WriteString(c.style.dim(fmt.Sprintf("(direct message to @%s)", p.User)) + "\n")
		}
		c.show(b, p.Reply)
	}
}

// person is a user name as typed after "@".
var person = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// user reads "@name" (or "name").
func user(arg string) (string, bool) {
	u := strings.TrimPrefix(strings.TrimSpace(arg), "@")
	return u, person.MatchString(u)
}

const help = `The console is one Slack channel on this machine. Type:
  /kraken <command>   a slash command to the bot (/kraken help lists them)
  !invite             invite the bot to the channel (it offers to make an enclave)
  !click N            press button N of the bot's last card
  !confirm [name]     confirm the bot's last confirmation card (the name when it asks for one)
  !cancel             cancel it
  !secret VALUE       fill in the bot's last secret form (in Slack a private form; here, this line)
  !upload PATH        share a tentacle folder (packed as .tar.gz), or a .tar.gz/.zip, in the channel;
                      then /kraken deploy deploys it
  !as @person         act as someone else, to try who may do what (!as alone: yourself again)
  !join @person       someone joins the channel; !leave [@person] leaves it
  !rename NAME        rename the channel
  !archive, !unarchive, !delete   what the channel's owner can do in Slack
  !help, !quit        this text; leave (Ctrl-D too)
`

// bang handles a "!" line: what happens around the bot in Slack.
func (c *Console) bang(ctx context.Context, b *strings.Builder, name, arg string) (quit bool) {
	fail := func(format string, args ...any) {
		fmt.Fprintf(b, "%s %s\n", c.style.red("✗"), fmt.Sprintf(format, args...))
	}
	event := func(k command.ChannelEventKind, who string) {
		c.posts(b, c.cfg.Commands.ChannelEvent(ctx, command.ChannelEvent{Kind: k, Channel: c.ch.Ref(), User: who, Via: command.ViaConsole}))
	}
	// change applies a change to the channel, then tells the registry.
	change := func(f func(s *ChannelState) error, k command.ChannelEventKind, who, said string) {
		if err := c.ch.change(f); err != nil {
			fail("%s", err)
			return
		}
		b.WriteString(c.style.dim(said) + "\n")
		event(k, who)
	}
	open := func(s *ChannelState) error { return writable(*s) }
	switch name {
	case "help", "?":
		b.WriteString(help)
	case "quit", "exit", "q":
		return true
	case "invite":
		if c.closed(b) {
			return false
		}
		b.WriteString(c.style.dim(fmt.Sprintf("@%s invited the bot to #%s.", c.actor, c.ch.Ref().Name)) + "\n")
		event(command.BotJoined, c.actor)
	case "join", "leave":
		who, ok := c.actor, true
		if arg != "" {
			who, ok = user(arg)
		}
		if !ok {
			fail("Name a person, like `!%s @alex`.", name)
			return false
		}
		if name == "join" {
			change(func(s *ChannelState) error {
				if err := open(s); err != nil {
					return err
				}
				s.Members = append(s.Members, who)
				return nil
			}, command.MemberJoined, who, fmt.Sprintf("@%s joined #%s.", who, c.ch.Ref().Name))
			return false
		}
		change(func(s *ChannelState) error {
			if err := open(s); err != nil {
				return err
			}
			before := len(s.Members)
			s.Members = slices.DeleteFunc(s.Members, func(m string) bool { return m == who })
			if len(s.Members) == before {
				return fmt.Errorf("@%s is not in #%s", who, s.Name)
			}
			return nil
		}, command.MemberLeft, who, fmt.Sprintf("@%s left #%s.", who, c.ch.Ref().Name))
	case "archive", "unarchive":
		archive, kind := name == "archive", command.Archived
		if !archive {
			kind = command.Unarchived
		}
		change(func(s *ChannelState) error {
			switch {
			case s.Deleted:
				return errors.New("the channel was deleted")
			case s.Archived == archive:
				return fmt.Errorf("#%s is already %sd", s.Name, name)
			}
			s.Archived = archive
			return nil
		}, kind, "", fmt.Sprintf("@%s %sd #%s.", c.actor, name, c.ch.Ref().Name))
	case "rename":
		to := strings.ToLower(strings.TrimPrefix(arg, "#"))
		if !channelName.MatchString(to) {
			fail("Give the new name, like `!rename payments-team` (lower-case letters, digits, - and _).")
			return false
		}
		from := c.ch.Ref().Name
		change(func(s *ChannelState) error {
			if err := open(s); err != nil {
				return err
			}
			s.Name = to
			return nil
		}, command.Renamed, "", fmt.Sprintf("@%s renamed #%s to #%s.", c.actor, from, to))
	case "delete":
		change(func(s *ChannelState) error {
			if s.Deleted {
				return errors.New("the channel was already deleted")
			}
			s.Deleted = true
			return nil
		}, command.Deleted, "", fmt.Sprintf("@%s deleted #%s.", c.actor, c.ch.Ref().Name))
	case "as":
		who, ok := c.cfg.User, true
		if arg != "" {
			who, ok = user(arg)
		}
		if !ok {
			fail("Name a person, like `!as @alex`.")
			return false
		}
		c.actor = who
		in := "in"
		if !slices.Contains(c.ch.State().Members, who) {
			in = "not in"
		}
		b.WriteString(c.style.dim(fmt.Sprintf("You are now @%s, who is %s #%s.", who, in, c.ch.Ref().Name)) + "\n")
	case "upload":
		if arg == "" {
			fail("Name a tentacle folder or an archive, like `!upload examples/hello-fanout`.")
			return false
		}
		if c.closed(b) {
			return false
		}
		u, err := readUpload(expandHome(arg))
		if err != nil {
			fail("Nothing shared: %v", err)
			return false
		}
		c.uploads = append([]command.File{{
			ID:       "F" + strconv.Itoa(len(c.uploads)+1),
			Name:     u.name,
			Size:     len(u.data),
			Shared:   time.Now(),
			SharedBy: c.actor,
			Open:     u.open,
		}}, c.uploads...)
		fmt.Fprintf(b, "%s\n", c.style.dim(fmt.Sprintf("@%s shared %s (%s) in #%s. `/kraken deploy` deploys it.", c.actor, u.name, size(len(u.data)), c.ch.Ref().Name)))
	case "click":
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 || n > len(c.buttons) {
			if len(c.buttons) == 0 {
				fail("There is no button to press.")
			} else {
				fail("Pick a button from 1 to %d, like `!click 1`.", len(c.buttons))
			}
			return false
		}
		c.click(ctx, b, c.buttons[n-1].Value, "")
	case "confirm", "cancel":
		k := c.confirm
		if k == nil {
			fail("There is nothing to %s.", name)
			return false
		}
		value := k.ConfirmValue
		if name == "cancel" {
			value = k.CancelValue
		}
		if rep := c.click(ctx, b, value, arg); !rep.Failed && c.confirm == k {
			c.confirm = nil // done with: Slack would replace the card
		}
	case "secret":
		form := c.secret
		if form == nil {
			fail("There is no secret form to fill in. `/kraken secret <tentacle> <name>` asks for one.")
			return false
		}
		c.secret = nil
		c.show(b, c.cfg.Commands.SubmitSecret(ctx, command.SecretSubmission{Actor: c.principal(), Via: command.ViaConsole, Token: form.Token, Value: arg}))
	default:
		fail("There is no !%s. `!help` lists what the console takes.", name)
	}
	return false
}

// click presses a button of the bot's last card.
func (c *Console) click(ctx context.Context, b *strings.Builder, value, typed string) command.Reply {
	rep := c.cfg.Commands.Click(ctx, command.Click{
		Actor:   c.principal(),
		Via:     command.ViaConsole,
		Channel: c.ch.Ref(),
		Value:   value,
		Typed:   typed,
	})
	rep = c.waited(ctx, b, rep)
	c.show(b, rep)
	return rep
}

// expandHome reads "~/x" as the shell would, since people type it.
func expandHome(p string) string {
	rest, ok := strings.CutPrefix(p, "~/")
	if !ok {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return p
	}
	return filepath.Join(home, rest)
}

// channelName is a Slack channel name.
var channelName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,79}$`)

func size(n int) string {
	if n < 1<<10 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}

package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/enclave"
)

// ChannelState is what the workspace knows about the simulated channel.
type ChannelState struct {
	TeamID   string
	ID       string
	Name     string
	Members  []string
	Archived bool
	Deleted  bool
}

// Channel is the one chat channel the console simulates. It is the
// workspace the registry asks about (it implements command.Channels), so
// the registry that serves Slack serves the console unchanged. It is safe
// for concurrent use.
type Channel struct {
	mu   sync.Mutex
	s    ChannelState
	path string // where the state is kept; "" keeps it in memory
}

var _ command.Channels = (*Channel)(nil)

// NewChannel makes a channel kept in memory.
func NewChannel(s ChannelState) *Channel {
	s.Members = sortedSet(s.Members)
	return &Channel{s: s}
}

// OpenChannel reads the channel kept at path, or starts it as initial
// when there is none yet, and keeps every change there. A workspace
// remembers its channels, so a restarted console must too: otherwise an
// archived channel would come back unarchived while its enclave stays
// frozen.
func OpenChannel(path string, initial ChannelState) (*Channel, error) {
	c := NewChannel(initial)
	c.path = path
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := c.save(); err != nil {
			return nil, err
		}
		return c, nil
	case err != nil:
		return nil, fmt.Errorf("console: read channel: %w", err)
	}
	var s ChannelState
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("console: read channel %s: %w", path, err)
	}
	s.Members = sortedSet(s.Members)
	c.s = s
	return c, nil
}

// State is the channel as it is now.
func (c *Channel) State() ChannelState {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.s
	s.Members = slices.Clone(s.Members)
	return s
}

// Ref is the channel as requests name it.
func (c *Channel) Ref() enclave.Channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	return enclave.Channel{TeamID: c.s.TeamID, ID: c.s.ID, Name: c.s.Name}
}

// Path is where the channel is kept, "" when in memory.
func (c *Channel) Path() string { return c.path }

// change applies f to the state and keeps the result. f's error leaves
// the state as it was.
func (c *Channel) change(f func(s *ChannelState) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.s
	next.Members = slices.Clone(c.s.Members)
	if err := f(&next); err != nil {
		return err
	}
	next.Members = sortedSet(next.Members)
	prev := c.s
	c.s = next
	if err := c.save(); err != nil {
		c.s = prev
		return err
	}
	return nil
}

// save writes the state through a temporary file, so a crash leaves the
// old state or the new. c.mu must be held (or c not yet shared).
func (c *Channel) save() error {
	if c.path == "" {
		return nil
	}
	data, err := json.MarshalIndent(c.s, "", "  ")
	if err != nil {
		return fmt.Errorf("console: save channel: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return fmt.Errorf("console: save channel: %w", err)
	}
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("console: save channel: %w", err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		return fmt.Errorf("console: save channel: %w", err)
	}
	return nil
}

// refusal is a workspace error with words for people, which the
// registry shows as they are.
type refusal string

func (r refusal) Error() string { return string(r) }
func (r refusal) Plain() string { return string(r) }

// check reports a request for a channel other than this one, as the
// workspace would for a channel it does not have.
func (c *Channel) check(ch enclave.Channel) error {
	if ch.ID != c.s.ID || (ch.TeamID != "" && ch.TeamID != c.s.TeamID) {
		return refusal("there is no such channel")
	}
	return nil
}

// Members lists the people in the channel (the bot is not counted).
func (c *Channel) Members(_ context.Context, ch enclave.Channel) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check(ch); err != nil {
		return nil, err
	}
	if c.s.Deleted {
		return nil, refusal("the channel was deleted")
	}
	return slices.Clone(c.s.Members), nil
}

// Info says the channel's name and whether it is archived or deleted.
func (c *Channel) Info(_ context.Context, ch enclave.Channel) (command.ChannelInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check(ch); err != nil {
		return command.ChannelInfo{}, err
	}
	return command.ChannelInfo{Name: c.s.Name, Archived: c.s.Archived, Deleted: c.s.Deleted}, nil
}

// Invite adds a person to the channel.
func (c *Channel) Invite(_ context.Context, ch enclave.Channel, user string) error {
	return c.change(func(s *ChannelState) error {
		if err := c.check(ch); err != nil {
			return err
		}
		if err := writable(*s); err != nil {
			return err
		}
		s.Members = append(s.Members, user)
		return nil
	})
}

// Kick removes a person from the channel.
func (c *Channel) Kick(_ context.Context, ch enclave.Channel, user string) error {
	return c.change(func(s *ChannelState) error {
		if err := c.check(ch); err != nil {
			return err
		}
		if err := writable(*s); err != nil {
			return err
		}
		if !slices.Contains(s.Members, user) {
			return refusal("they are not in the channel")
		}
		s.Members = slices.DeleteFunc(s.Members, func(m string) bool { return m == user })
		return nil
	})
}

// writable refuses changes to an archived or deleted channel, as the
// workspace does.
func writable(s ChannelState) error {
	switch {
	case s.Deleted:
		return refusal("the channel was deleted")
	case s.Archived:
		return refusal("the channel is archived")
	}
	return nil
}

func sortedSet(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}

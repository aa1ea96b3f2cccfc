package enclave

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Service applies what happens to enclaves (people's decisions and their
// channels' events) to the cluster, through the lifecycle's rules. It
// does not decide who may do what: callers check Decide first.
type Service struct {
	Cluster Cluster
	// Exoskeleton is the services each enclave gets a space on; nil for
	// none.
	Exoskeleton *Exoskeleton
}

// ErrChannelHasEnclave means a channel asked for a second enclave.
var ErrChannelHasEnclave = errors.New("this channel already has an enclave")

// ByChannel finds the enclave of a channel, or ErrNotFound. A channel has
// at most one enclave; a terminating one still counts until it is gone.
func (s *Service) ByChannel(ctx context.Context, ch Channel) (Enclave, error) {
	all, err := s.Cluster.List(ctx)
	if err != nil {
		return Enclave{}, err
	}
	for _, e := range all {
		if e.Channel.ID == ch.ID && e.Channel.TeamID == ch.TeamID && ch.ID != "" {
			return e, nil
		}
	}
	return Enclave{}, fmt.Errorf("channel %s: %w", ch.ID, ErrNotFound)
}

// NameFor makes an enclave name from a channel's name: lower case,
// letters, digits and dashes, at most 63 characters. It returns "" when
// nothing usable is left (a channel named in another script), and the
// caller asks for a name.
func NameFor(channel string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(channel) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	name := strings.Trim(b.String(), "-")
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	if ValidateName(name) != nil {
		return ""
	}
	return name
}

// Provision makes (or finishes making) the channel's enclave, owned by
// owner, with the channel's members and the default mode. A channel whose
// enclave is ready already is ErrChannelHasEnclave; one whose
// provisioning did not finish is provisioned again under its own name,
// whatever name is asked for.
func (s *Service) Provision(ctx context.Context, ch Channel, name, owner string, members []string, p Provenance) (Enclave, error) {
	if existing, err := s.ByChannel(ctx, ch); err == nil {
		if existing.Ready || existing.Terminating {
			return existing, fmt.Errorf("%w: %s", ErrChannelHasEnclave, existing.Name)
		}
		name = existing.Name
	} else if !errors.Is(err, ErrNotFound) {
		return Enclave{}, err
	}
	if err := ValidateName(name); err != nil {
		return Enclave{}, err
	}
	e := Enclave{
		Name:    name,
		Channel: ch,
		Owner:   owner,
		Governance: Governance{
			Members: normalMembers(members),
			Mode:    DefaultMode,
		},
	}
	// The services first: the cluster marks the enclave ready last, so
	// an enclave whose services failed is never taken for ready, and
	// provisioning again finishes both.
	if err := s.Exoskeleton.Open(ctx, name); err != nil {
		return Enclave{}, err
	}
	if err := s.Cluster.Provision(ctx, e, p); err != nil {
		return Enclave{}, err
	}
	return s.Cluster.Get(ctx, name)
}

// Apply applies a lifecycle event that the recorded flags can hold
// (channel archived, unarchived, deleted, owner froze, unfroze, owner
// left, owner transferred) and records the state it leads to. A
// *TransitionError says why the event cannot happen.
func (s *Service) Apply(ctx context.Context, name string, ev Event, p Provenance) (Enclave, error) {
	return s.Cluster.Update(ctx, name, func(e *Enclave) error {
		to, err := Transition(StateOf(*e), ev)
		if err != nil {
			return err
		}
		setState(e, to)
		return nil
	}, p)
}

// setState records a state's flags on an enclave.
func setState(e *Enclave, s State) {
	e.Archived = s.Archived
	e.FrozenByOwner = s.OwnerFrozen
	e.ChannelDeleted = s.ChannelDeleted
	e.NeedsOwner = s.NeedsOwner
	e.Frozen = s.Phase == PhaseFrozen || s.Phase == PhaseFlagged
}

// MemberJoined records that user joined the enclave's channel. The owner
// coming back no longer needs replacing.
func (s *Service) MemberJoined(ctx context.Context, name, user string, p Provenance) (Enclave, error) {
	return s.Cluster.Update(ctx, name, func(e *Enclave) error {
		e.Members = normalMembers(append(e.Members, user))
		if user == e.Owner && e.NeedsOwner {
			to, err := Transition(StateOf(*e), EventOwnerTransferred)
			if err != nil {
				return err
			}
			setState(e, to)
		}
		return nil
	}, p)
}

// MemberLeft records that user left the enclave's channel. When the owner
// leaves, the enclave keeps working and is marked as needing a new owner.
func (s *Service) MemberLeft(ctx context.Context, name, user string, p Provenance) (Enclave, error) {
	return s.Cluster.Update(ctx, name, func(e *Enclave) error {
		e.Members = slices.DeleteFunc(slices.Clone(e.Members), func(m string) bool { return m == user })
		if user == e.Owner {
			to, err := Transition(StateOf(*e), EventOwnerLeft)
			if err != nil {
				return err
			}
			setState(e, to)
		}
		return nil
	}, p)
}

// SyncMembers makes the enclave's members exactly the channel's, and
// marks the enclave as needing a new owner when its owner is not among
// them (or no longer, when they are back). Reconciles call it so a missed
// join or leave does not leave wrong rights in place.
func (s *Service) SyncMembers(ctx context.Context, name string, channelMembers []string, p Provenance) (Enclave, error) {
	members := normalMembers(channelMembers)
	return s.Cluster.Update(ctx, name, func(e *Enclave) error {
		e.Members = members
		ownerIn := slices.Contains(members, e.Owner)
		ev := Event(0)
		switch {
		case !ownerIn && !e.NeedsOwner:
			ev = EventOwnerLeft
		case ownerIn && e.NeedsOwner:
			ev = EventOwnerTransferred
		}
		if ev != 0 {
			to, err := Transition(StateOf(*e), ev)
			if err != nil {
				return err
			}
			setState(e, to)
		}
		return nil
	}, p)
}

// Rename records the channel's new name; the enclave keeps its own.
func (s *Service) Rename(ctx context.Context, name, channelName string, p Provenance) (Enclave, error) {
	return s.Cluster.Update(ctx, name, func(e *Enclave) error {
		e.Channel.Name = channelName
		return nil
	}, p)
}

// SetMode sets the enclave's mode, or tentacle's own mode when tentacle
// is not empty. A nil mode removes a tentacle's own mode.
func (s *Service) SetMode(ctx context.Context, name, tentacle string, m *Mode, p Provenance) (Enclave, error) {
	if m != nil && !m.Valid() {
		return Enclave{}, fmt.Errorf("%w: %s", ErrInvalidMode, *m)
	}
	if tentacle == "" && m == nil {
		return Enclave{}, fmt.Errorf("%w: an enclave always has a mode", ErrInvalidMode)
	}
	return s.Cluster.Update(ctx, name, func(e *Enclave) error {
		if tentacle == "" {
			e.Mode = *m
			return nil
		}
		modes := make(map[string]Mode, len(e.TentacleModes)+1)
		for k, v := range e.TentacleModes {
			modes[k] = v
		}
		if m == nil {
			delete(modes, tentacle)
		} else {
			modes[tentacle] = *m
		}
		e.TentacleModes = modes
		return nil
	}, p)
}

// SetRequireIdentity sets whether people must have signed in
// (Principal.HasIdentity) before changing or running anything in the
// enclave. Decide applies it; the owner changes it with OpIdentity.
func (s *Service) SetRequireIdentity(ctx context.Context, name string, require bool, p Provenance) (Enclave, error) {
	return s.Cluster.Update(ctx, name, func(e *Enclave) error {
		e.RequireIdentity = require
		return nil
	}, p)
}

// ErrNotMember means someone who is not in the channel was named where a
// member is needed.
var ErrNotMember = errors.New("not a member of the channel")

// Transfer gives the enclave to newOwner, who must be in its channel. The
// previous owner stays a member if they still are one.
func (s *Service) Transfer(ctx context.Context, name, newOwner string, p Provenance) (Enclave, error) {
	return s.Cluster.Update(ctx, name, func(e *Enclave) error {
		if !e.IsMember(newOwner) {
			return fmt.Errorf("%w: %s", ErrNotMember, newOwner)
		}
		if newOwner == e.Owner {
			return fmt.Errorf("%w: they already own it", ErrInvalidTransition)
		}
		to, err := Transition(StateOf(*e), EventOwnerTransferred)
		if err != nil {
			return err
		}
		e.Owner = newOwner
		setState(e, to)
		return nil
	}, p)
}

// Deprovision removes the enclave and everything in it, once its owner
// has confirmed. The lifecycle decides whether it may start.
func (s *Service) Deprovision(ctx context.Context, name string, p Provenance) error {
	e, err := s.Cluster.Get(ctx, name)
	if err != nil {
		return err
	}
	if _, err := Transition(StateOf(e), EventDeprovisionConfirmed); err != nil {
		return err
	}
	// The data goes first, while the enclave still exists: if dropping
	// fails part way, deprovisioning again finishes it. The other way
	// round, a failure would leave data that no enclave names.
	if err := s.Exoskeleton.Drop(ctx, name); err != nil {
		return err
	}
	return s.Cluster.Deprovision(ctx, name, p)
}

// Usage says what the enclave keeps on its services, to tell the owner
// what deprovisioning destroys.
func (s *Service) Usage(ctx context.Context, name string) ([]Usage, error) {
	return s.Exoskeleton.Usage(ctx, name)
}

// normalMembers sorts and de-duplicates ids, dropping empty ones.
func normalMembers(ids []string) []string {
	out := slices.DeleteFunc(slices.Clone(ids), func(s string) bool { return s == "" })
	slices.Sort(out)
	return slices.Compact(out)
}

package login

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/kraken-ops/kraken/store"
)

// Record is all that is kept of one person's sign-in: the link, its
// secret, and the claim of a replica refreshing it.
type Record struct {
	Link   Link   `json:"link"`
	Secret Secret `json:"secret"`
	// Refreshing is set while a replica spends the refresh token: the
	// others wait for its outcome instead of spending it too.
	Refreshing *Claim `json:"refreshing,omitempty"`
}

// Claim says that replica By refreshes a record, and until when the
// others wait for it before they take over.
type Claim struct {
	By    string    `json:"by"`
	Until time.Time `json:"until"`
}

// Links is where people's sign-ins live. A bot with one replica keeps
// them in its store (the default); replicas that serve the same people
// share one, so that a sign-in through one is a sign-in on all.
type Links interface {
	// Get returns the record under key; false when there is none.
	Get(ctx context.Context, key string) (Record, bool, error)
	// Update calls change with the record under key (false when there is
	// none) and writes what it returns: the record, or its deletion when
	// change returns false. It is a compare-and-swap: when someone else
	// wrote the record in between, change is called again with theirs,
	// so change must do nothing but decide. A result equal to what change
	// was given need not be written. An error from change is returned as
	// it is, and nothing is written.
	Update(ctx context.Context, key string, change func(cur Record, ok bool) (Record, bool, error)) error
}

// storeLinks keeps links in a plain bucket of the store and their
// secrets in a Vault, which is how one replica has always kept them. The
// store file belongs to one process, so a mutex is compare-and-swap
// enough.
type storeLinks struct {
	log   *slog.Logger
	links *store.Bucket[storedLink]
	vault Vault

	mu     sync.Mutex
	warned bool
}

// storedLink is a link as the store keeps it (the JSON of the link alone
// before claims existed, so older stores read the same).
type storedLink struct {
	Link
	Refreshing *Claim `json:"refreshing,omitempty"`
}

// NewStoreLinks keeps links in db's bucket "login_links" and their
// secrets in vault (nil: the sealed bucket "login_secrets" of db, which
// needs the store opened with a keyring). A store without a keyring
// keeps no refresh tokens at all, never in the clear: links then last as
// long as their ID token.
func NewStoreLinks(db *store.DB, vault Vault, log *slog.Logger) Links {
	if vault == nil {
		vault = store.NewSealedBucket[Secret](db, secretsBucket)
	}
	if log == nil {
		log = slog.Default()
	}
	return &storeLinks{log: log, links: store.NewBucket[storedLink](db, linksBucket), vault: vault}
}

func (s *storeLinks) Get(ctx context.Context, key string) (Record, bool, error) {
	l, ok, err := s.links.Get(ctx, key)
	if err != nil || !ok {
		return Record{}, false, err
	}
	sec, _, err := s.vault.Get(ctx, key)
	// A secret that does not open is no secret: the link expires at its
	// next refresh and the person signs in again.
	if err != nil && !errors.Is(err, store.ErrSealed) && !errors.Is(err, store.ErrNoKeyring) {
		return Record{}, false, err
	}
	return Record{Link: l.Link, Secret: sec, Refreshing: l.Refreshing}, true, nil
}

func (s *storeLinks) Update(ctx context.Context, key string, change func(Record, bool) (Record, bool, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok, err := s.Get(ctx, key)
	if err != nil {
		return err
	}
	next, keep, err := change(cur, ok)
	if err != nil {
		return err
	}
	if keep == ok && reflect.DeepEqual(cur, next) {
		return nil
	}
	// Writes outlive the request that made them: a refresh token spent
	// at the provider must be kept even if its asker went away.
	ctx = context.WithoutCancel(ctx)
	if !keep {
		if err := s.vault.Delete(ctx, key); err != nil && !errors.Is(err, store.ErrNoKeyring) {
			return err
		}
		return s.links.Delete(ctx, key)
	}
	// The secret goes first: a link whose secret is missing only expires
	// early, while a stale secret under a new link would refresh someone
	// else's session.
	if next.Secret != cur.Secret {
		if err := s.keep(ctx, key, next.Secret); err != nil {
			return err
		}
	}
	return s.links.Put(ctx, key, storedLink{Link: next.Link, Refreshing: next.Refreshing})
}

// keep seals a secret, or forgets the old one when there is none.
func (s *storeLinks) keep(ctx context.Context, key string, sec Secret) error {
	if sec.empty() {
		if err := s.vault.Delete(ctx, key); err != nil && !errors.Is(err, store.ErrNoKeyring) {
			return err
		}
		return nil
	}
	err := s.vault.Put(ctx, key, sec)
	if errors.Is(err, store.ErrNoKeyring) {
		if !s.warned {
			s.warned = true
			s.log.Warn("login: the store has no key, so refresh tokens are not kept; people sign in again when their ID token expires")
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("keep the refresh token: %w", err)
	}
	return nil
}

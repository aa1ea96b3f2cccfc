package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kraken-ops/kraken/bot/login"
	"github.com/kraken-ops/kraken/store"
)

// DefaultIdentitiesSecret is Config.IdentitiesSecret when unset: the
// chart's name for it with the default release ("<fullname>-identities").
const DefaultIdentitiesSecret = "kraken-identities"

// maxIdentities leaves room under the API server's 1 MiB limit on a
// Secret's data for the object's metadata.
const maxIdentities = 1<<20 - 16<<10

// identitiesMaxConflicts bounds how often Update starts again after
// another writer came first. Every sign-in, refresh and logout of every
// person writes the one Secret, so conflicts between replicas are
// ordinary; a long run of them means something else writes it.
const identitiesMaxConflicts = 20

// Errors callers branch on.
var (
	// ErrIdentitiesMissing: the Secret Config.IdentitiesSecret is not in
	// the bot's namespace; the chart creates it, and the bot may not.
	ErrIdentitiesMissing = errors.New("k8s: the sign-ins' Secret is missing")
	// ErrIdentitiesFull: one more sign-in does not fit in the Secret.
	ErrIdentitiesFull = errors.New("k8s: the sign-ins' Secret is full")
)

// Identities keeps people's sign-ins (login.Links) in one Secret of the
// bot's namespace, so that every replica of the bot sees them: one data
// key per person ("<team>.<user>"), each value the person's
// login.Record as JSON sealed with the store's keyring and bound to the
// Secret's namespace, name and data key, so that a reader of the Secret
// without the store key learns nothing but who is signed in, and a value
// copied under another person's key does not open. Writes are
// compare-and-swap on the Secret's resourceVersion.
//
// A sealed record takes about 300 bytes plus its refresh token's length
// (321 with the test provider's; TestIdentitiesShared logs it), so the
// Secret holds about 3000 people whose provider issues short refresh
// tokens, about 800 with 1 KB ones. Past that, a sign-in fails with
// ErrIdentitiesFull, the person is told, and nothing already kept is
// lost.
//
// Reads come from the last copy of the Secret this replica read or wrote
// while it is younger than identitiesFresh: a request then pays no API
// call, and a logout through another replica takes effect here within
// that time (a sign-in, at once: a person missing from the copy is
// looked up afresh). Writes always read the Secret afresh.
type Identities struct {
	c     *Client
	ring  *store.Keyring
	where string

	mu   sync.Mutex
	last map[string][]byte // the Secret's data as last seen; never changed in place
	at   time.Time         // when it was seen
}

// identitiesFresh is how long a read of the Secret answers Get: short
// enough that a logout on one replica is one on all within a moment,
// long enough that a burst of requests costs one read of the Secret
// (about 10 ms and 1 MB of allocations with 500 people in it, against
// 5 µs from the copy; measured by BenchmarkIdentitiesCurrent).
const identitiesFresh = time.Second

var _ login.Links = (*Identities)(nil)

// Identities returns the sign-ins kept in the Secret
// Config.IdentitiesSecret, sealed with ring.
func (c *Client) Identities(ring *store.Keyring) (*Identities, error) {
	if ring == nil {
		return nil, fmt.Errorf("k8s: the sign-ins in Secret %s/%s: %w", c.cfg.BotNamespace, c.cfg.IdentitiesSecret, store.ErrNoKeyring)
	}
	return &Identities{c: c, ring: ring, where: "k8s Secret " + c.cfg.BotNamespace + "/" + c.cfg.IdentitiesSecret}, nil
}

// dataKey is where the Secret keeps key ("<team>/<user>"). Slack ids
// are letters and digits, so "." can stand for "/" one-to-one.
func dataKey(key string) (string, error) {
	team, user, ok := strings.Cut(key, "/")
	if !ok || !idPart(team) || !idPart(user) {
		return "", fmt.Errorf("k8s: sign-in key %q is not <team>/<user> of letters, digits, '-' and '_'", key)
	}
	return team + "." + user, nil
}

func idPart(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// Get returns the sign-in under key. One sealed under a key the store's
// keyring does not hold is an error wrapping store.ErrSealed.
func (s *Identities) Get(ctx context.Context, key string) (login.Record, bool, error) {
	dk, err := dataKey(key)
	if err != nil {
		return login.Record{}, false, err
	}
	data, err := s.data(ctx, false)
	if err != nil {
		return login.Record{}, false, err
	}
	sealed, ok := data[dk]
	if !ok {
		// Someone who just signed in through another replica is signed
		// in here at once: only a logout waits for the copy to age.
		if data, err = s.data(ctx, true); err != nil {
			return login.Record{}, false, err
		}
		sealed, ok = data[dk]
	}
	if !ok {
		return login.Record{}, false, nil
	}
	r, err := s.open(dk, sealed)
	if err != nil {
		return login.Record{}, false, err
	}
	return r, true, nil
}

// Update is login.Links' compare-and-swap: it reads the Secret, calls
// change with key's record and writes the result with the
// resourceVersion it read; when another write came in between (any
// person's), it reads again and calls change again. A record that does
// not open with the keyring is taken as absent, so that signing in again
// replaces it.
func (s *Identities) Update(ctx context.Context, key string, change func(login.Record, bool) (login.Record, bool, error)) error {
	dk, err := dataKey(key)
	if err != nil {
		return err
	}
	secrets := s.c.cs.CoreV1().Secrets(s.c.cfg.BotNamespace)
	for try := range identitiesMaxConflicts {
		sec, err := secrets.Get(ctx, s.c.cfg.IdentitiesSecret, metav1.GetOptions{})
		if err != nil {
			return s.error("read", err)
		}
		s.seen(maps.Clone(sec.Data))
		var cur login.Record
		sealed, ok := sec.Data[dk]
		if ok {
			if cur, err = s.open(dk, sealed); err != nil {
				s.c.log.Warn("k8s: a sign-in does not open with the store's key; it counts as signed out", "key", dk, "err", err)
				cur, ok = login.Record{}, false
			}
		}
		next, keep, err := change(cur, ok)
		if err != nil {
			return err
		}
		if keep == ok && reflect.DeepEqual(cur, next) {
			return nil
		}
		if sec.Data == nil {
			sec.Data = map[string][]byte{}
		}
		if keep {
			plain, err := json.Marshal(next)
			if err != nil {
				return fmt.Errorf("k8s: sign-in %s: %w", dk, err)
			}
			if sec.Data[dk], err = s.ring.Seal(s.where, dk, plain); err != nil {
				return fmt.Errorf("k8s: sign-in %s: %w", dk, err)
			}
		} else {
			delete(sec.Data, dk)
		}
		if size := dataSize(sec.Data); size > maxIdentities {
			return fmt.Errorf("%w: %d sign-ins would take %d bytes of Secret %s/%s, over the %d it holds; people who signed in long ago can sign out (/kraken logout) to make room",
				ErrIdentitiesFull, len(sec.Data), size, s.c.cfg.BotNamespace, s.c.cfg.IdentitiesSecret, maxIdentities)
		}
		// sec carries the resourceVersion read above: the API server
		// refuses the write with 409 if anyone wrote in between.
		wrote, err := secrets.Update(ctx, sec, metav1.UpdateOptions{FieldManager: FieldManager})
		if apierrors.IsConflict(err) {
			if err := afterConflict(ctx, try); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return s.error("write", err)
		}
		s.seen(wrote.Data)
		return nil
	}
	return fmt.Errorf("k8s: the sign-ins' Secret %s/%s changed under %d writes in a row; is something else writing it?",
		s.c.cfg.BotNamespace, s.c.cfg.IdentitiesSecret, identitiesMaxConflicts)
}

// data is the Secret's data, read again when the last read is stale or
// afresh is set.
func (s *Identities) data(ctx context.Context, afresh bool) (map[string][]byte, error) {
	s.mu.Lock()
	last, at := s.last, s.at
	s.mu.Unlock()
	if !afresh && last != nil && time.Since(at) < identitiesFresh {
		return last, nil
	}
	sec, err := s.c.cs.CoreV1().Secrets(s.c.cfg.BotNamespace).Get(ctx, s.c.cfg.IdentitiesSecret, metav1.GetOptions{})
	if err != nil {
		return nil, s.error("read", err)
	}
	s.seen(sec.Data)
	return sec.Data, nil
}

// seen keeps data as the latest copy of the Secret; data must not be
// changed afterwards.
func (s *Identities) seen(data map[string][]byte) {
	if data == nil {
		data = map[string][]byte{}
	}
	s.mu.Lock()
	s.last, s.at = data, time.Now()
	s.mu.Unlock()
}

// open unseals and decodes one person's record.
func (s *Identities) open(dk string, sealed []byte) (login.Record, error) {
	plain, err := s.ring.Open(s.where, dk, sealed)
	if err != nil {
		return login.Record{}, fmt.Errorf("k8s: sign-in %s in Secret %s/%s does not open with the store's key (was the store key changed without keeping the old one as a previous key?): %w",
			dk, s.c.cfg.BotNamespace, s.c.cfg.IdentitiesSecret, err)
	}
	var r login.Record
	if err := json.Unmarshal(plain, &r); err != nil {
		// The error is about the JSON's shape, never its content.
		return login.Record{}, fmt.Errorf("k8s: sign-in %s in Secret %s/%s: decode: %w", dk, s.c.cfg.BotNamespace, s.c.cfg.IdentitiesSecret, err)
	}
	return r, nil
}

// dataSize is what the API server counts against a Secret's limit, and
// the keys.
func dataSize(data map[string][]byte) int {
	n := 0
	for k, v := range data {
		n += len(k) + len(v)
	}
	return n
}

func (s *Identities) error(verb string, err error) error {
	ns, name := s.c.cfg.BotNamespace, s.c.cfg.IdentitiesSecret
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w from namespace %s: install it with the chart, or create it empty (kubectl -n %s create secret generic %s)",
			ErrIdentitiesMissing, ns, ns, name)
	}
	return apiError(verb+" the sign-ins' Secret "+ns+"/"+name, err)
}

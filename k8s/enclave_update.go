package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

// Namespace annotations that record an enclave's Governance. The
// namespace is the record every replica of the bot reads, so who may do
// what lives beside the enclave itself.
const (
	// AnnotationMembers is a JSON array of Slack user ids.
	AnnotationMembers = "kraken.dev/members"
	// AnnotationMode is the enclave's mode as nine letters, rwxrwx---.
	AnnotationMode = "kraken.dev/mode"
	// AnnotationTentacleModes is a JSON object of tentacle name to mode
	// (nine letters).
	AnnotationTentacleModes = "kraken.dev/tentacle-modes"
	// The channel facts and freeze reasons, "true" or "false".
	AnnotationRequireIdentity = "kraken.dev/require-identity"
	AnnotationArchived        = "kraken.dev/archived"
	AnnotationFrozenByOwner   = "kraken.dev/frozen-by-owner"
	AnnotationChannelDeleted  = "kraken.dev/channel-deleted"
	AnnotationNeedsOwner      = "kraken.dev/needs-owner"
)

// governanceKeys are the annotations governanceAnnotations writes.
var governanceKeys = []string{
	AnnotationMembers, AnnotationMode, AnnotationTentacleModes,
	AnnotationRequireIdentity, AnnotationArchived, AnnotationFrozenByOwner,
	AnnotationChannelDeleted, AnnotationNeedsOwner,
}

// governanceFieldManager owns the annotations Update writes. It is a
// manager of its own, like stateFieldManager, because an apply removes
// the fields its manager owned and left out: Update applying as
// FieldManager would have to send the labels, quota and provenance too.
// Update always sends every one of its annotations the namespace has
// (the recorded value when the change leaves it alone), so it never
// removes one by leaving it out.
const governanceFieldManager = FieldManager + "-governance"

// damagedMode is how a mode that is missing from the record, or does not
// parse, reads: not valid, so authorization allows nothing but the
// owner-only ops (setting the mode again among them). Defaulting it
// would silently hand out rights nobody gave.
const damagedMode enclave.Mode = 0xffff

// ErrNotUpdatable means an Update's change edited something Update does
// not record: the enclave's name, channel or team id, quota, readiness,
// termination or creation time.
var ErrNotUpdatable = errors.New("not something an enclave update can change")

// updateTries bounds how often Update writes when other writers keep
// coming in between its read and its write. Each try that fails did so
// because another write landed, so a burst of n concurrent updates of
// one enclave (a channel that many people join at once) needs up to n
// tries; the jittered pauses between tries spread them out well before.
const updateTries = 8

// Update records a change to the enclave's owner, channel name, frozen
// state and Governance (see enclave.Cluster). It reads the namespace,
// runs change on the enclave it records, and applies the annotations
// that changed with the namespace's UID and resourceVersion: the apply
// fails rather than overwrite a write that came in between, and Update
// then reads again and runs change again, up to updateTries times.
//
// Nothing is written when change changes nothing. A value change leaves
// alone is written back as recorded, even one that does not parse: a
// damaged mode stays damaged (and allows only the owner-only ops) until
// someone sets it, instead of being rewritten as some default. A frozen
// state that changes is recorded with who changed it and when, as
// SetFrozen does; a half-made enclave stays in state provisioning.
//
// enclave.ErrNotFound when there is no such enclave or it was deleted
// (or replaced) meanwhile, ErrTerminating while it is being removed, and
// ErrNotUpdatable when change edits a field Update does not write. An
// error from change is returned as it is.
func (c *Client) Update(ctx context.Context, name string, change func(e *enclave.Enclave) error, p enclave.Provenance) (enclave.Enclave, error) {
	op := "update enclave " + name
	if change == nil {
		return enclave.Enclave{}, fmt.Errorf("%s: no change given", op)
	}
	at := p.At
	if at.IsZero() {
		at = time.Now()
	}
	var uid string
	pause := 10 * time.Millisecond
	for try := 1; ; try++ {
		ns, err := c.enclaveNamespace(ctx, name, op)
		if err != nil {
			return enclave.Enclave{}, err
		}
		if uid != "" && string(ns.UID) != uid {
			// The enclave Update began with was deleted and another made
			// under its name: that one is not the change's to edit.
			return enclave.Enclave{}, fmt.Errorf("%s: %w: it was deleted and made again while updating", op, enclave.ErrNotFound)
		}
		uid = string(ns.UID)
		if ns.DeletionTimestamp != nil {
			return enclave.Enclave{}, fmt.Errorf("%s: %w", op, ErrTerminating)
		}
		cur := c.enclaveFrom(ns)
		next := cloneEnclave(cur)
		if err := change(&next); err != nil {
			return enclave.Enclave{}, err
		}
		if err := checkUpdatable(cur, next); err != nil {
			return enclave.Enclave{}, fmt.Errorf("%s: %w", op, err)
		}
		ann, changed, err := c.updateAnnotations(ns, cur, next, p.Actor, at)
		if err != nil {
			return enclave.Enclave{}, fmt.Errorf("%s: %w", op, err)
		}
		if len(changed) == 0 {
			return cur, nil
		}
		cfg := corev1ac.Namespace(name).
			WithUID(ns.UID).
			// The resourceVersion makes the apply a compare-and-swap: it
			// fails with a conflict when anything wrote the namespace
			// since the read, instead of overwriting that write with
			// values computed from the record before it.
			WithResourceVersion(ns.ResourceVersion).
			WithAnnotations(ann)
		res, err := c.cs.CoreV1().Namespaces().Apply(ctx, cfg, metav1.ApplyOptions{FieldManager: governanceFieldManager, Force: true})
		switch {
		case err == nil:
			got := c.enclaveFrom(res)
			c.log.Info("enclave updated", "enclave", name, "changed", changed, "actor", p.Actor, "channel", p.Channel, "tries", try)
			return got, nil
		case apierrors.IsNotFound(err) || uidChanged(err):
			return enclave.Enclave{}, fmt.Errorf("%s: %w", op, enclave.ErrNotFound)
		case !apierrors.IsConflict(err):
			return enclave.Enclave{}, apiError(op, err)
		case try == updateTries:
			return enclave.Enclave{}, fmt.Errorf("%s: gave up after %d tries, the enclave kept changing under it; try again: %w", op, try, err)
		}
		c.log.Debug("enclave changed while updating it, trying again", "enclave", name, "try", try)
		// Jittered, so the writers that collided don't collide again.
		wait := pause/2 + rand.N(pause/2+1)
		select {
		case <-ctx.Done():
			return enclave.Enclave{}, fmt.Errorf("%s: %w", op, ctx.Err())
		case <-time.After(wait):
		}
		pause = min(2*pause, 320*time.Millisecond)
	}
}

// cloneEnclave copies e deeply enough that a change to the copy's
// members or tentacle modes does not reach e.
func cloneEnclave(e enclave.Enclave) enclave.Enclave {
	e.Members = slices.Clone(e.Members)
	e.TentacleModes = maps.Clone(e.TentacleModes)
	return e
}

// checkUpdatable refuses a change to what Update does not record.
func checkUpdatable(cur, next enclave.Enclave) error {
	var why string
	switch {
	case next.Name != cur.Name:
		why = fmt.Sprintf("the name (%s to %s): an enclave is not renamed, it is provisioned anew", cur.Name, next.Name)
	case next.Channel.ID != cur.Channel.ID || next.Channel.TeamID != cur.Channel.TeamID:
		why = fmt.Sprintf("the channel (%s/%s to %s/%s): an enclave belongs to the channel that provisioned it",
			cur.Channel.TeamID, cur.Channel.ID, next.Channel.TeamID, next.Channel.ID)
	case next.Quota != cur.Quota:
		why = "the quota: Provision converges it, along with the quota objects that enforce it"
	case next.Ready != cur.Ready || next.Terminating != cur.Terminating || !next.CreatedAt.Equal(cur.CreatedAt):
		why = "readiness, termination or creation time: the cluster says those"
	default:
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNotUpdatable, why)
}

// updateAnnotations are the annotations Update applies to record next,
// read as cur from ns, and the keys among them whose value changes.
//
// Every annotation Update may own is sent when the namespace has it:
// with next's value when next changed it, else as recorded. Leaving one
// out would remove it, should governanceFieldManager be its only owner
// (after an earlier Update changed it).
func (c *Client) updateAnnotations(ns *corev1.Namespace, cur, next enclave.Enclave, actor string, at time.Time) (map[string]string, []string, error) {
	rec := ns.Annotations
	out := map[string]string{}
	var changed []string
	keep := func(k string) {
		if v, ok := rec[k]; ok {
			out[k] = v
		}
	}
	set := func(k, v string) {
		out[k] = v
		if old, ok := rec[k]; !ok || old != v {
			changed = append(changed, k)
		}
	}
	str := func(k, was, is string) {
		if is != was {
			set(k, is)
		} else {
			keep(k)
		}
	}
	flag := func(k string, was, is bool) {
		if is != was {
			set(k, strconv.FormatBool(is))
		} else {
			keep(k)
		}
	}

	str(AnnotationOwner, cur.Owner, next.Owner)
	str(AnnotationName, cur.Channel.Name, next.Channel.Name)
	if next.Frozen != cur.Frozen {
		set(AnnotationFrozen, strconv.FormatBool(next.Frozen))
		set(AnnotationFrozenBy, actor)
		set(AnnotationFrozenAt, at.UTC().Format(time.RFC3339))
	} else {
		keep(AnnotationFrozen)
		keep(AnnotationFrozenBy)
		keep(AnnotationFrozenAt)
	}
	// The state follows the frozen flag on a ready enclave; a half-made
	// one stays provisioning until Provision finishes it.
	if readyState(rec[AnnotationState]) {
		set(AnnotationState, map[bool]string{true: StateFrozen, false: StateActive}[next.Frozen])
	}

	g, h := cur.Governance, next.Governance
	tmDamaged := false
	if v, ok := rec[AnnotationTentacleModes]; ok {
		var raw map[string]string
		tmDamaged = json.Unmarshal([]byte(v), &raw) != nil
	}
	if h.Mode != g.Mode {
		text, err := h.Mode.MarshalText()
		if err != nil {
			return nil, nil, fmt.Errorf("the enclave's mode: %w", err)
		}
		set(AnnotationMode, string(text))
	} else {
		keep(AnnotationMode)
	}
	// Unreadable tentacle modes make the enclave's mode read as damaged
	// (see readGovernance). Setting the mode is how the owner repairs
	// that, so it rewrites them too: what could not be read is dropped,
	// or the repair would not take.
	if !maps.Equal(h.TentacleModes, g.TentacleModes) || tmDamaged && h.Mode != g.Mode {
		v, err := encodeTentacleModes(h.TentacleModes, g.TentacleModes, rec[AnnotationTentacleModes])
		if err != nil {
			return nil, nil, err
		}
		if tmDamaged {
			c.log.Warn("enclave's unreadable tentacle modes dropped as its mode is set again", "enclave", ns.Name, "was", rec[AnnotationTentacleModes])
		}
		set(AnnotationTentacleModes, v)
	} else {
		keep(AnnotationTentacleModes)
	}
	if !slices.Equal(h.Members, g.Members) {
		set(AnnotationMembers, encodeMembers(h.Members))
	} else {
		keep(AnnotationMembers)
	}
	flag(AnnotationRequireIdentity, g.RequireIdentity, h.RequireIdentity)
	flag(AnnotationArchived, g.Archived, h.Archived)
	flag(AnnotationFrozenByOwner, g.FrozenByOwner, h.FrozenByOwner)
	flag(AnnotationChannelDeleted, g.ChannelDeleted, h.ChannelDeleted)
	flag(AnnotationNeedsOwner, g.NeedsOwner, h.NeedsOwner)
	return out, changed, nil
}

// governanceAnnotations records g; an invalid mode is an error, since
// what is recorded must be what someone chose.
func governanceAnnotations(g enclave.Governance) (map[string]string, error) {
	mode, err := g.Mode.MarshalText()
	if err != nil {
		return nil, fmt.Errorf("the enclave's mode: %w", err)
	}
	tm, err := encodeTentacleModes(g.TentacleModes, nil, "")
	if err != nil {
		return nil, err
	}
	return map[string]string{
		AnnotationMembers:         encodeMembers(g.Members),
		AnnotationMode:            string(mode),
		AnnotationTentacleModes:   tm,
		AnnotationRequireIdentity: strconv.FormatBool(g.RequireIdentity),
		AnnotationArchived:        strconv.FormatBool(g.Archived),
		AnnotationFrozenByOwner:   strconv.FormatBool(g.FrozenByOwner),
		AnnotationChannelDeleted:  strconv.FormatBool(g.ChannelDeleted),
		AnnotationNeedsOwner:      strconv.FormatBool(g.NeedsOwner),
	}, nil
}

func encodeMembers(ids []string) string {
	if ids == nil {
		ids = []string{} // [] rather than null: the record says "none"
	}
	b, _ := json.Marshal(ids) // a []string always marshals
	return string(b)
}

// encodeTentacleModes writes modes as a JSON object of nine-letter
// modes. An invalid mode is refused, except one that was recorded so
// (in was, read from the annotation raw) and is kept as it was: a
// damaged tentacle mode stays damaged until someone sets it.
func encodeTentacleModes(modes, was map[string]enclave.Mode, raw string) (string, error) {
	var rawModes map[string]string
	_ = json.Unmarshal([]byte(raw), &rawModes) // only consulted for damaged entries
	out := make(map[string]string, len(modes))
	for name, m := range modes {
		text, err := m.MarshalText()
		if err != nil {
			old, recorded := was[name]
			v, ok := rawModes[name]
			if !recorded || old != m || !ok {
				return "", fmt.Errorf("tentacle %s's mode: %w", name, err)
			}
			out[name] = v
			continue
		}
		out[name] = string(text)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", fmt.Errorf("tentacle modes: %w", err)
	}
	return string(b), nil
}

// readGovernance reads the governance annotations back. It fails
// closed: a mode that is missing or does not parse reads as damagedMode;
// members that do not parse read as none (so nobody is a member by
// mistake); tentacle modes that do not parse make the enclave's mode
// read as damaged too, since dropping them would widen what the
// tentacles allow; a flag that is neither "true" nor "false" reads as
// true, the reading that allows less. Each is logged, so an operator
// learns the record is damaged.
func readGovernance(ns *corev1.Namespace, log *slog.Logger) enclave.Governance {
	a := ns.Annotations
	damaged := func(what, value string, err error) {
		log.Error("enclave record damaged: "+what, "enclave", ns.Name, "value", value, "err", err)
	}
	g := enclave.Governance{Mode: damagedMode}
	if v, ok := a[AnnotationMode]; ok {
		if err := g.Mode.UnmarshalText([]byte(v)); err != nil {
			g.Mode = damagedMode
			damaged("its mode does not parse; only the owner-only ops are allowed until the owner sets it", v, err)
		}
	} else {
		damaged("it has no mode; only the owner-only ops are allowed until the owner sets one", "", nil)
	}
	if v, ok := a[AnnotationMembers]; ok {
		if err := json.Unmarshal([]byte(v), &g.Members); err != nil {
			g.Members = nil
			damaged("its members do not parse; it has none until they are synced again", v, err)
		}
	}
	if len(g.Members) == 0 {
		g.Members = nil
	}
	if v, ok := a[AnnotationTentacleModes]; ok {
		var raw map[string]string
		if err := json.Unmarshal([]byte(v), &raw); err != nil {
			g.Mode = damagedMode
			damaged("its tentacle modes do not parse; only the owner-only ops are allowed until the owner sets the mode", v, err)
		}
		for name, s := range raw {
			var m enclave.Mode
			if err := m.UnmarshalText([]byte(s)); err != nil {
				m = damagedMode
				damaged("tentacle "+name+"'s mode does not parse", s, err)
			}
			if g.TentacleModes == nil {
				g.TentacleModes = make(map[string]enclave.Mode, len(raw))
			}
			g.TentacleModes[name] = m
		}
	}
	flag := func(k string) bool {
		v, ok := a[k]
		if !ok {
			return false
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			damaged(k+" is neither true nor false; read as true", v, err)
			return true
		}
		return b
	}
	g.RequireIdentity = flag(AnnotationRequireIdentity)
	g.Archived = flag(AnnotationArchived)
	g.FrozenByOwner = flag(AnnotationFrozenByOwner)
	g.ChannelDeleted = flag(AnnotationChannelDeleted)
	g.NeedsOwner = flag(AnnotationNeedsOwner)
	return g
}

package k8s

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/tentacle"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// SetSecret sets one secret of a deployed tentacle, or removes it when
// value is empty, keeping the others, then restarts the tentacle (its
// engine reads its secrets when it starts). The value is stored as
// Deploy stores a string secret, as JSON, so the tentacle's nodes see
// ctx.secrets[key] === value. It is never logged: the log, the errors and
// the objects' annotations name the key only.
//
// Only that key of the Secret NAME-secrets is written, with a JSON merge
// patch conditional on the resourceVersion read (a concurrent change
// makes it read again), so the bot never reads the Secret's values. Under
// server-side apply's field ownership the key is then the bot's through
// an Update of FieldManager, not through the Apply that Deploy makes:
//
//   - a Deploy without secrets (a deploy from Slack, a rollback) leaves the
//     Secret alone, so every secret set here is kept;
//   - a Deploy with secrets replaces the keys deploys applied, and keeps
//     the keys last written here unless it sets them too: one that sets
//     such a key to another value takes it over (a later deploy without
//     it removes it), one that sets the same value shares it.
//
// The key must be a name Deploy accepts (letters, digits, '-', '_', '.',
// not starting with '.', at most 253 characters), the value UTF-8 of at
// most maxSecretValue bytes (tentacle.ErrTooLarge); nothing is sent
// otherwise. tentacle.ErrNotDeployed when the tentacle has no
// Deployment; ErrNameClash when the Secret of that name is not the
// tentacle's. A Secret that went missing is made again (its pods wait
// for it). When the secret was written but the restart failed, the error
// says so: restarting is then the remedy.
//
// Requests: two metadata GETs (the Deployment and the Secret), the
// patch, and Restart's patch; one create more when the Secret is missing.
func (t *Tentacles) SetSecret(ctx context.Context, enc, name, key, value string, p enclave.Provenance) error {
	op := fmt.Sprintf("set a secret of tentacle %s in enclave %s", name, enc)
	if err := tentacle.CheckSecretKey(key); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	removing := value == ""
	if removing {
		op = fmt.Sprintf("remove secret %s of tentacle %s in enclave %s", key, name, enc)
	} else {
		op = fmt.Sprintf("set secret %s of tentacle %s in enclave %s", key, name, enc)
	}
	if err := tentacle.CheckSecretValue(value); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var data []byte // nil removes the key: null in the merge patch
	if !removing {
		data, _ = json.Marshal(value) // a valid string always encodes
	}
	const attempts = 10
	for i := 1; ; i++ {
		err := t.writeSecretKey(ctx, enc, name, key, data, op)
		if err == nil {
			break
		}
		if !errors.Is(err, errStale) {
			return err
		}
		if i == attempts {
			return fmt.Errorf("%s: %w: the Secret %s kept changing while it was written; try again", op, ErrConflict, secretName(name))
		}
		// Others are writing it too (another secret, a deploy): let
		// them finish, at a random moment so as not to meet again.
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", op, ctx.Err())
		case <-time.After(time.Duration(rand.Int64N(int64(i) * int64(20*time.Millisecond)))):
		}
	}
	by := cmp.Or(p.Actor, "system")
	t.log.Info("tentacle secret changed", "enclave", enc, "tentacle", name, "secret", key, "removed", removing, "by", by)
	if err := t.Restart(ctx, enc, name, p); err != nil {
		done := "set"
		if removing {
			done = "removed"
		}
		return fmt.Errorf("%s: the secret is %s, but the tentacle did not restart, so it does not use the change yet (restart it): %w", op, done, err)
	}
	return nil
}

// errStale means the Secret changed (or appeared, or went) between the
// read and the write: read again.
var errStale = errors.New("the Secret changed")

// writeSecretKey reads the tentacle's Deployment and Secret as metadata
// and patches one key of the Secret (data nil: removes it), on condition
// that the Secret is still as read; errStale when it is not.
func (t *Tentacles) writeSecretKey(ctx context.Context, enc, name, key string, data []byte, op string) error {
	sname := secretName(name)
	var sec *metav1.PartialObjectMetadata
	err := parallel(
		func() error {
			dep, err := t.meta.Resource(gvrDeployments).Namespace(enc).Get(ctx, name, metav1.GetOptions{})
			return tentaclesObject(dep, err, name, op)
		},
		func() (err error) {
			sec, err = t.meta.Resource(gvrSecrets).Namespace(enc).Get(ctx, sname, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				sec, err = nil, nil
			}
			return apiError(op+": read Secret "+sname, err)
		},
	)
	if err != nil {
		return err
	}
	var rv string
	switch {
	case sec == nil:
		// Deployed, and its pods wait for the Secret: make it again,
		// as Deploy would have, then patch it like any other.
		created, err := t.cs.CoreV1().Secrets(enc).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: sname, Labels: tentacleLabels(enc, name)},
			Type:       corev1.SecretTypeOpaque,
		}, metav1.CreateOptions{FieldManager: FieldManager})
		if apierrors.IsAlreadyExists(err) {
			return errStale
		}
		if err != nil {
			return apiError(op+": create Secret "+sname, err)
		}
		t.log.Info("tentacle Secret was missing and is made again", "enclave", enc, "tentacle", name)
		rv = created.ResourceVersion
	case !isTentacles(sec.Labels, name):
		return clashError(op, "Secret", sname, name)
	default:
		rv = sec.ResourceVersion
	}
	// The resourceVersion makes the patch conditional: the labels just
	// checked are still the Secret's when it applies.
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": rv},
		"data":     map[string]any{key: data}, // []byte: base64; nil: null
	})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	_, err = t.cs.CoreV1().Secrets(enc).Patch(ctx, sname, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: FieldManager})
	switch {
	case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		return errStale
	case apierrors.IsRequestEntityTooLargeError(err) || apierrors.IsInvalid(err) && tooLong(err):
		return fmt.Errorf("%s: %w: with this value the tentacle's secrets would be more than the %s a Secret may hold", op, tentacle.ErrTooLarge, sizeText(maxObjectSize))
	}
	// The API's messages about Secrets name keys, never values.
	return apiError(op+": patch Secret "+sname, err)
}

// tooLong reports whether the API server refused an object as too big.
func tooLong(err error) bool {
	var s apierrors.APIStatus
	if !errors.As(err, &s) || s.Status().Details == nil {
		return false
	}
	for _, c := range s.Status().Details.Causes {
		if c.Type == metav1.CauseTypeTooLong {
			return true
		}
	}
	return false
}

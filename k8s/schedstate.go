package k8s

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ScheduleStateConfigMap names the ConfigMap, in Config.BotNamespace,
// that holds the schedules' state every replica shares (pauses, failure
// counts, the marks of handled fires). The chart creates it, so that the
// bot's Role grants only get and update on this one name, never create.
const ScheduleStateConfigMap = "kraken-schedules"

// scheduleStateKey is the binaryData key of the document. The document's
// format is the scheduler's (gzipped JSON): here it is only bytes.
const scheduleStateKey = "state.json.gz"

// maxScheduleState leaves room under the API server's 1 MiB limit for a
// ConfigMap's data for the object's metadata.
const maxScheduleState = 1<<20 - 16<<10

// ErrScheduleStateMissing means the ConfigMap ScheduleStateConfigMap is
// not in the bot's namespace: the chart creates it, and the bot may not.
var ErrScheduleStateMissing = errors.New("k8s: the schedules' shared state ConfigMap " + ScheduleStateConfigMap + " is missing")

// ScheduleState is the schedules' shared state in the ConfigMap
// ScheduleStateConfigMap: schedule.Shared in the cluster.
type ScheduleState struct {
	c *Client
}

// ScheduleState returns the schedules' shared state in the bot's
// namespace.
func (c *Client) ScheduleState() *ScheduleState { return &ScheduleState{c: c} }

// Load returns the document, nil when nothing was written yet.
func (s *ScheduleState) Load(ctx context.Context) ([]byte, error) {
	cm, err := s.c.cs.CoreV1().ConfigMaps(s.c.cfg.BotNamespace).Get(ctx, ScheduleStateConfigMap, metav1.GetOptions{})
	if err != nil {
		return nil, s.error("read", err)
	}
	return cm.BinaryData[scheduleStateKey], nil
}

// maxConflicts bounds how often Update starts again after another
// writer came first: writers are the leader and people resuming, so a
// long run of conflicts means something else is writing the ConfigMap.
const maxConflicts = 20

// Update reads the document, calls change with it and writes the result
// with the resourceVersion it read (compare-and-swap); on a conflict it
// reads again and calls change again. An unchanged document is not
// written.
func (s *ScheduleState) Update(ctx context.Context, change func(current []byte) ([]byte, error)) error {
	cms := s.c.cs.CoreV1().ConfigMaps(s.c.cfg.BotNamespace)
	for try := range maxConflicts {
		cm, err := cms.Get(ctx, ScheduleStateConfigMap, metav1.GetOptions{})
		if err != nil {
			return s.error("read", err)
		}
		cur := cm.BinaryData[scheduleStateKey]
		next, err := change(cur)
		if err != nil {
			return err
		}
		if bytes.Equal(cur, next) {
			return nil
		}
		if len(next) > maxScheduleState {
			return fmt.Errorf("k8s: the schedules' shared state is %d bytes, over the %d a ConfigMap holds", len(next), maxScheduleState)
		}
		if cm.BinaryData == nil {
			cm.BinaryData = map[string][]byte{}
		}
		cm.BinaryData[scheduleStateKey] = next
		// cm carries the resourceVersion read above: the API server
		// refuses the write with 409 if anyone wrote in between.
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: FieldManager})
		if apierrors.IsConflict(err) {
			if err := afterConflict(ctx, try); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return s.error("write", err)
		}
		return nil
	}
	return fmt.Errorf("k8s: the schedules' shared state changed under %d writes in a row; is something else writing ConfigMap %s/%s?",
		maxConflicts, s.c.cfg.BotNamespace, ScheduleStateConfigMap)
}

func (s *ScheduleState) error(verb string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w from namespace %s: install it with the chart, or create it empty (kubectl -n %s create configmap %s)",
			ErrScheduleStateMissing, s.c.cfg.BotNamespace, s.c.cfg.BotNamespace, ScheduleStateConfigMap)
	}
	return apiError(verb+" the schedules' shared state", err)
}

package k8s

import (
	"context"
	"math/rand/v2"
	"time"
)

// afterConflict waits before a compare-and-swap is tried again: a random
// while, longer with each try, since writers that collided would collide
// again at once.
func afterConflict(ctx context.Context, try int) error {
	t := time.NewTimer(rand.N(time.Duration(try+1) * 10 * time.Millisecond))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

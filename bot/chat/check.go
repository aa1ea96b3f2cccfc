package chat

import (
	"context"

	"github.com/kraken-ops/kraken/engine"
)

// Checker validates a tentacle the model wrote and runs its fixtures, as
// engine.Check does.
type Checker interface {
	Check(ctx context.Context, files map[string][]byte) (CheckResult, error)
}

// CheckResult is a Checker's verdict, engine.CheckReport's fields.
type CheckResult struct {
	// OK: the tentacle is valid and every fixture passed.
	OK bool
	// Problems say what is wrong, one per line, in words the model can
	// act on (they are fed back to it for a repair).
	Problems []string
	// Fixtures is how many fixtures ran; Passed how many passed.
	Fixtures, Passed int
}

// CheckFunc adapts a function to a Checker.
type CheckFunc func(ctx context.Context, files map[string][]byte) (CheckResult, error)

// Check calls f.
func (f CheckFunc) Check(ctx context.Context, files map[string][]byte) (CheckResult, error) {
	return f(ctx, files)
}

// EngineChecker is engine.Check as a Checker: the written tentacle is
// validated and its fixtures run with Deno, offline, in a scratch copy.
func EngineChecker(opts engine.CheckOptions) Checker {
	return CheckFunc(func(ctx context.Context, files map[string][]byte) (CheckResult, error) {
		r, err := engine.Check(ctx, files, opts)
		return CheckResult(r), err
	})
}

package k8s

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kraken-ops/kraken/engine"
	"github.com/kraken-ops/kraken/tentacle"
)

// ErrNotAnswering means a run could not reach the tentacle's engine, or
// got no answer in time.
var ErrNotAnswering = errors.New("the tentacle is not answering; check its status")

var _ tentacle.RunWatcher = (*Tentacles)(nil)

// maxRunResult bounds the result body read back from a run.
const maxRunResult = 16 << 20

// RunURL is where the tentacle's engine takes runs, by cluster DNS. It
// leaves out the cluster domain (cluster.local by default, but not
// always): the pod's DNS search list completes <service>.<namespace>.svc.
func RunURL(enc, name string) string {
	return fmt.Sprintf("http://%s.%s.svc:%d/run", name, enc, EnginePort)
}

// runTransport carries runs when Config.RunTransport is nil:
// http.DefaultTransport's settings without its proxy, so that a run's
// input, which may hold anything, never goes to an HTTP(S)_PROXY outside
// the cluster.
func runTransport() http.RoundTripper {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	return tr
}

// refuseRedirects makes the client hand back a redirect answer itself
// instead of following it; Run then refuses it.
func refuseRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Run posts input to the tentacle's /run and returns the engine's
// result as it wrote it: a failed run (HTTP 500 with the result, or with
// {"error": ...} when the executor itself failed) is a result too, not an
// error. tentacle.ErrNotDeployed when the tentacle has no Service;
// ErrNotAnswering when the engine cannot be reached or does not answer
// within Config.RunTimeout. A redirect is refused, not followed: a
// sidecar could otherwise send the run, and its input, to another
// enclave's tentacle, which the person may not run.
func (t *Tentacles) Run(ctx context.Context, enc, name string, input json.RawMessage) (json.RawMessage, error) {
	return t.run(ctx, enc, name, input, nil)
}

// RunWatch is Run, asking the engine to stream the run's node events
// (engine.StreamType) and handing each to progress as it arrives. The
// result is returned as Run returns it; an engine that answers with the
// whole result at once (an older one) gives no progress, only the
// result. A stream cut before its result is ErrNotAnswering.
func (t *Tentacles) RunWatch(ctx context.Context, enc, name string, input json.RawMessage, progress func(tentacle.NodeProgress)) (json.RawMessage, error) {
	if progress == nil {
		progress = func(tentacle.NodeProgress) {}
	}
	return t.run(ctx, enc, name, input, progress)
}

// run is Run, streaming when progress is set.
func (t *Tentacles) run(ctx context.Context, enc, name string, input json.RawMessage, progress func(tentacle.NodeProgress)) (json.RawMessage, error) {
	op := fmt.Sprintf("run tentacle %s in enclave %s", name, enc)
	svc, err := t.meta.Resource(gvrServices).Namespace(enc).Get(ctx, name, metav1.GetOptions{})
	if err := tentaclesObject(svc, err, name, op); err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(input)) == 0 {
		input = json.RawMessage("{}")
	}
	if !json.Valid(input) {
		return nil, fmt.Errorf("%s: the input is not valid JSON", op)
	}
	runCtx, cancel := context.WithTimeout(ctx, t.c.cfg.RunTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(runCtx, http.MethodPost, RunURL(enc, name), bytes.NewReader(input))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if progress != nil {
		req.Header.Set("Accept", engine.StreamType+", application/json;q=0.9")
	}
	transport := t.c.cfg.RunTransport
	if transport == nil {
		transport = t.runTransport
	}
	resp, err := (&http.Client{Transport: transport, CheckRedirect: refuseRedirects}).Do(req)
	if err != nil {
		return nil, t.notAnswering(ctx, runCtx, op, err)
	}
	defer resp.Body.Close()
	if progress != nil && resp.StatusCode == http.StatusOK && isStream(resp.Header.Get("Content-Type")) {
		return t.readStream(ctx, runCtx, op, resp.Body, progress)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRunResult+1))
	if err != nil {
		return nil, t.notAnswering(ctx, runCtx, op, err)
	}
	if len(body) > maxRunResult {
		return nil, fmt.Errorf("%s: the result is larger than %d MiB", op, maxRunResult>>20)
	}
	if resp.StatusCode/100 == 3 {
		return nil, fmt.Errorf("%s: the tentacle answered with a redirect (%s to %q), which is refused: a run goes to the tentacle's own engine only",
			op, resp.Status, excerpt([]byte(resp.Header.Get("Location"))))
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusInternalServerError:
		if !json.Valid(body) {
			return nil, fmt.Errorf("%s: the engine answered %s with something that is not JSON: %q", op, resp.Status, excerpt(body))
		}
		return json.RawMessage(body), nil
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return nil, fmt.Errorf("%s: %w (%s)", op, ErrNotAnswering, resp.Status)
	}
	return nil, fmt.Errorf("%s: the engine answered %s: %q", op, resp.Status, excerpt(body))
}

func isStream(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == engine.StreamType
}

// readStream reads a streamed answer, bounded as a whole result is.
func (t *Tentacles) readStream(ctx, runCtx context.Context, op string, body io.Reader, progress func(tentacle.NodeProgress)) (json.RawMessage, error) {
	res, err := engine.ReadStream(body, maxRunResult, progress)
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, engine.ErrAnswerTooLarge):
		return nil, fmt.Errorf("%s: the result is larger than %d MiB", op, maxRunResult>>20)
	case errors.Is(err, engine.ErrNoResult):
		if ctx.Err() != nil || runCtx.Err() != nil {
			return nil, t.notAnswering(ctx, runCtx, op, err)
		}
		return nil, fmt.Errorf("%s: %w (the engine stopped answering before the run ended)", op, ErrNotAnswering)
	case errors.Is(err, engine.ErrNotAStream):
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	// A read that failed: the connection was cut or timed out.
	return nil, t.notAnswering(ctx, runCtx, op, err)
}

// notAnswering words a failed request: the caller giving up is not the
// tentacle's fault, everything else (refused, no such host, timeout,
// connection cut) is the tentacle not answering.
func (t *Tentacles) notAnswering(ctx, runCtx context.Context, op string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", op, ctx.Err())
	case errors.Is(runCtx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s: %w: no result within %s", op, ErrNotAnswering, t.c.cfg.RunTimeout)
	}
	return fmt.Errorf("%s: %w (%s)", op, ErrNotAnswering, rootCause(err))
}

func excerpt(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}

package k8s

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ErrNotAnswering means a run could not reach the tentacle's engine, or
// got no answer in time.
var ErrNotAnswering = errors.New("the tentacle is not answering; check its status")

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
	transport := t.c.cfg.RunTransport
	if transport == nil {
		transport = t.runTransport
	}
	resp, err := (&http.Client{Transport: transport, CheckRedirect: refuseRedirects}).Do(req)
	if err != nil {
		return nil, t.notAnswering(ctx, runCtx, op, err)
	}
	defer resp.Body.Close()
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

package openai

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// exchange is what one attempt's HTTP round trip showed: go-openai's errors
// carry the status but not the headers, and say nothing when a 200's body
// is what failed.
type exchange struct {
	sent   bool
	status int
	header http.Header
}

type exchangeKey struct{}

// watcher is the HTTP client go-openai is given: it notes the round trip in
// the request context's exchange. The request is made on the caller's
// goroutine, so the note needs no lock.
type watcher struct{ hc *http.Client }

func (w watcher) Do(req *http.Request) (*http.Response, error) {
	ex, _ := req.Context().Value(exchangeKey{}).(*exchange)
	if ex != nil {
		ex.sent = true
	}
	resp, err := w.hc.Do(req)
	if ex != nil && resp != nil {
		ex.status, ex.header = resp.StatusCode, resp.Header
	}
	return resp, err
}

// isDecodeError says whether err is a body that is not the JSON expected,
// as opposed to a body that could not be read.
func isDecodeError(err error) bool {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	// An empty body decodes to io.EOF; a body cut off by a dropped
	// connection to io.ErrUnexpectedEOF, which is worth a retry.
	return errors.As(err, &syntax) || errors.As(err, &typ) || errors.Is(err, io.EOF)
}

const (
	// maxRetryAfter caps how long a Retry-After can make us wait: someone
	// is waiting for the answer, and a server asking for a minute is better
	// reported as unavailable than waited for.
	maxRetryAfter = 10 * time.Second
	baseBackoff   = 500 * time.Millisecond
	maxBackoff    = 8 * time.Second
)

// backoff is how long to wait before the attempt after attempt: what the
// server asked for, capped, or else an exponential delay with jitter, so
// that bots restarted together do not retry in step.
func backoff(attempt int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, maxRetryAfter)
	}
	d := min(baseBackoff<<(attempt-1), maxBackoff)
	return d/2 + rand.N(d/2+1)
}

// retryAfter reads how long the server asked us to wait: retry-after-ms
// (which OpenAI and Azure send, finer than the standard header), else
// Retry-After in seconds or as an HTTP date. Zero if neither says.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	// Far-off answers are clamped before they become a Duration, which
	// they could overflow; backoff caps them much lower anyway.
	const far = 24 * time.Hour
	if ms, err := strconv.ParseFloat(h.Get("Retry-After-Ms"), 64); err == nil && ms > 0 {
		return time.Duration(min(ms, float64(far/time.Millisecond)) * float64(time.Millisecond))
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if !(s > 0) { // NaN too
			return 0
		}
		return time.Duration(min(s, float64(far/time.Second)) * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

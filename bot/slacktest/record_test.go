package slacktest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/kraken-ops/kraken/bot/slacktest"
)

func TestRateLimited(t *testing.T) {
	ctx := context.Background()
	w := newWorkspace(t)

	// Without retries slack-go hands the 429 to its caller as a
	// *RateLimitedError carrying the Retry-After header's value.
	w.srv.FailNext("chat.postMessage", 1, slacktest.RateLimited(1500*time.Millisecond))
	_, _, err := w.api.PostMessageContext(ctx, w.ops.ID, slack.MsgOptionText("x", false))
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second {
		t.Fatalf("error = %#v, want *slack.RateLimitedError{RetryAfter: 2s} (1.5s rounds up)", err)
	}
	c := w.srv.Calls("chat.postMessage")[0]
	if c.Status != http.StatusTooManyRequests || c.Error != "ratelimited" {
		t.Errorf("recorded = %d %q", c.Status, c.Error)
	}
	// On the wire: 429, Retry-After in whole seconds, Slack's error body.
	w.srv.FailNext("auth.test", 1, slacktest.RateLimited(30*time.Second))
	resp, err := http.PostForm(w.srv.APIURL()+"auth.test", url.Values{"token": {w.srv.BotToken()}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "30" || string(body) != `{"error":"ratelimited","ok":false}` {
		t.Errorf("429 answer: %d Retry-After=%q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if len(w.srv.Messages(w.ops.ID)) != 0 {
		t.Error("a rate-limited post was stored")
	}

	// With retries on, slack-go waits Retry-After before trying again.
	retrying := slack.New(w.srv.BotToken(), slack.OptionAPIURL(w.srv.APIURL()),
		slack.OptionRetryConfig(slack.RetryConfig{MaxRetries: 2}))
	w.srv.FailNext("chat.postMessage", 1, slacktest.RateLimited(time.Second))
	if _, _, err := retrying.PostMessageContext(ctx, w.ops.ID, slack.MsgOptionText("after the wait", false)); err != nil {
		t.Fatal(err)
	}
	calls := w.srv.Calls("chat.postMessage")[1:]
	if len(calls) != 2 || calls[0].Status != 429 || !calls[1].OK() {
		t.Fatalf("calls = %+v", calls)
	}
	if gap := calls[1].At.Sub(calls[0].At); gap < time.Second {
		t.Errorf("retried after %s, before Retry-After: 1", gap)
	}
	if ms := w.srv.Messages(w.ops.ID); len(ms) != 1 || ms[0].Text != "after the wait" {
		t.Errorf("messages = %+v", ms)
	}
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	w := newWorkspace(t)
	post := func() error {
		_, _, err := w.api.PostMessageContext(ctx, w.ops.ID, slack.MsgOptionText("x", false))
		return err
	}

	w.srv.FailNext("chat.postMessage", 2, slacktest.Error("channel_not_found"))
	w.srv.FailNext("chat.postMessage", 1, slacktest.HTTPError(http.StatusServiceUnavailable))
	want := []string{"channel_not_found", "channel_not_found", "503", ""}
	for i, w := range want {
		err := post()
		got := slackErr(err)
		var sc slack.StatusCodeError
		if errors.As(err, &sc) {
			got = strconv.Itoa(sc.Code)
		}
		if got != w {
			t.Errorf("call %d: %q, want %q", i, got, w)
		}
	}
	if n := len(w.srv.Messages(w.ops.ID)); n != 1 {
		t.Errorf("%d messages, want the one after the faults", n)
	}

	// Delay holds the answer; a client that gives up first gets its
	// deadline error.
	w.srv.Delay("users.info", time.Minute)
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := w.api.GetUserInfoContext(short, w.alice.ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("delayed call: %v", err)
	}
	w.srv.Delay("users.info", 30*time.Millisecond)
	start := time.Now()
	if _, err := w.api.GetUserInfoContext(ctx, w.alice.ID); err != nil || time.Since(start) < 30*time.Millisecond {
		t.Errorf("delayed call: %v after %s", err, time.Since(start))
	}
	w.srv.Delay("users.info", 0)
}

func TestWaitFor(t *testing.T) {
	w := newWorkspace(t)
	ctx := context.Background()
	_, _, _ = w.api.PostMessageContext(ctx, w.ops.ID, slack.MsgOptionText("first", false))

	// A call made before WaitFor counts.
	c := w.srv.WaitFor(t, "chat.postMessage", nil, time.Second)
	if c.Param("text") != "first" {
		t.Errorf("got %q", c.Param("text"))
	}

	// A later one wakes it up.
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _, _ = w.api.PostMessageContext(ctx, w.ops.ID, slack.MsgOptionText("second", false))
	})
	c = w.srv.WaitFor(t, "chat.postMessage", func(c slacktest.Call) bool { return c.Param("text") == "second" }, 5*time.Second)
	wg.Wait()
	if c.Param("channel") != w.ops.ID || !c.OK() || c.Response["ts"] == "" {
		t.Errorf("call = %+v", c)
	}
	// The state is updated by the time the call is recorded.
	if ms := w.srv.Messages(w.ops.ID); len(ms) != 2 {
		t.Errorf("messages = %+v", ms)
	}

	// JSON bodies are recorded too.
	_, _ = w.api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: w.alice.ID, View: slack.HomeTabViewRequest{Type: slack.VTHomeTab}})
	c = w.srv.WaitFor(t, "views.publish", nil, time.Second)
	if c.Param("user_id") != w.alice.ID || c.JSON["view"] == nil || !strings.Contains(c.Param("view"), `"type":"home"`) {
		t.Errorf("views.publish call = %+v", c)
	}

	// A wait that times out fails the test it was given.
	ft := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.srv.WaitFor(ft, "chat.delete", nil, 20*time.Millisecond)
	}()
	<-done
	if !strings.Contains(ft.msg, "no matching chat.delete call") || !strings.Contains(ft.msg, "chat.postMessage") {
		t.Errorf("failure message = %q", ft.msg)
	}
}

// fatalTB records Fatalf instead of failing the real test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

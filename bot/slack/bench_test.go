package slack_test

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/command"
	"github.com/kraken-ops/kraken/bot/slacktest"
	"github.com/kraken-ops/kraken/store"
)

// latencies collects durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d = append(l.d, d)
}

// report puts the 50th and 99th percentiles in the benchmark's output.
func (l *latencies) report(b *testing.B, prefix string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	at := func(p float64) float64 {
		return float64(l.d[min(len(l.d)-1, int(float64(len(l.d))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), prefix+"p50-ms")
	b.ReportMetric(at(0.99), prefix+"p99-ms")
}

// BenchmarkSlashAck measures how long Slack waits for the bot to
// acknowledge a slash command: signature check, claim in a store on disk
// (one fsync'd write), queue, answer. "rtt" is as the client sees it over
// loopback, "ack" as the handler measures itself (Config.Observe). The
// workers answer every command through its response_url meanwhile, as
// they would, so their store writes compete with the claims.
//
// "parallel" sends as fast as the clients can; "100rps" sends one
// command every 10ms whatever the answers take (an open loop), which is
// the load the bot is sized for. Set KRAKEN_STORE_BENCH_DIR to put the
// store on the disk the bot will use; use -benchtime=2000x or more for a
// meaningful 99th percentile.
func BenchmarkSlashAck(b *testing.B) {
	b.Run("parallel", func(b *testing.B) {
		env := newAckBench(b)
		var rtt latencies
		b.SetParallelism(8) // 8 clients per CPU: more than Slack sends at once
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				rtt.add(env.send(b))
			}
		})
		b.StopTimer()
		rtt.report(b, "rtt-")
		env.ack.report(b, "ack-")
		b.ReportMetric(float64(env.b.counts.get("queue_full")), "queue-full")
	})
	b.Run("100rps", func(b *testing.B) {
		env := newAckBench(b)
		var rtt latencies
		var wg sync.WaitGroup
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		b.ResetTimer()
		for b.Loop() {
			<-tick.C
			wg.Go(func() { rtt.add(env.send(b)) })
		}
		wg.Wait()
		b.StopTimer()
		rtt.report(b, "rtt-")
		env.ack.report(b, "ack-")
	})
}

type ackBench struct {
	w      workspace
	b      *bot
	client *http.Client
	ack    *latencies
}

func newAckBench(b *testing.B) *ackBench {
	w := newWorkspace(b, slacktest.WithWaitTimeout(time.Minute))
	db := openStore(b, filepath.Join(benchDir(b), "kraken.db"))
	b.Cleanup(func() { db.Close() })
	// Like the registry, write one audit entry per request: it competes
	// with the claims for the store's single writer.
	cmds := &fakeCommands{do: func(ctx context.Context, req command.Request) command.Reply {
		if _, err := db.AppendAudit(ctx, store.AuditEntry{Actor: req.Actor.UserID, Verb: "whoami", Via: req.Via}); err != nil && ctx.Err() == nil {
			b.Error(err)
		}
		return command.Reply{Text: "ok", Private: true}
	}}
	ack := &latencies{}
	cfg := newConfig(b, w.srv, db, cmds)
	cfg.Workers = 8
	cfg.Observe = func(kind string, d time.Duration) {
		if kind == "commands" {
			ack.add(d)
		}
	}
	bt := startBot(b, w.srv, cfg)
	tr := &http.Transport{MaxIdleConnsPerHost: 256}
	b.Cleanup(tr.CloseIdleConnections)
	return &ackBench{w: w, b: bt, client: &http.Client{Transport: tr}, ack: ack}
}

// send sends one signed slash command and returns how long the answer
// took.
func (e *ackBench) send(b *testing.B) time.Duration {
	c := e.w.srv.SlashCommand(slacktest.SlashCommand{Command: "/kraken", Text: "whoami", UserID: e.w.alice.ID, ChannelID: e.w.ops.ID})
	req := e.w.srv.SignedRequest(e.b.url+"/slack/commands", c.Body(), time.Now())
	start := time.Now()
	resp, err := e.client.Do(req)
	if err != nil {
		b.Error(err)
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if resp.StatusCode != http.StatusOK {
		b.Errorf("status %d", resp.StatusCode)
	}
	return d
}

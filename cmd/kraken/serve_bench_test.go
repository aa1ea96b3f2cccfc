package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kraken-ops/kraken/bot/slacktest"
	"github.com/kraken-ops/kraken/k8s/k8stest"
	"github.com/kraken-ops/kraken/k8s/k8stest/botenv"
	"k8s.io/client-go/rest"
)

// BenchmarkServeAck measures `kraken serve` as Slack meets it: the built
// binary, as its ServiceAccount on the test control plane, answering
// signed slash commands sent at 100 a second for 30 seconds (the rate and
// length KRAKEN_BENCH_RATE and KRAKEN_BENCH_SECONDS change). It reports
// the acknowledgement latency, that every command was answered exactly
// once, and the process's resident memory idle before the load and
// after it.
func BenchmarkServeAck(b *testing.B) {
	rate := envInt(b, "KRAKEN_BENCH_RATE", 100)
	seconds := envInt(b, "KRAKEN_BENCH_SECONDS", 30)
	bin := k8stest.BuildKraken(b)
	bot := botenv.Install(b)
	srv := slacktest.New(b, slacktest.WithWaitTimeout(time.Minute))
	alice := srv.AddUser(slacktest.User{Name: "alice"})
	ops := srv.AddChannel(slacktest.Channel{Name: "ops", Members: []string{srv.BotUserID(), alice.ID}})

	dir := b.TempDir()
	kubeconfig := filepath.Join(dir, "bot.kubeconfig")
	if err := os.WriteFile(kubeconfig, tokenKubeconfig(b, bot.Rest), 0o600); err != nil {
		b.Fatal(err)
	}
	httpAddr, adminAddr := freeAddr(b), freeAddr(b)
	cmd := exec.Command(bin, "serve")
	cmd.Env = []string{
		"KUBECONFIG=" + kubeconfig,
		"KRAKEN_DATA=" + filepath.Join(dir, "kraken.db"),
		"KRAKEN_HTTP_ADDR=" + httpAddr, "KRAKEN_ADMIN_ADDR=" + adminAddr,
		"KRAKEN_IMAGE=kraken:bench", "KRAKEN_NAMESPACE=" + bot.Options.Namespace,
		"KRAKEN_SERVICE_ACCOUNT=" + bot.Options.ServiceAccount, "KRAKEN_ENCLAVE_ROLE=" + bot.Options.EnclaveRole(),
		"SLACK_BOT_TOKEN=" + srv.BotToken(), "SLACK_SIGNING_SECRET=" + srv.SigningSecret(), "SLACK_API_URL=" + srv.APIURL(),
		"KRAKEN_STORE_KEY=" + keyText(1),
		"HOME=" + dir, "PATH=" + os.Getenv("PATH"),
	}
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if b.Failed() {
			b.Logf("kraken serve's log:\n%s", log.String())
		}
	})
	waitReady(b, "http://"+adminAddr+"/readyz")
	time.Sleep(3 * time.Second) // let start-up garbage go
	idle := rssMB(b, cmd.Process.Pid)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	url := "http://" + httpAddr + "/slack/commands"
	n := rate * seconds
	commands := make([]slacktest.SlashCommand, n)
	for i := range commands {
		commands[i] = srv.SlashCommand(slacktest.SlashCommand{Command: "/kraken", Text: "whoami", UserID: alice.ID, ChannelID: ops.ID})
	}
	lat := make([]time.Duration, n)
	var failures sync.Map
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		wg.Go(func() {
			body := commands[i].Body()
			req := srv.SignedRequest(url, body, time.Now())
			t0 := time.Now()
			resp, err := client.Do(req)
			lat[i] = time.Since(t0)
			if err != nil {
				failures.Store(i, err.Error())
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failures.Store(i, resp.Status)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	errorsSeen := 0
	failures.Range(func(k, v any) bool {
		if errorsSeen < 5 {
			b.Logf("command %v: %v", k, v)
		}
		errorsSeen++
		return true
	})
	// Every command is answered once: one response each, none twice.
	deadline := time.Now().Add(2 * time.Minute)
	answered := map[string]int{}
	for time.Now().Before(deadline) {
		answered = map[string]int{}
		for _, r := range srv.Responses("") {
			if !strings.Contains(r.Text, "Working on it") {
				answered[r.URL]++
			}
		}
		if len(answered) >= n {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	missing, dup := 0, 0
	for _, c := range commands {
		switch answered[c.ResponseURL] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	after := rssMB(b, cmd.Process.Pid)
	slices.Sort(lat)
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(p(0.5), "ack-p50-ms")
	b.ReportMetric(p(0.99), "ack-p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "ack-max-ms")
	b.ReportMetric(float64(errorsSeen), "errors")
	b.ReportMetric(float64(missing), "unanswered")
	b.ReportMetric(float64(dup), "duplicates")
	b.ReportMetric(idle, "idle-rss-MB")
	b.ReportMetric(after, "rss-after-load-MB")
	fmt.Fprintf(os.Stderr, "kraken serve: %d slash commands at %d/s: ack p50 %.2f ms, p99 %.2f ms (goal < 100 ms), %d errors, %d unanswered, %d answered twice; RSS idle %.1f MB (goal < 60 MB), after the load %.1f MB\n",
		n, rate, p(0.5), p(0.99), errorsSeen, missing, dup, idle, after)
	if errorsSeen > 0 || missing > 0 || dup > 0 {
		b.Errorf("%d errors, %d unanswered, %d answered twice", errorsSeen, missing, dup)
	}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q is not a positive number", name, v)
	}
	return n
}

// tokenKubeconfig writes rc (a bearer token and the API server's CA) as
// a kubeconfig, so the binary authenticates exactly as the bot's
// ServiceAccount.
func tokenKubeconfig(b *testing.B, rc *rest.Config) []byte {
	ca := rc.TLSClientConfig.CAData
	if len(ca) == 0 && rc.TLSClientConfig.CAFile != "" {
		var err error
		if ca, err = os.ReadFile(rc.TLSClientConfig.CAFile); err != nil {
			b.Fatal(err)
		}
	}
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: bot
  user:
    token: %s
contexts:
- name: test
  context: {cluster: test, user: bot}
current-context: test
`, rc.Host, base64.StdEncoding.EncodeToString(ca), rc.BearerToken)
}

func freeAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitReady(b *testing.B, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for ctx.Err() == nil {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("%s never answered 200", url)
}

// rssMB is a process's resident memory (VmRSS) in MB.
func rssMB(b *testing.B, pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				b.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// Command bench measures the engine and prints the figures the project
// tracks, with their goals: `make bench` runs it.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kraken-ops/kraken/engine"
	"github.com/kraken-ops/kraken/tentacle"
)

func main() {
	kraken := flag.String("kraken", "bin/kraken", "the kraken binary to measure")
	runs := flag.Int("runs", 500, "warm runs to time")
	flag.Parse()
	if err := run(*kraken, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(kraken string, runs int) error {
	deno, err := engine.FindDeno("", os.Getenv)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kraken-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	chain := filepath.Join(dir, "chain")
	if err := writeChain(chain); err != nil {
		return err
	}

	fmt.Println("The Kraken engine benchmarks (2-core machine; wall clock)")
	fmt.Println()
	warm, rss, err := warmChain(kraken, deno, chain, runs)
	if err != nil {
		return err
	}
	cold, err := processChain(deno, chain, dir, 20)
	if err != nil {
		return err
	}
	validate, err := validate1000(dir, 50)
	if err != nil {
		return err
	}
	row := func(what string, got, goal string, ok bool) {
		verdict := "ok"
		if !ok {
			verdict = "MISSED"
		}
		fmt.Printf("%-58s %14s   goal %-10s %s\n", what, got, goal, verdict)
	}
	row("warm 3-node chain, POST /run end to end, p50", ms(pct(warm, 50)), "< 3 ms", pct(warm, 50) < 3*time.Millisecond)
	row("warm 3-node chain, POST /run end to end, p99", ms(pct(warm, 99)), "", true)
	row("engine overhead per node (p50 / 3)", ms(pct(warm, 50)/3), "", true)
	row("same chain as 3 separate `deno run` processes, p50", ms(pct(cold, 50)), "", true)
	fmt.Printf("%-58s %13.1fx\n", "ratio separate processes / warm engine (p50)", float64(pct(cold, 50))/float64(pct(warm, 50)))
	row("validate + compile a 1,000-node workflow, p50", ms(pct(validate, 50)), "< 50 ms", pct(validate, 50) < 50*time.Millisecond)
	row("engine idle RSS with its Deno worker", fmt.Sprintf("%.1f MB", float64(rss)/1e6), "< 80 MB", rss < 80e6)
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d.Microseconds())/1000) }

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func writeChain(dir string) error {
	files := map[string]string{
		"workflow.yaml": `name: bench-chain
version: "1.0"
nodes:
  a: {path: ./nodes/a.ts}
  b: {path: ./nodes/b.ts}
  c: {path: ./nodes/c.ts}
edges:
  - {from: a, to: b}
  - {from: b, to: c}
`,
		"nodes/a.ts": "export default async function run(_ctx: unknown, input: { n?: number }) { return { n: (input.n ?? 0) + 1 }; }\n",
		"nodes/b.ts": "export default async function run(_ctx: unknown, input: { n: number }) { return { n: input.n * 2 }; }\n",
		"nodes/c.ts": "export default async function run(_ctx: unknown, input: { n: number }) { return { n: input.n - 1 }; }\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// warmChain starts `kraken engine` on the chain, times POST /run, then
// lets it idle and reads the resident memory of it and its worker.
func warmChain(kraken, deno, chain string, runs int) ([]time.Duration, int64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, 0, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(kraken, "engine", "--workflow", chain, "--port", strconv.Itoa(port), "--addr", "127.0.0.1", "--deno", deno)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Timeout: 10 * time.Second}
	if err := waitHealthy(client, url); err != nil {
		return nil, 0, err
	}
	post := func() error {
		resp, err := client.Post(url+"/run", "application/json", strings.NewReader(`{"n":1}`))
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"c":{"n":3}`)) {
			return fmt.Errorf("run failed: %d %s", resp.StatusCode, body)
		}
		return nil
	}
	for range 50 { // warm the worker, the JIT and the connection
		if err := post(); err != nil {
			return nil, 0, err
		}
	}
	times := make([]time.Duration, 0, runs)
	for range runs {
		start := time.Now()
		if err := post(); err != nil {
			return nil, 0, err
		}
		times = append(times, time.Since(start))
	}
	time.Sleep(3 * time.Second)
	rss, err := treeRSS(cmd.Process.Pid)
	return times, rss, err
}

func waitHealthy(client *http.Client, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := client.Get(url + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("engine did not become healthy at %s", url)
}

// treeRSS sums VmRSS over pid and its descendants.
func treeRSS(pid int) (int64, error) {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state, ppid, ...
		rest := stat[bytes.LastIndexByte(stat, ')')+2:]
		fields := strings.Fields(string(rest))
		if len(fields) > 1 {
			ppid, _ := strconv.Atoi(fields[1])
			children[ppid] = append(children[ppid], p)
		}
	}
	var total int64
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = append(queue[1:], children[p]...)
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				total += kb * 1000
			}
		}
	}
	if total == 0 {
		return 0, fmt.Errorf("no memory figures for pid %d", pid)
	}
	return total, nil
}

// processChain runs the chain the naive way: one `deno run` per node,
// passing JSON from one to the next, as a process-per-node design would.
func processChain(deno, chain, dir string, runs int) ([]time.Duration, error) {
	script := filepath.Join(dir, "one.ts")
	body := `const mod = await import(Deno.args[0]);
const out = await mod.default({}, JSON.parse(Deno.args[1]));
console.log(JSON.stringify(out));
`
	if err := os.WriteFile(script, []byte(body), 0o644); err != nil {
		return nil, err
	}
	cache := filepath.Join(dir, "deno-cache")
	one := func(node, input string) (string, error) {
		cmd := exec.Command(deno, "run", "--no-prompt", "--no-remote", "--no-npm", "--no-config",
			"--allow-read="+chain, script, "file://"+filepath.Join(chain, "nodes", node+".ts"), input)
		cmd.Env = []string{"DENO_DIR=" + cache, "DENO_NO_UPDATE_CHECK=1", "NO_COLOR=1"}
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	var times []time.Duration
	for i := range runs + 2 {
		start := time.Now()
		v := `{"n":1}`
		for _, node := range []string{"a", "b", "c"} {
			var err error
			if v, err = one(node, v); err != nil {
				return nil, fmt.Errorf("deno run %s: %w", node, err)
			}
		}
		if v != `{"n":3}` {
			return nil, fmt.Errorf("process chain returned %s", v)
		}
		if i >= 2 { // the first runs fill Deno's cache
			times = append(times, time.Since(start))
		}
	}
	return times, nil
}

// validate1000 generates a layered 1,000-node workflow with its node
// files and times parse + validation + compile.
func validate1000(dir string, runs int) ([]time.Duration, error) {
	var b strings.Builder
	b.WriteString("name: big\nversion: \"1.0\"\nnodes:\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "  n%04d:\n    path: ./nodes/n.ts\n", i)
	}
	b.WriteString("edges:\n")
	for i := 10; i < 1000; i++ {
		fmt.Fprintf(&b, "  - {from: n%04d, to: n%04d}\n", i-10, i)
		if i%3 == 0 {
			fmt.Fprintf(&b, "  - {from: n%04d, to: n%04d}\n", i-7, i)
		}
	}
	big := filepath.Join(dir, "big")
	if err := os.MkdirAll(filepath.Join(big, "nodes"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(big, "workflow.yaml"), []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(big, "nodes", "n.ts"), []byte("export default async function run() { return 1; }\n"), 0o644); err != nil {
		return nil, err
	}
	var times []time.Duration
	for range runs {
		start := time.Now()
		wf, err := tentacle.Load(big)
		if err != nil {
			return nil, err
		}
		if _, err := engine.Compile(wf); err != nil {
			return nil, err
		}
		times = append(times, time.Since(start))
	}
	return times, nil
}

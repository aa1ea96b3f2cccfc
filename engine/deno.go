package engine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/tentacle"
)

//go:embed harness/harness.ts harness/mod.ts
var harnessFS embed.FS

// maxLine bounds one protocol line: an 8 MiB output plus its envelope.
const maxLine = 16 << 20

// DenoConfig configures the worker of one tentacle.
type DenoConfig struct {
	Binary   string
	Workflow *tentacle.Workflow
	// Secrets are handed to the worker over stdin, never by flag or env.
	Secrets map[string]any
	// Services are the rooms granted on the enclave's services, by
	// dependency name; handed over like Secrets.
	Services map[string]enclave.Space
	// WorkDir holds the harness, the nodes' scratch directory and Deno's
	// cache. Empty means a new temporary directory, removed on Close.
	WorkDir string
	// MemoryMB caps the worker's V8 heap; zero means 512.
	MemoryMB int
	// StopGrace is how long a cancelled node may take to let go before
	// its worker is killed and restarted; zero means one second.
	StopGrace time.Duration
	// StartTimeout bounds the worker's start and module loading; zero
	// means 30 seconds.
	StartTimeout time.Duration
	// NoNetwork refuses every connection, even to the contract's hosts:
	// checking a tentacle someone just wrote must not reach anything.
	NoNetwork bool
	Logger    *slog.Logger
}

// Deno runs a tentacle's nodes in one long-lived Deno process, restarted
// when it dies. It implements NodeRunner and is safe for concurrent use.
type Deno struct {
	cfg      DenoConfig
	args     []string
	env      []string
	scratch  string
	initMsg  []byte
	redact   *strings.Replacer
	removeWD bool
	seq      atomic.Uint64

	mu     sync.Mutex
	proc   *process
	closed bool
}

// NewDeno prepares a worker; it starts on Start or on the first node run.
func NewDeno(cfg DenoConfig) (*Deno, error) {
	if cfg.Workflow == nil || cfg.Workflow.Dir == "" {
		return nil, errors.New("deno worker: the workflow must be loaded from a directory")
	}
	if cfg.Binary == "" {
		return nil, fmt.Errorf("deno worker: %w", ErrNoDeno)
	}
	if cfg.MemoryMB <= 0 {
		cfg.MemoryMB = 512
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = time.Second
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Deno{cfg: cfg, redact: secretRedactor(map[string]any{"s": cfg.Secrets, "x": serviceSecrets(cfg.Services)})}
	if d.cfg.WorkDir == "" {
		dir, err := os.MkdirTemp("", "kraken-worker-")
		if err != nil {
			return nil, fmt.Errorf("deno worker: %w", err)
		}
		d.cfg.WorkDir, d.removeWD = dir, true
	}
	if err := d.prepare(); err != nil {
		d.removeWorkDir()
		return nil, err
	}
	return d, nil
}

// prepare writes the harness where nodes cannot change it and computes
// the command line, the environment and the init message once.
func (d *Deno) prepare() error {
	wf := d.cfg.Workflow
	harness := filepath.Join(d.cfg.WorkDir, "harness")
	d.scratch = filepath.Join(d.cfg.WorkDir, "scratch")
	cache := filepath.Join(d.cfg.WorkDir, "cache")
	for _, dir := range []string{harness, d.scratch, cache} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("deno worker: %w", err)
		}
	}
	for _, name := range []string{"harness.ts", "mod.ts"} {
		b, _ := harnessFS.ReadFile("harness/" + name)
		if err := os.WriteFile(filepath.Join(harness, name), b, 0o400); err != nil && !errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("deno worker: write harness: %w", err)
		}
	}
	modURL := "file://" + filepath.Join(harness, "mod.ts")
	importMap, _ := json.Marshal(map[string]any{"imports": map[string]string{"tentacular": modURL, "pipedreamer": modURL}})
	if err := os.WriteFile(filepath.Join(harness, "import_map.json"), importMap, 0o600); err != nil {
		return fmt.Errorf("deno worker: write import map: %w", err)
	}

	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	d.args = []string{"run", "--no-prompt", "--no-remote", "--no-npm", "--no-config", "--no-lock",
		"--import-map=" + filepath.Join(harness, "import_map.json"),
		"--allow-read=" + strings.Join([]string{wf.Dir, harness, d.scratch}, ","),
		"--allow-write=" + d.scratch,
		// A small young generation and V8's size-over-speed tuning keep an
		// idle worker lean; nodes are I/O-bound glue, not hot loops.
		fmt.Sprintf("--v8-flags=--max-old-space-size=%d,--max-semi-space-size=1,--optimize-for-size", d.cfg.MemoryMB),
	}
	hosts, warnings := NetAllowList(wf, d.cfg.Services)
	for _, w := range warnings {
		d.cfg.Logger.Warn(w, "tentacle", wf.Name)
	}
	if len(hosts) > 0 && !d.cfg.NoNetwork {
		d.args = append(d.args, "--allow-net="+strings.Join(hosts, ","))
	}
	d.args = append(d.args, filepath.Join(harness, "harness.ts"), hex.EncodeToString(nonce)+" ")
	d.env = []string{"DENO_DIR=" + cache, "DENO_NO_UPDATE_CHECK=1", "NO_COLOR=1", "TMPDIR=" + d.scratch, "HOME=" + d.scratch}

	nodes := make(map[string]string, len(wf.NodeIDs))
	for _, id := range wf.NodeIDs {
		nodes[id] = "file://" + filepath.Join(wf.Dir, filepath.FromSlash(wf.Nodes[id].Path))
	}
	init, err := json.Marshal(map[string]any{
		"t": "init", "nodes": nodes, "config": wf.Config.ToMap(),
		"secrets": nonNil(d.cfg.Secrets), "deps": dependencyInfo(wf, d.cfg.Secrets, d.cfg.Services),
	})
	if err != nil {
		return fmt.Errorf("deno worker: config or secrets cannot be sent as JSON: %w", err)
	}
	d.initMsg = append(init, '\n')
	return nil
}

func nonNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// Start starts the worker now rather than on the first run, so load errors
// show at start-up and the first run is warm.
func (d *Deno) Start(ctx context.Context) error {
	_, err := d.worker(ctx)
	return err
}

// LoadErrors reports the nodes whose modules did not load in the current
// worker, by node id.
func (d *Deno) LoadErrors() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc == nil {
		return nil
	}
	return d.proc.loadErrors
}

// RunNode runs one attempt of a node in the worker. When ctx ends first,
// the node is asked to stop; if it does not within StopGrace (a busy
// loop), the worker is killed, which fails the other attempts in flight
// too, and the next call starts a fresh one.
func (d *Deno) RunNode(ctx context.Context, call NodeCall) (json.RawMessage, error) {
	p, err := d.worker(ctx)
	if err != nil {
		return nil, &NodeError{Node: call.Node, Kind: KindCrash, Msg: err.Error()}
	}
	id := d.seq.Add(1)
	ch := make(chan reply, 1)
	if !p.register(id, ch) {
		return nil, &NodeError{Node: call.Node, Kind: KindCrash, Msg: p.deathMsg()}
	}
	defer p.unregister(id)
	input := call.Input
	if len(input) == 0 {
		input = json.RawMessage(`{}`)
	}
	msg, err := json.Marshal(map[string]any{"t": "run", "id": id, "node": call.Node, "input": input})
	if err != nil {
		return nil, &NodeError{Node: call.Node, Kind: KindThrow, Msg: "the input is not valid JSON"}
	}
	p.send(msg)
	select {
	case r := <-ch:
		return r.output, r.err
	case <-p.done:
		return nil, &NodeError{Node: call.Node, Kind: KindCrash, Msg: p.deathMsg()}
	case <-ctx.Done():
	}
	cancelMsg, _ := json.Marshal(map[string]any{"t": "cancel", "id": id})
	p.send(cancelMsg)
	t := time.NewTimer(d.cfg.StopGrace)
	defer t.Stop()
	kind := KindCancelled
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		kind = KindTimeout
	}
	select {
	case <-ch:
		return nil, &NodeError{Node: call.Node, Kind: kind}
	case <-p.done:
		return nil, &NodeError{Node: call.Node, Kind: kind, Msg: p.deathMsg()}
	case <-t.C:
		p.kill(fmt.Sprintf("node %s did not stop when asked (is it stuck in a loop?), so the worker was restarted", call.Node))
		return nil, &NodeError{Node: call.Node, Kind: kind, Msg: "it did not stop when asked (is it stuck in a loop?), so its worker was restarted"}
	}
}

// Close stops the worker: it gets its stdin closed and a moment to exit.
func (d *Deno) Close() error {
	d.mu.Lock()
	d.closed = true
	p := d.proc
	d.proc = nil
	d.mu.Unlock()
	if p != nil {
		p.stop(2 * time.Second)
	}
	d.removeWorkDir()
	return nil
}

func (d *Deno) removeWorkDir() {
	if d.removeWD {
		_ = os.RemoveAll(d.cfg.WorkDir)
	}
}

func (d *Deno) worker(ctx context.Context) (*process, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errors.New("the node runtime is shutting down")
	}
	if d.proc != nil && d.proc.usable() {
		return d.proc, nil
	}
	if d.proc != nil {
		d.cfg.Logger.Warn("restarting the node runtime", "tentacle", d.cfg.Workflow.Name, "reason", d.proc.deathMsg())
	}
	p, err := d.start(ctx)
	if err != nil {
		return nil, err
	}
	d.proc = p
	return p, nil
}

type reply struct {
	output json.RawMessage
	err    error
}

// process is one incarnation of the worker.
type process struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	log      *slog.Logger
	redact   *strings.Replacer
	memoryMB int

	writeMu sync.Mutex

	mu         sync.Mutex
	pending    map[uint64]chan reply
	death      string
	oom        bool
	loadErrors map[string]string

	ready chan struct{}
	done  chan struct{}
}

type message struct {
	T          string            `json:"t"`
	ID         uint64            `json:"id"`
	Node       string            `json:"node"`
	Level      string            `json:"level"`
	Msg        string            `json:"msg"`
	Fields     map[string]any    `json:"fields"`
	Output     json.RawMessage   `json:"output"`
	Kind       ErrorKind         `json:"kind"`
	Error      string            `json:"error"`
	LoadErrors map[string]string `json:"loadErrors"`
}

func (d *Deno) start(ctx context.Context) (*process, error) {
	cmd := exec.Command(d.cfg.Binary, d.args...)
	cmd.Env = d.env
	cmd.Dir = d.scratch
	cmd.SysProcAttr = sysProcAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("the node runtime could not start (%s): %w", d.cfg.Binary, err)
	}
	p := &process{
		cmd: cmd, stdin: stdin, redact: d.redact, memoryMB: d.cfg.MemoryMB,
		log:     d.cfg.Logger.With("tentacle", d.cfg.Workflow.Name),
		pending: map[uint64]chan reply{},
		ready:   make(chan struct{}), done: make(chan struct{}),
	}
	nonce := d.args[len(d.args)-1]
	var readers sync.WaitGroup
	readers.Go(func() { p.readStdout(stdout, nonce) })
	readers.Go(func() { p.readStderr(stderr) })
	go func() {
		readers.Wait()
		err := cmd.Wait()
		p.exited(err)
	}()
	p.send(d.initMsg[:len(d.initMsg)-1])

	t := time.NewTimer(d.cfg.StartTimeout)
	defer t.Stop()
	select {
	case <-p.ready:
		for node, msg := range p.loadErrors {
			p.log.Error("node does not load", "node", node, "error", msg)
		}
		return p, nil
	case <-p.done:
		return nil, errors.New(p.deathMsg())
	case <-t.C:
		p.kill("the node runtime did not start within " + d.cfg.StartTimeout.String())
	case <-ctx.Done():
		p.kill("start-up was cancelled")
	}
	<-p.done
	return nil, errors.New(p.deathMsg())
}

func (p *process) send(line []byte) {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	// A failed write means the process is gone; the reader notices and
	// fails everything pending, so the error itself adds nothing.
	_, _ = p.stdin.Write(append(line, '\n'))
}

func (p *process) register(id uint64, ch chan reply) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.death != "" {
		return false
	}
	p.pending[id] = ch
	return true
}

func (p *process) unregister(id uint64) {
	p.mu.Lock()
	delete(p.pending, id)
	p.mu.Unlock()
}

// usable reports whether the process can take new calls: it is neither
// gone nor being killed.
func (p *process) usable() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.death == "" && !p.dead()
}

func (p *process) dead() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) deathMsg() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.death == "" {
		return "the node runtime stopped"
	}
	return p.death
}

// kill records why and kills the process group; the reader goroutines then
// see EOF and fail whatever is pending.
func (p *process) kill(reason string) {
	p.mu.Lock()
	if p.death == "" {
		p.death = reason
	}
	p.mu.Unlock()
	killGroup(p.cmd)
}

func (p *process) stop(grace time.Duration) {
	p.mu.Lock()
	if p.death == "" {
		p.death = "the node runtime was stopped"
	}
	p.mu.Unlock()
	_ = p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(grace):
		killGroup(p.cmd)
		<-p.done
	}
}

func (p *process) exited(err error) {
	p.mu.Lock()
	if p.death == "" {
		switch {
		case p.oom:
			p.death = fmt.Sprintf("the node runtime ran out of memory (limit %d MB) and was restarted", p.memoryMB)
		case err != nil:
			p.death = fmt.Sprintf("the node runtime stopped unexpectedly (%v) and was restarted", err)
		default:
			p.death = "the node runtime exited unexpectedly and was restarted"
		}
	}
	pending := p.pending
	p.pending = map[uint64]chan reply{}
	p.mu.Unlock()
	close(p.done)
	for _, ch := range pending {
		select {
		case ch <- reply{err: &NodeError{Kind: KindCrash, Msg: p.deathMsg()}}:
		default:
		}
	}
}

func (p *process) readStdout(r io.Reader, nonce string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	prefix := []byte(nonce)
	for sc.Scan() {
		line := sc.Bytes()
		// A node may print without a newline, so a message can start
		// mid-line: what comes before the nonce is the node's.
		i := bytes.Index(line, prefix)
		stray := line
		if i >= 0 {
			stray = line[:i]
		}
		if len(bytes.TrimSpace(stray)) > 0 {
			p.log.Info("node printed to stdout", "text", p.redact.Replace(string(stray)))
		}
		if i < 0 {
			continue
		}
		var m message
		if err := json.Unmarshal(line[i+len(prefix):], &m); err != nil {
			p.log.Error("unreadable message from the node runtime", "error", err)
			continue
		}
		p.dispatch(m)
	}
	if err := sc.Err(); err != nil {
		p.kill(fmt.Sprintf("the node runtime sent a message too large to read (%v)", err))
		_, _ = io.Copy(io.Discard, r)
	}
}

func (p *process) dispatch(m message) {
	switch m.T {
	case "ready":
		p.mu.Lock()
		p.loadErrors = m.LoadErrors
		p.mu.Unlock()
		close(p.ready)
	case "log":
		p.nodeLog(m)
	case "done":
		p.deliver(m.ID, reply{output: m.Output})
	case "fail":
		p.deliver(m.ID, reply{err: &NodeError{Node: m.Node, Kind: m.Kind, Msg: p.redact.Replace(m.Error)}})
	}
}

func (p *process) deliver(id uint64, r reply) {
	p.mu.Lock()
	ch := p.pending[id]
	delete(p.pending, id)
	p.mu.Unlock()
	if ch != nil {
		ch <- r
	}
}

// nodeLog forwards ctx.log to slog, with secret values blanked out: a
// node that logs its token must not put it in the platform's logs.
func (p *process) nodeLog(m message) {
	level := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[m.Level]
	attrs := []any{"node", m.Node}
	for k, v := range m.Fields {
		if s, ok := v.(string); ok {
			v = p.redact.Replace(s)
		}
		attrs = append(attrs, k, v)
	}
	p.log.Log(context.Background(), level, "["+m.Node+"] "+p.redact.Replace(m.Msg), attrs...)
}

func (p *process) readStderr(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := p.redact.Replace(sc.Text())
		if strings.Contains(line, "heap out of memory") || strings.Contains(line, "Fatal JavaScript out of memory") ||
			strings.Contains(line, "Reached heap limit") {
			p.mu.Lock()
			p.oom = true
			p.mu.Unlock()
		}
		p.log.Warn("node runtime: " + line)
	}
}

// secretRedactor blanks every secret value of six characters or more;
// shorter values are too likely to collide with ordinary words. Longer
// values go first, so a secret that contains another is blanked whole.
func secretRedactor(secrets map[string]any) *strings.Replacer {
	var values []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case json.Number:
			walk(string(v))
		case string:
			if len(v) >= 6 {
				values = append(values, v)
			}
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(secrets)
	slices.SortFunc(values, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(values))
	for _, v := range values {
		pairs = append(pairs, v, "[redacted]")
	}
	return strings.NewReplacer(pairs...)
}

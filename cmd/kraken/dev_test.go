package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// newcomer is what the welcome tells a newcomer to type.
const newcomer = `/kraken provision
/kraken deploy hello-fanout
!confirm
/kraken run hello-fanout {"name": "newcomer"}
`

// krakenDev runs `kraken dev` in-process on data with stdin, as a person would.
func krakenDev(ctx context.Context, t *testing.T, data string, stdin io.Reader, stdout io.Writer) error {
	t.Helper()
	var stderr bytes.Buffer
	err := runDev(ctx, env{stdout: stdout, stderr: &stderr, getenv: os.Getenv}, stdin,
		[]string{"--data", data, "--examples", examplesDir("")})
	if stderr.Len() > 0 {
		t.Errorf("stderr: %s", stderr.String())
	}
	return err
}

func wantAll(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "✗") {
		t.Errorf("something failed:\n%s", out)
	}
}

func TestDevNewcomerScriptSurvivesARestart(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	var out bytes.Buffer
	start := time.Now()
	if err := krakenDev(context.Background(), t, data, strings.NewReader(newcomer), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	took := time.Since(start)
	t.Logf("the newcomer script took %s", took.Round(time.Millisecond))
	wantAll(t, out.String(),
		"Type /kraken provision (or !invite, then !click 1), then /kraken deploy hello-fanout and !confirm,",
		"Enclave local is ready, owned by @you.",
		"Ready to deploy hello-fanout 1.0", "Picture of hello-fanout 1.0: "+filepath.Join(data, "pictures", "hello-fanout.png"),
		"Deployed hello-fanout 1.0 as revision 1.",
		"hello-fanout succeeded in", "• shout: text HELLO, NEWCOMER!", "• greet: text Hello, newcomer!")

	// Everything is where it was after a restart: the enclave, the
	// tentacle, the channel, and the audit log.
	out.Reset()
	script := "/kraken list\n/kraken run hello-fanout {\"name\": \"again\"}\n/kraken audit\n"
	if err := krakenDev(context.Background(), t, data, strings.NewReader(script), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	wantAll(t, out.String(),
		"• hello-fanout 1.0 (revision 1): running",
		"hello-fanout succeeded in", "• shout: text HELLO, AGAIN!",
		"asked `provision`", "asked `deploy hello-fanout`", "asked `run hello-fanout")
}

// lockedBuffer is a buffer one goroutine writes while another reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits for want in out, failing early when kraken dev stopped
// (with Deno missing, say) instead of waiting out the minute.
func waitFor(t *testing.T, out *lockedBuffer, want string, stopped <-chan error) {
	t.Helper()
	deadline := time.After(time.Minute)
	for !strings.Contains(out.String(), want) {
		select {
		case err := <-stopped:
			t.Fatalf("kraken dev stopped: %v\n%s", err, out.String())
		case <-deadline:
			t.Fatalf("no %q in:\n%s", want, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// processesUsing lists the processes whose command line mentions dir:
// the Deno workers of the tentacles kept there.
func processesUsing(t *testing.T, dir string) []string {
	t.Helper()
	if runtime.GOOS != "linux" {
		return nil // no /proc to look in; the exit itself is still checked
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(dir)) {
			found = append(found, e.Name()+": "+string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))
		}
	}
	return found
}

// TestDevStopsCleanly: an interrupt while the console waits for input
// stops the tentacles' workers and closes the store, so the next `kraken
// dev` opens at once.
func TestDevStopsCleanly(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	in, typed := io.Pipe()
	defer typed.Close()
	out := &lockedBuffer{}
	ctx, interrupt := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- krakenDev(ctx, t, data, in, out) }()
	go io.WriteString(typed, newcomer) // returns when read, or when typed is closed
	waitFor(t, out, "hello-fanout succeeded", done)
	if runtime.GOOS == "linux" && len(processesUsing(t, data)) == 0 {
		t.Fatal("no worker is running, so this test would prove nothing")
	}
	interrupt()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("interrupted: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("kraken dev did not stop")
	}
	if !strings.HasSuffix(out.String(), "\nStopped.\n") {
		t.Errorf("output ends:\n%s", out.String())
	}
	if left := processesUsing(t, data); len(left) > 0 {
		t.Errorf("workers left running:\n%s", strings.Join(left, "\n"))
	}
	// A store left open would keep its lock for the next open to wait on.
	var again bytes.Buffer
	start := time.Now()
	if err := krakenDev(context.Background(), t, data, strings.NewReader("/kraken list\n"), &again); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("reopening took %s", took)
	}
	wantAll(t, again.String(), "hello-fanout 1.0 (revision 1): running")
}

// TestDevProcessStopsOnSIGINT runs the real binary at a terminal-less
// stdin that stays open, as `make run` does, and interrupts it.
func TestDevProcessStopsOnSIGINT(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kraken")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	data := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(bin, "dev", "--data", data, "--examples", examplesDir(""))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	// One buffer: what kraken says on stderr (Deno missing, say) shows
	// where it was said.
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	go io.WriteString(stdin, newcomer)
	waitFor(t, out, "hello-fanout succeeded", exited)
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("kraken dev did not stop on SIGINT")
	}
	if !strings.HasSuffix(out.String(), "\nStopped.\n") || strings.Contains(out.String(), "kraken:") {
		t.Fatalf("output:\n%s", out.String())
	}
}

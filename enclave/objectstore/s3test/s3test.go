// Package s3test runs a real S3 server for tests: versitygw with its posix
// backend on free loopback ports, one per call, gone when the test ends.
//
// The binary is installed by hack/tools/versitygw.sh (make test runs it);
// tests find it through KRAKEN_VERSITYGW or in the script's default cache.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Version is the versitygw release hack/tools/versitygw.sh installs.
const Version = "v1.8.0"

// Server is a running versitygw. Its root key is random per server.
type Server struct {
	Endpoint      string // S3 API, host:port
	AdminEndpoint string // admin API (users, bucket owners), host:port
	Region        string
	RootAccessKey string
	RootSecretKey string

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	log  *lockedBuffer
}

// Binary returns the versitygw binary's absolute path, or an error saying
// how to install it.
func Binary() (string, error) {
	if p := os.Getenv("KRAKEN_VERSITYGW"); p != "" {
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("KRAKEN_VERSITYGW=%q must be an absolute path", p)
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("KRAKEN_VERSITYGW: %w (run hack/tools/versitygw.sh to install versitygw %s)", err, Version)
		}
		return p, nil
	}
	tools := os.Getenv("KRAKEN_TOOLS")
	if tools == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("finding versitygw: %w; set KRAKEN_VERSITYGW to its absolute path", err)
		}
		tools = filepath.Join(home, ".cache", "kraken-tools")
	}
	p := filepath.Join(tools, "versitygw-"+Version, "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("versitygw %s is not installed at %s: run `make test`, or hack/tools/versitygw.sh and set KRAKEN_VERSITYGW to the path it prints", Version, p)
	}
	return p, nil
}

// Start runs a versitygw for the test and stops it when the test ends. A
// missing binary fails the test, with how to install it.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	dir := t.TempDir() // absolute: versitygw refuses a relative --iam-dir
	// A free port found by listening can be taken by someone else before
	// versitygw binds it; a few tries make that race harmless.
	var last error
	for range 3 {
		s, err := start(t, bin, dir)
		if err == nil {
			return s
		}
		last = err
	}
	t.Fatalf("s3test: %v", last)
	return nil
}

func start(t testing.TB, bin, dir string) (*Server, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	s := &Server{
		Endpoint:      fmt.Sprintf("127.0.0.1:%d", ports[0]),
		AdminEndpoint: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		Region:        "us-east-1",
		RootAccessKey: "root" + random(6),
		RootSecretKey: random(20),
		done:          make(chan struct{}),
		log:           &lockedBuffer{},
	}
	run, err := os.MkdirTemp(dir, "run")
	if err != nil {
		return nil, err
	}
	iam, data := filepath.Join(run, "iam"), filepath.Join(run, "data")
	for _, d := range []string{iam, data} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	s.cmd = exec.Command(bin,
		"--port", s.Endpoint,
		"--admin-port", s.AdminEndpoint,
		"--region", s.Region,
		"--iam-dir", iam,
		// Without it every request opens a connection, which is not how
		// a deployed gateway is run and would skew the benchmarks.
		"--keep-alive",
		"--quiet",
		"posix", data)
	// The root key goes through the environment, not argv, so it is not in
	// the process list.
	s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.RootAccessKey, "ROOT_SECRET_KEY="+s.RootSecretKey)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.done)
	}()
	if err := s.wait(10 * time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("versitygw did not start: %w; its output:\n%s", err, s.log.String())
	}
	t.Cleanup(s.stop)
	return s, nil
}

// wait returns once both ports accept connections.
func (s *Server) wait(limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for _, addr := range []string{s.Endpoint, s.AdminEndpoint} {
		for {
			c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-s.done:
				return fmt.Errorf("it exited")
			case <-ctx.Done():
				return fmt.Errorf("%s not accepting after %s: %w", addr, limit, err)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// Stop kills the server and waits for it to exit. Tests rarely need it:
// Start stops the server at cleanup. It is there to test what callers say
// when the server goes away.
func (s *Server) Stop() { s.stop() }

func (s *Server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Log is what the server has printed so far.
func (s *Server) Log() string { return s.log.String() }

func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		// Held open until all are found, so the same port is not handed
		// out twice.
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// lockedBuffer collects the server's output from its two pipes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

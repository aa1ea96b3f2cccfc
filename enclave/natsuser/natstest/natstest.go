// Package natstest runs a real nats-server in operator mode for tests.
//
// Each Server is its own nats-server process (/usr/sbin/nats-server, or
// $KRAKEN_NATS_SERVER) on a free loopback port, with a fresh operator, a
// system account and one tenant account whose JWTs the server preloads
// (resolver: MEMORY). The tenant account has a signing key: its seed is
// what the platform gives the bot, so the code under test mints users
// exactly as it would in production, and the server, not a mock, decides
// what they may do. The shared NATS on 127.0.0.1:4222 is never touched.
//
// Without the binary, tests fail (never skip) and say how to get it.
package natstest

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// DefaultBinary is where the nats-server binary is looked for;
// $KRAKEN_NATS_SERVER overrides it.
const DefaultBinary = "/usr/sbin/nats-server"

// NotInstalled is the message tests fail with when there is no binary.
const NotInstalled = "nats-server is not installed: apt-get install nats-server (v2.9+), or set KRAKEN_NATS_SERVER to its path"

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 15 * time.Second

// Server is one running nats-server in operator mode.
type Server struct {
	// URL is what clients dial: nats://127.0.0.1:<port>.
	URL  string
	Host string
	Port int

	// Operator is the operator's public key.
	Operator string
	// Account is the tenant account's public key.
	Account string
	// AccountSeed is the seed of one of the account's signing keys: what
	// the platform hands the bot.
	AccountSeed string
	// AccountKeySeed is the seed of the account's own identity key, which
	// can sign users as well.
	AccountKeySeed string

	bin, dir, conf string
	operator       nkeys.KeyPair
	account        *jwt.AccountClaims
	system         string // system account public key
	systemJWT      string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *logBuffer
}

// Start runs a fresh operator-mode nats-server and stops it when the test
// ends. It fails the test if the server does not start.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := cmp.Or(os.Getenv("KRAKEN_NATS_SERVER"), DefaultBinary)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s (%s: %v)", NotInstalled, bin, err)
	}
	s := &Server{bin: bin, dir: t.TempDir(), Host: "127.0.0.1"}
	s.conf = filepath.Join(s.dir, "nats.conf")
	if err := s.keys(); err != nil {
		t.Fatalf("natstest: keys: %v", err)
	}
	t.Cleanup(s.stop)
	if err := s.start(); err != nil {
		t.Fatalf("natstest: %v", err)
	}
	return s
}

// keys makes the operator, the system account and the tenant account
// with one signing key.
func (s *Server) keys() error {
	op, err := nkeys.CreateOperator()
	if err != nil {
		return err
	}
	s.operator = op
	if s.Operator, err = op.PublicKey(); err != nil {
		return err
	}

	sys, err := nkeys.CreateAccount()
	if err != nil {
		return err
	}
	if s.system, err = sys.PublicKey(); err != nil {
		return err
	}
	sc := jwt.NewAccountClaims(s.system)
	sc.Name = "SYS"
	if s.systemJWT, err = sc.Encode(op); err != nil {
		return fmt.Errorf("system account: %w", err)
	}

	acc, err := nkeys.CreateAccount()
	if err != nil {
		return err
	}
	signer, err := nkeys.CreateAccount()
	if err != nil {
		return err
	}
	if s.Account, err = acc.PublicKey(); err != nil {
		return err
	}
	seed, err := acc.Seed()
	if err != nil {
		return err
	}
	s.AccountKeySeed = string(seed)
	if seed, err = signer.Seed(); err != nil {
		return err
	}
	s.AccountSeed = string(seed)
	signerPub, err := signer.PublicKey()
	if err != nil {
		return err
	}
	s.account = jwt.NewAccountClaims(s.Account)
	s.account.Name = "KRAKEN"
	s.account.SigningKeys.Add(signerPub)
	return nil
}

// config writes the server's configuration: the operator JWT inline and
// both accounts preloaded, so no resolver has to be reachable.
func (s *Server) config() error {
	oc := jwt.NewOperatorClaims(s.Operator)
	oc.Name = "natstest"
	oc.SystemAccount = s.system
	opJWT, err := oc.Encode(s.operator)
	if err != nil {
		return fmt.Errorf("operator: %w", err)
	}
	accJWT, err := s.account.Encode(s.operator)
	if err != nil {
		return fmt.Errorf("account: %w", err)
	}
	port := strconv.Itoa(s.Port)
	if s.Port == 0 {
		port = "-1" // the server picks a free one and logs it
	}
	conf := fmt.Sprintf(`host: 127.0.0.1
port: %s
operator: %q
system_account: %q
resolver: MEMORY
resolver_preload: {
  %s: %q
  %s: %q
}
`, port, opJWT, s.system, s.system, s.systemJWT, s.Account, accJWT)
	return os.WriteFile(s.conf, []byte(conf), 0o600)
}

var listening = regexp.MustCompile(`Listening for client connections on 127\.0\.0\.1:(\d+)`)

// start runs the server on s.Port (a free one when zero) and waits until
// it accepts connections.
func (s *Server) start() error {
	if err := s.config(); err != nil {
		return err
	}
	s.log = &logBuffer{}
	cmd := exec.Command(s.bin, "-c", s.conf)
	procAttr(cmd)
	out, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = s.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	ports := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			s.log.Write([]byte(line + "\n"))
			if m := listening.FindStringSubmatch(line); m != nil {
				p, _ := strconv.Atoi(m[1])
				select {
				case ports <- p:
				default:
				}
			}
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
		close(done)
	}()

	select {
	case p := <-ports:
		s.Port = p
	case <-done:
		return fmt.Errorf("nats-server exited before listening:\n%s", s.log)
	case <-time.After(startTimeout):
		return fmt.Errorf("nats-server did not listen within %s:\n%s", startTimeout, s.log)
	}
	s.URL = "nats://" + net.JoinHostPort(s.Host, strconv.Itoa(s.Port))

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nats-server does not accept on %s: %v\n%s", s.URL, err, s.log)
		case <-done:
			return fmt.Errorf("nats-server exited:\n%s", s.log)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Server) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// Revoke does what the platform must do to cut a minted user off: the
// operator re-signs the account JWT with the user's public key revoked,
// and the server gets it. A MEMORY resolver only reads its preload at
// start, so the server is restarted on the same port; clients see a
// reconnect, and the revoked one is refused.
func (s *Server) Revoke(t testing.TB, user string) {
	t.Helper()
	if !nkeys.IsValidPublicUserKey(user) {
		t.Fatalf("natstest: revoke: %q is not a user public key", user)
	}
	// Revocation covers JWTs issued at or before the time given.
	s.account.RevokeAt(user, time.Now().Add(time.Second))
	s.stop()
	if err := s.start(); err != nil {
		t.Fatalf("natstest: restart: %v", err)
	}
}

// Log is what the server has logged so far.
func (s *Server) Log() string { return s.log.String() }

// Mint signs a user JWT with the given account key and permissions, for
// tests that need credentials the code under test would never make (a
// foreign account, looser permissions). issuerAccount is set when the
// signer is a signing key rather than the account itself.
func Mint(signerSeed, issuerAccount string, perms jwt.Permissions) (token, seed string, err error) {
	signer, err := nkeys.FromSeed([]byte(signerSeed))
	if err != nil {
		return "", "", fmt.Errorf("natstest: signer: %w", err)
	}
	user, err := nkeys.CreateUser()
	if err != nil {
		return "", "", err
	}
	pub, err := user.PublicKey()
	if err != nil {
		return "", "", err
	}
	uc := jwt.NewUserClaims(pub)
	uc.Name = "natstest"
	uc.Permissions = perms
	uc.IssuerAccount = issuerAccount
	if token, err = uc.Encode(signer); err != nil {
		return "", "", fmt.Errorf("natstest: user: %w", err)
	}
	us, err := user.Seed()
	if err != nil {
		return "", "", err
	}
	return token, string(us), nil
}

// logBuffer collects the server's output for failure messages; the
// output holds public keys and JWTs, never seeds.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

package store

import (
	"bufio"
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The crash test runs this test binary again as a child that writes in a
// loop, kills it with SIGKILL at a random moment, and checks the file.
const (
	crashEnvDB    = "KRAKEN_STORE_CRASH_DB"
	crashEnvRound = "KRAKEN_STORE_CRASH_ROUND"
)

// crashBlob is the deterministic content written for key: from a few
// bytes to several pages, so some writes span overflow pages.
func crashBlob(key string) string {
	h := fnv.New32a()
	h.Write([]byte(key))
	n := int(h.Sum32() % 20000)
	return strings.Repeat(key+";", n/(len(key)+1)+1)[:n]
}

type crashRecord struct {
	Key  string
	Blob string
}

func crashAudit(key string) AuditEntry {
	return AuditEntry{
		Actor: "U-crash", Enclave: "crash-" + key[len(key)-1:], Verb: "deploy",
		Args:     map[string]string{"key": key, "blob": crashBlob(key)},
		Decision: DecisionAllowed, Result: ResultOK, Via: ViaConsole,
	}
}

// TestHelperWriter is the child: it writes until it is killed, printing
// "BEGIN kind key" before each write and "OK kind key [id]" after the
// write returned nil. Kinds: A audit entry, E event claim, B bucket put,
// D event marked done.
func TestHelperWriter(t *testing.T) {
	path := os.Getenv(crashEnvDB)
	if path == "" {
		t.Skip("the crash test's child process; run by TestCrashLosesNoAcknowledgedWrite")
	}
	round := os.Getenv(crashEnvRound)
	ctx := context.Background()
	say := func(format string, args ...any) {
		// os.Stdout is unbuffered: each line is one write(2).
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
	fail := func(err error) {
		say("FAIL %v", err)
		os.Exit(3)
	}
	db, err := Open(path, Options{LockTimeout: 10 * time.Second})
	if err != nil {
		fail(err)
	}
	say("READY")
	records := NewBucket[crashRecord](db, "crash")
	for i := 0; ; i++ {
		key := fmt.Sprintf("r%s-%d", round, i)
		switch i % 4 {
		case 0:
			say("BEGIN A %s", key)
			id, err := db.AppendAudit(ctx, crashAudit(key))
			if err != nil {
				fail(err)
			}
			say("OK A %s %d", key, id)
		case 1:
			say("BEGIN E %s", key)
			first, err := db.ClaimEvent(ctx, key, []byte(crashBlob(key)), time.Now())
			if err != nil || !first {
				fail(fmt.Errorf("claim %s: first=%v %v", key, first, err))
			}
			say("OK E %s", key)
		case 2:
			say("BEGIN B %s", key)
			if err := records.Put(ctx, key, crashRecord{key, crashBlob(key)}); err != nil {
				fail(err)
			}
			say("OK B %s", key)
		case 3:
			// Mark the event of this cycle done.
			ev := fmt.Sprintf("r%s-%d", round, i-2)
			say("BEGIN D %s", ev)
			if err := db.MarkEventDone(ctx, ev); err != nil {
				fail(err)
			}
			say("OK D %s", ev)
		}
	}
}

// crashLog is what the children said, across rounds.
type crashLog struct {
	begun map[string]bool   // "A key" → a write was started
	acked map[string]string // "A key" → acknowledged (value: the audit id)
	done  map[string]bool   // event key → MarkEventDone began (so it may be done)
}

func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns and kills 20 processes")
	}
	path := filepath.Join(t.TempDir(), "kraken.db")
	log := crashLog{begun: map[string]bool{}, acked: map[string]string{}, done: map[string]bool{}}
	const rounds = 20
	inFlight, inFlightPresent := 0, 0
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnvDB+"="+path, crashEnvRound+"="+strconv.Itoa(round))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan struct{})
		lines := make(chan []string)
		go func() {
			var got []string
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if sc.Text() == "READY" {
					close(ready)
				}
				got = append(got, sc.Text())
			}
			lines <- got
		}()
		// Odd rounds may die while opening (or migrating); even rounds die
		// mid-write.
		delay := time.Duration(rand.IntN(300)) * time.Millisecond
		if round%2 == 1 {
			delay = time.Duration(rand.IntN(150)) * time.Millisecond
		} else {
			select {
			case <-ready:
			case <-time.After(30 * time.Second):
				t.Fatal("child never opened the store")
			}
		}
		time.Sleep(delay)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		said := <-lines
		werr := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child did not die by SIGKILL (%v): %q", round, werr, said)
		}
		open := map[string]bool{} // begun, not acknowledged, this round
		for _, l := range said {
			f := strings.Fields(l)
			switch {
			case len(f) >= 2 && f[0] == "FAIL":
				t.Fatalf("round %d: child: %s", round, l)
			case len(f) == 3 && f[0] == "BEGIN":
				log.begun[f[1]+" "+f[2]] = true
				open[f[1]+" "+f[2]] = true
				if f[1] == "D" {
					log.done[f[2]] = true
				}
			case len(f) >= 3 && f[0] == "OK":
				id := ""
				if len(f) == 4 {
					id = f[3]
				}
				log.acked[f[1]+" "+f[2]] = id
				delete(open, f[1]+" "+f[2])
			}
		}
		present := verifyCrash(t, path, round, log)
		for op := range open {
			inFlight++
			if present[op] {
				inFlightPresent++
			}
		}
		t.Logf("round %d: killed after %v, %d lines, %d write(s) in flight", round, delay, len(said), len(open))
	}
	if len(log.acked) == 0 {
		t.Fatal("no write was ever acknowledged: the test proves nothing")
	}
	t.Logf("%d acknowledged writes all survived %d kills; %d writes were in flight at a kill (%d of them landed, whole)",
		len(log.acked), rounds, inFlight, inFlightPresent)
}

// verifyCrash opens the file after a kill and checks it: consistent pages,
// every acknowledged write there, every present record whole and one the
// child began. It returns the ops found present.
func verifyCrash(t *testing.T, path string, round int, log crashLog) map[string]bool {
	t.Helper()
	ctx := context.Background()
	db, err := Open(path, Options{LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("round %d: reopen after kill: %v", round, err)
	}
	defer db.Close()
	if err := db.Check(ctx); err != nil {
		t.Fatalf("round %d: %v", round, err)
	}
	present := map[string]bool{}

	// Audit: page through everything.
	auditIDs := map[string]uint64{}
	q := AuditQuery{Limit: 500}
	for {
		page, err := db.ListAudit(ctx, q)
		if err != nil {
			t.Fatalf("round %d: list audit: %v", round, err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			key := e.Args["key"]
			want := crashAudit(key)
			if e.Args["blob"] != want.Args["blob"] || e.Enclave != want.Enclave || e.Actor != want.Actor {
				t.Errorf("round %d: audit %d (%s) is not whole", round, e.ID, key)
			}
			auditIDs[key] = e.ID
			present["A "+key] = true
		}
		q.Before = page[len(page)-1].ID
	}
	var indexed int
	db.bolt.View(func(tx *bolt.Tx) error {
		indexed = tx.Bucket(auditByEnclaveBucket).Stats().KeyN
		return nil
	})
	if indexed != len(auditIDs) {
		t.Errorf("round %d: %d audit entries but %d index entries", round, len(auditIDs), indexed)
	}

	// Events, read directly so that nothing is claimed.
	events := map[string]eventRecord{}
	var pendingKeys, expiryKeys int
	db.bolt.View(func(tx *bolt.Tx) error {
		tx.Bucket(eventsBucket).ForEach(func(k, v []byte) error {
			r, err := decodeEvent(v)
			if err != nil {
				t.Errorf("round %d: event %s: %v", round, k, err)
			}
			events[string(k)] = r
			return nil
		})
		pendingKeys = tx.Bucket(eventsPendingBucket).Stats().KeyN
		expiryKeys = tx.Bucket(eventsExpiryBucket).Stats().KeyN
		return nil
	})
	nPending := 0
	for key, r := range events {
		present["E "+key] = true
		if r.done {
			present["D "+key] = true
			if !log.done[key] {
				t.Errorf("round %d: event %s is done but was never marked", round, key)
			}
		} else {
			nPending++
			if string(r.payload) != crashBlob(key) {
				t.Errorf("round %d: pending event %s payload is not whole", round, key)
			}
		}
	}
	if pendingKeys != nPending || expiryKeys != len(events)-nPending {
		t.Errorf("round %d: %d pending + %d expiry index keys for %d events (%d pending)",
			round, pendingKeys, expiryKeys, len(events), nPending)
	}
	pend, err := db.PendingEvents(ctx)
	if err != nil || len(pend) != nPending {
		t.Errorf("round %d: PendingEvents: %d %v, want %d", round, len(pend), err, nPending)
	}

	// Bucket records.
	recs, err := NewBucket[crashRecord](db, "crash").List(ctx, "", 0)
	if err != nil {
		t.Fatalf("round %d: %v", round, err)
	}
	for _, r := range recs {
		if r.Blob != crashBlob(r.Key) {
			t.Errorf("round %d: record %s is not whole", round, r.Key)
		}
		present["B "+r.Key] = true
	}

	// Every acknowledged write is there; nothing is there that was not begun.
	for op, id := range log.acked {
		if !present[op] {
			t.Errorf("round %d: acknowledged %s was lost", round, op)
		}
		if strings.HasPrefix(op, "A ") {
			if got := strconv.FormatUint(auditIDs[op[2:]], 10); got != id {
				t.Errorf("round %d: %s has id %s, acknowledged as %s", round, op, got, id)
			}
		}
	}
	for op := range present {
		if !log.begun[op] {
			t.Errorf("round %d: %s is present but was never begun", round, op)
		}
	}
	return present
}

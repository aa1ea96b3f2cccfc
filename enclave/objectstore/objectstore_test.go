package objectstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/enclave/objectstore"
	"github.com/kraken-ops/kraken/enclave/objectstore/s3test"
)

// fixture is a backend on its own versitygw, with a prefix of its own.
type fixture struct {
	t   testing.TB
	srv *s3test.Server
	cfg objectstore.Config
	b   *objectstore.Backend
}

func setup(t testing.TB) *fixture {
	t.Helper()
	srv := s3test.Start(t)
	cfg := objectstore.Config{
		Endpoint:      srv.Endpoint,
		AdminEndpoint: srv.AdminEndpoint,
		Region:        srv.Region,
		AccessKey:     srv.RootAccessKey,
		SecretKey:     srv.RootSecretKey,
		Key:           randomBytes(32),
		Prefix:        "t" + hex.EncodeToString(randomBytes(3)),
	}
	b, err := objectstore.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &fixture{t: t, srv: srv, cfg: cfg, b: b}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func (f *fixture) open(encl string) {
	f.t.Helper()
	if err := f.b.Open(context.Background(), encl); err != nil {
		f.t.Fatalf("Open(%s): %v", encl, err)
	}
}

func (f *fixture) grant(encl, tentacle string) enclave.Space {
	f.t.Helper()
	s, err := f.b.Grant(context.Background(), encl, tentacle)
	if err != nil {
		f.t.Fatalf("Grant(%s, %s): %v", encl, tentacle, err)
	}
	return s
}

func (f *fixture) root() *minio.Client {
	f.t.Helper()
	c, err := minio.New(f.cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(f.cfg.AccessKey, f.cfg.SecretKey, ""),
		Region:       f.cfg.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// client is what a tentacle's pod makes from its space.
func client(t testing.TB, s enclave.Space) *minio.Client {
	t.Helper()
	c, err := minio.New(fmt.Sprintf("%s:%d", s.Host, s.Port), &minio.Options{
		Creds:        credentials.NewStaticV4(s.User, s.Secret, ""),
		Secure:       s.TLS,
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1,
	})
	if err != nil {
		t.Fatalf("minio.New: %v", err)
	}
	return c
}

func put(c *minio.Client, bucket, key, body string) error {
	_, err := c.PutObject(context.Background(), bucket, key, strings.NewReader(body), int64(len(body)), minio.PutObjectOptions{})
	return err
}

func get(c *minio.Client, bucket, key string) (string, error) {
	o, err := c.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return "", err
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	return string(b), err
}

func list(c *minio.Client, bucket, prefix string) ([]string, error) {
	var keys []string
	for o := range c.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return keys, o.Err
		}
		keys = append(keys, o.Key)
	}
	return keys, nil
}

func code(err error) string { return minio.ToErrorResponse(err).Code }

func TestTentacleWorksInItsPrefix(t *testing.T) {
	f := setup(t)
	f.open("payments")
	s := f.grant("payments", "reports")

	want := enclave.Space{
		Kind: enclave.ObjectStore, Protocol: "s3", Host: "127.0.0.1", Port: s.Port,
		Bucket: f.cfg.Prefix + "-payments", Region: "us-east-1", Prefix: "reports/",
		User: f.cfg.Prefix + ".payments.reports", Secret: enclave.DeriveSecret(f.cfg.Key, "s3", "payments", "reports"),
		Network: []enclave.Network{{CIDR: "127.0.0.1/32", Port: s.Port}},
	}
	if fmt.Sprint(s) != fmt.Sprint(want) {
		t.Fatalf("space:\n got %+v\nwant %+v", s, want)
	}

	c := client(t, s)
	for _, k := range []string{"reports/a.csv", "reports/2026/b.csv"} {
		if err := put(c, s.Bucket, k, "data "+k); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	if got, err := get(c, s.Bucket, "reports/a.csv"); err != nil || got != "data reports/a.csv" {
		t.Fatalf("get = %q, %v", got, err)
	}
	if _, err := c.StatObject(context.Background(), s.Bucket, "reports/a.csv", minio.StatObjectOptions{}); err != nil {
		t.Fatalf("stat: %v", err)
	}
	if keys, err := list(c, s.Bucket, "reports/"); err != nil || !slices.Equal(keys, []string{"reports/2026/b.csv", "reports/a.csv"}) {
		t.Fatalf("list reports/ = %v, %v", keys, err)
	}
	if keys, err := list(c, s.Bucket, "reports/2026/"); err != nil || len(keys) != 1 {
		t.Fatalf("list reports/2026/ = %v, %v", keys, err)
	}
	if err := c.RemoveObject(context.Background(), s.Bucket, "reports/a.csv", minio.RemoveObjectOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := get(c, s.Bucket, "reports/a.csv"); code(err) != "NoSuchKey" {
		t.Fatalf("get after delete: %v, want NoSuchKey", err)
	}
}

// Every crossing of a tentacle's room is refused by the server itself.
func TestTentaclesAreShutOutOfOthersRooms(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	f.open("payments")
	f.open("billing")
	a, b := f.grant("payments", "reports"), f.grant("payments", "ledger")
	x := f.grant("billing", "invoices")
	ca, cx := client(t, a), client(t, x)

	// Something of everyone's to be read or deleted.
	if err := put(client(t, b), b.Bucket, "ledger/book", "b's"); err != nil {
		t.Fatal(err)
	}
	if err := put(ca, a.Bucket, "reports/mine", "a's"); err != nil {
		t.Fatal(err)
	}
	if err := put(cx, x.Bucket, "invoices/inv", "x's"); err != nil {
		t.Fatal(err)
	}
	root := f.root()
	if err := put(root, a.Bucket, "top-level", "root's"); err != nil {
		t.Fatal(err)
	}

	denied := []struct {
		name string
		do   func() error
	}{
		{"read another tentacle's object", func() error { _, err := get(ca, a.Bucket, "ledger/book"); return err }},
		{"write in another tentacle's prefix", func() error { return put(ca, a.Bucket, "ledger/forged", "x") }},
		{"delete another tentacle's object", func() error {
			return ca.RemoveObject(ctx, a.Bucket, "ledger/book", minio.RemoveObjectOptions{})
		}},
		{"stat another tentacle's object", func() error {
			_, err := ca.StatObject(ctx, a.Bucket, "ledger/book", minio.StatObjectOptions{})
			return err
		}},
		{"list another tentacle's prefix", func() error { _, err := list(ca, a.Bucket, "ledger/"); return err }},
		{"list the whole bucket", func() error { _, err := list(ca, a.Bucket, ""); return err }},
		{"list a prefix that only starts like its own", func() error { _, err := list(ca, a.Bucket, "report"); return err }},
		{"read outside every prefix", func() error { _, err := get(ca, a.Bucket, "top-level"); return err }},
		{"write outside every prefix", func() error { return put(ca, a.Bucket, "top-level", "x") }},
		{"write in a prefix that only starts like its own", func() error { return put(ca, a.Bucket, "reportsx/y", "x") }},
		{"read another enclave's bucket", func() error { _, err := get(cx, a.Bucket, "reports/mine"); return err }},
		{"write in another enclave's bucket, under its own name", func() error { return put(cx, a.Bucket, "invoices/z", "x") }},
		{"list another enclave's bucket", func() error { _, err := list(cx, a.Bucket, "invoices/"); return err }},
		{"reach into another enclave from the first", func() error { _, err := get(ca, x.Bucket, "invoices/inv"); return err }},
		{"make a bucket", func() error { return ca.MakeBucket(ctx, f.cfg.Prefix+"-mine", minio.MakeBucketOptions{}) }},
		{"delete its enclave's bucket", func() error { return ca.RemoveBucket(ctx, a.Bucket) }},
		{"widen its own grant", func() error {
			return ca.SetBucketPolicy(ctx, a.Bucket, `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["`+a.User+`"]},"Action":["s3:*"],"Resource":["arn:aws:s3:::`+a.Bucket+`/*"]}]}`)
		}},
		{"read the bucket's policy", func() error { _, err := ca.GetBucketPolicy(ctx, a.Bucket); return err }},
	}
	for _, tc := range denied {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			// HEAD has no body, so a refused stat carries no code, only 403.
			if code(err) != "AccessDenied" && minio.ToErrorResponse(err).StatusCode != 403 {
				t.Fatalf("got %v (code %q), want AccessDenied", err, code(err))
			}
		})
	}
	// Nothing moved.
	if got, err := get(client(t, b), b.Bucket, "ledger/book"); err != nil || got != "b's" {
		t.Fatalf("b's object after the attempts: %q, %v", got, err)
	}
	if got, err := get(root, a.Bucket, "top-level"); err != nil || got != "root's" {
		t.Fatalf("root's object after the attempts: %q, %v", got, err)
	}
}

func TestWrongSecretIsRefused(t *testing.T) {
	f := setup(t)
	f.open("payments")
	s := f.grant("payments", "reports")
	s.Secret = enclave.DeriveSecret(f.cfg.Key, "s3", "payments", "ledger")
	if err := put(client(t, s), s.Bucket, "reports/x", "x"); code(err) != "SignatureDoesNotMatch" {
		t.Fatalf("put with another secret: %v, want SignatureDoesNotMatch", err)
	}
}

func TestRevoke(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	f.open("payments")
	a, b := f.grant("payments", "reports"), f.grant("payments", "ledger")
	if err := put(client(t, a), a.Bucket, "reports/kept", "12345"); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := f.b.Revoke(ctx, "payments", "reports"); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
	}
	if err := put(client(t, a), a.Bucket, "reports/after", "x"); code(err) != "InvalidAccessKeyId" && code(err) != "AccessDenied" {
		t.Fatalf("put after Revoke: %v, want refused", err)
	}
	if _, err := get(client(t, a), a.Bucket, "reports/kept"); code(err) != "InvalidAccessKeyId" && code(err) != "AccessDenied" {
		t.Fatalf("get after Revoke: %v, want refused", err)
	}
	// The other tentacle is untouched, and the revoked one's data stays.
	if err := put(client(t, b), b.Bucket, "ledger/still", "x"); err != nil {
		t.Fatalf("the other tentacle after Revoke: %v", err)
	}
	if u, err := f.b.Usage(ctx, "payments"); err != nil || u.Objects != 2 {
		t.Fatalf("Usage after Revoke = %+v, %v; want the 2 objects kept", u, err)
	}
	// Revoking the last one leaves no policy; granting again lets it back in.
	if err := f.b.Revoke(ctx, "payments", "ledger"); err != nil {
		t.Fatalf("Revoke the last: %v", err)
	}
	a = f.grant("payments", "reports")
	if got, err := get(client(t, a), a.Bucket, "reports/kept"); err != nil || got != "12345" {
		t.Fatalf("get after Grant again: %q, %v", got, err)
	}
	// Revoking in an enclave that never was is no error.
	if err := f.b.Revoke(ctx, "nowhere", "reports"); err != nil {
		t.Fatalf("Revoke in an enclave with no bucket: %v", err)
	}
}

func TestUsage(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	u, err := f.b.Usage(ctx, "payments")
	if err != nil || u.Exists || u.Kind != enclave.ObjectStore || u.What != "storage bucket "+f.cfg.Prefix+"-payments" {
		t.Fatalf("Usage before Open = %+v, %v", u, err)
	}
	f.open("payments")
	if u, err := f.b.Usage(ctx, "payments"); err != nil || !u.Exists || u.Objects != 0 || u.Bytes != 0 {
		t.Fatalf("Usage of an empty bucket = %+v, %v", u, err)
	}
	a, b := f.grant("payments", "reports"), f.grant("payments", "ledger")
	big := strings.Repeat("x", 1<<20)
	for _, o := range []struct {
		s    enclave.Space
		key  string
		body string
	}{{a, "reports/1", "abc"}, {a, "reports/deep/2", big}, {b, "ledger/3", "defgh"}} {
		if err := put(client(t, o.s), o.s.Bucket, o.key, o.body); err != nil {
			t.Fatal(err)
		}
	}
	u, err = f.b.Usage(ctx, "payments")
	if err != nil || !u.Exists || u.Objects != 3 || u.Bytes != int64(3+len(big)+5) {
		t.Fatalf("Usage = %+v, %v; want 3 objects, %d bytes", u, err, 3+len(big)+5)
	}
}

func TestDrop(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	f.open("payments")
	f.open("billing")
	a := f.grant("payments", "reports")
	x := f.grant("billing", "invoices")
	for i := range 30 {
		if err := put(client(t, a), a.Bucket, fmt.Sprintf("reports/%d", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	// An upload left unfinished must not keep the bucket alive.
	core := minio.Core{Client: client(t, a)}
	if _, err := core.NewMultipartUpload(ctx, a.Bucket, "reports/unfinished", minio.PutObjectOptions{}); err != nil {
		t.Fatalf("starting a multipart upload: %v", err)
	}
	// Users are found by their names, not the policy: a Revoke cut short
	// after the policy leaves its user, and Drop deletes it all the same.
	l := f.grant("payments", "ledger")
	if err := f.root().SetBucketPolicy(ctx, a.Bucket, ""); err != nil {
		t.Fatal(err)
	}

	for range 2 { // idempotent
		if err := f.b.Drop(ctx, "payments"); err != nil {
			t.Fatalf("Drop: %v", err)
		}
	}
	if u, err := f.b.Usage(ctx, "payments"); err != nil || u.Exists {
		t.Fatalf("Usage after Drop = %+v, %v", u, err)
	}
	for _, s := range []enclave.Space{a, l} {
		if _, err := client(t, s).ListBuckets(ctx); code(err) != "InvalidAccessKeyId" {
			t.Fatalf("%s after Drop: %v, want InvalidAccessKeyId", s.User, err)
		}
	}
	// The other enclave is untouched.
	if err := put(client(t, x), x.Bucket, "invoices/still", "x"); err != nil {
		t.Fatalf("another enclave after Drop: %v", err)
	}
	// Dropping what never was is fine, and a dropped enclave can be opened again, empty.
	if err := f.b.Drop(ctx, "never"); err != nil {
		t.Fatalf("Drop of an enclave never opened: %v", err)
	}
	f.open("payments")
	a = f.grant("payments", "reports")
	if keys, err := list(client(t, a), a.Bucket, "reports/"); err != nil || len(keys) != 0 {
		t.Fatalf("list after Drop and Open = %v, %v", keys, err)
	}
}

func TestGrantBeforeOpen(t *testing.T) {
	f := setup(t)
	_, err := f.b.Grant(context.Background(), "payments", "reports")
	if !errors.Is(err, objectstore.ErrNotOpen) {
		t.Fatalf("Grant before Open: %v, want ErrNotOpen", err)
	}
}

// Open and Grant may run again and at once (replicas, retried deploys):
// the same space comes back and no tentacle's statement is lost.
func TestOpenAndGrantAreIdempotentAndSafeConcurrently(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	tentacles := []string{"reports", "ledger", "audit", "exports"}
	errs := make(chan error, n+len(tentacles)*n)
	for range n {
		wg.Go(func() { errs <- f.b.Open(ctx, "payments") })
	}
	wg.Wait()
	spaces := make([][]enclave.Space, len(tentacles))
	var mu sync.Mutex
	for i, tn := range tentacles {
		for range n {
			wg.Go(func() {
				s, err := f.b.Grant(ctx, "payments", tn)
				errs <- err
				mu.Lock()
				spaces[i] = append(spaces[i], s)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open/Grant: %v", err)
		}
	}
	for i, tn := range tentacles {
		for _, s := range spaces[i][1:] {
			if fmt.Sprint(s) != fmt.Sprint(spaces[i][0]) {
				t.Fatalf("%s got different spaces: %+v and %+v", tn, s, spaces[i][0])
			}
		}
		s := spaces[i][0]
		if err := put(client(t, s), s.Bucket, tn+"/x", "x"); err != nil {
			t.Fatalf("%s after concurrent grants: %v", tn, err)
		}
	}
}

// A new platform key gives new secrets; granting again sets them, and
// the old ones stop working.
func TestGrantAfterKeyChange(t *testing.T) {
	f := setup(t)
	f.open("payments")
	old := f.grant("payments", "reports")
	cfg := f.cfg
	cfg.Key = randomBytes(32)
	b2, err := objectstore.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b2.Grant(context.Background(), "payments", "reports")
	if err != nil {
		t.Fatal(err)
	}
	if s.Secret == old.Secret || s.User != old.User {
		t.Fatal("a new key should give the same user a new secret")
	}
	if err := put(client(t, s), s.Bucket, "reports/x", "x"); err != nil {
		t.Fatalf("new secret: %v", err)
	}
	if err := put(client(t, old), old.Bucket, "reports/x", "x"); code(err) != "SignatureDoesNotMatch" {
		t.Fatalf("old secret: %v, want SignatureDoesNotMatch", err)
	}
}

func TestBadNames(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	for _, tc := range []struct {
		encl, tentacle string
		want           error
	}{
		{"Payments", "reports", enclave.ErrNameInvalid},
		{"", "reports", enclave.ErrNameInvalid},
		{"pay.ments", "reports", enclave.ErrNameInvalid},
		{"payments", "Reports", objectstore.ErrTentacleName},
		{"payments", "re/ports", objectstore.ErrTentacleName},
		{"payments", "", objectstore.ErrTentacleName},
		{"payments", strings.Repeat("r", 64), objectstore.ErrTentacleName},
	} {
		if _, err := f.b.Grant(ctx, tc.encl, tc.tentacle); !errors.Is(err, tc.want) {
			t.Errorf("Grant(%q, %q) = %v, want %v", tc.encl, tc.tentacle, err, tc.want)
		}
		if err := f.b.Revoke(ctx, tc.encl, tc.tentacle); !errors.Is(err, tc.want) {
			t.Errorf("Revoke(%q, %q) = %v, want %v", tc.encl, tc.tentacle, err, tc.want)
		}
	}
	if err := f.b.Open(ctx, "kube-system"); !errors.Is(err, enclave.ErrNameInvalid) {
		t.Errorf("Open(kube-system) = %v", err)
	}
}

// Names too long for S3 are cut and still work end to end.
func TestLongNames(t *testing.T) {
	f := setup(t)
	encl, tentacle := strings.Repeat("e", 63), strings.Repeat("t", 63)
	f.open(encl)
	s := f.grant(encl, tentacle)
	if len(s.Bucket) > 63 || len(s.User) > 128 {
		t.Fatalf("bucket %q (%d), user %q (%d)", s.Bucket, len(s.Bucket), s.User, len(s.User))
	}
	if err := put(client(t, s), s.Bucket, tentacle+"/x", "x"); err != nil {
		t.Fatalf("put with long names: %v", err)
	}
	if err := f.b.Drop(context.Background(), encl); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	good := objectstore.Config{
		Endpoint: "127.0.0.1:9000", AccessKey: "root", SecretKey: "rootsecret-do-not-print", Key: bytes.Repeat([]byte{7}, 32),
	}
	for _, tc := range []struct {
		name   string
		change func(*objectstore.Config)
		want   string
	}{
		{"no endpoint", func(c *objectstore.Config) { c.Endpoint = "" }, "endpoint: it is empty"},
		{"URL endpoint", func(c *objectstore.Config) { c.Endpoint = "http://127.0.0.1:9000" }, "is a URL"},
		{"no port", func(c *objectstore.Config) { c.Endpoint = "127.0.0.1" }, "is not host:port"},
		{"no root key", func(c *objectstore.Config) { c.SecretKey = "" }, "root access key and secret key are both required"},
		{"short key", func(c *objectstore.Config) { c.Key = []byte("short") }, "has 5 bytes; it needs at least 32"},
		{"bad prefix", func(c *objectstore.Config) { c.Prefix = "Kraken" }, `prefix "Kraken" must be lower-case`},
		{"long prefix", func(c *objectstore.Config) { c.Prefix = strings.Repeat("k", 21) }, "longer than 20"},
		{"reserved prefix", func(c *objectstore.Config) { c.Prefix = "xn--k" }, "reserves"},
		{"bad admin endpoint", func(c *objectstore.Config) { c.AdminEndpoint = "ftp://x:1" }, "admin endpoint"},
		{"host name without network", func(c *objectstore.Config) { c.Endpoint = "s3.example:9000" }, "network is required"},
		{"network with a bad port", func(c *objectstore.Config) { c.Network = []enclave.Network{{CIDR: "10.0.0.0/8", Port: 70000}} }, "port 70000 is not a port"},
		{"network with neither CIDR nor namespace", func(c *objectstore.Config) { c.Network = []enclave.Network{{Port: 9000}} }, "give a CIDR or a namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			_, err := objectstore.New(context.Background(), cfg)
			if !errors.Is(err, objectstore.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "rootsecret") {
				t.Fatal("the error shows the root secret")
			}
		})
	}
}

func TestNewRefusesAWrongRootKey(t *testing.T) {
	srv := s3test.Start(t)
	cfg := objectstore.Config{
		Endpoint: srv.Endpoint, AdminEndpoint: srv.AdminEndpoint, AccessKey: srv.RootAccessKey,
		SecretKey: "not-the-root-secret", Key: randomBytes(32),
	}
	_, err := objectstore.New(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "checking the root key on the S3 API") {
		t.Fatalf("New with a wrong root secret = %v", err)
	}
	if strings.Contains(err.Error(), cfg.SecretKey) || strings.Contains(err.Error(), srv.RootSecretKey) {
		t.Fatal("the error shows a secret")
	}
	cfg.SecretKey = srv.RootSecretKey
	cfg.AdminEndpoint = srv.Endpoint // the S3 port, which has no admin API when an admin port is given
	if _, err := objectstore.New(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "admin API") {
		t.Fatalf("New with the wrong admin endpoint = %v", err)
	}
}

func TestUnreachableServerSaysSo(t *testing.T) {
	f := setup(t)
	f.open("payments")
	f.srv.Stop()
	ctx := context.Background()
	_, err := f.b.Grant(ctx, "payments", "reports")
	if !errors.Is(err, objectstore.ErrUnreachable) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("Grant on a stopped server = %v, want ErrUnreachable", err)
	}
	if _, err := f.b.Usage(ctx, "payments"); !errors.Is(err, objectstore.ErrUnreachable) {
		t.Fatalf("Usage on a stopped server = %v, want ErrUnreachable", err)
	}
	if err := f.b.Drop(ctx, "payments"); !errors.Is(err, objectstore.ErrUnreachable) {
		t.Fatalf("Drop on a stopped server = %v, want ErrUnreachable", err)
	}
	if _, err := objectstore.New(ctx, f.cfg); !errors.Is(err, objectstore.ErrUnreachable) || strings.Contains(err.Error(), f.cfg.SecretKey) {
		t.Fatalf("New on a stopped server = %v, want ErrUnreachable", err)
	}
}

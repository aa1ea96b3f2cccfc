// Package objectstore is the exoskeleton's object storage: an S3 server
// (versitygw) on which every enclave gets a bucket and every tentacle a
// key prefix in it, with its own access key that opens that prefix and
// nothing else.
//
// Buckets are made by the root key and stay the root's; tentacles are
// plain users (they cannot make buckets) let in by the bucket's policy,
// one pair of statements per tentacle naming its access key. Users are
// made through versitygw's admin API.
package objectstore

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kraken-ops/kraken/enclave"
)

// Config says where the S3 server is and how to administer it.
type Config struct {
	// Endpoint is host:port, as tentacles and the bot reach it.
	Endpoint string
	TLS      bool
	Region   string // default us-east-1
	// AdminEndpoint is versitygw's admin API, host:port (default: Endpoint,
	// where versitygw serves it when it has no admin port of its own). It
	// may be a URL, to speak another scheme than the S3 API.
	AdminEndpoint string
	// AccessKey and SecretKey are the server's root key.
	AccessKey, SecretKey string
	// Network is where a tentacle's egress is opened to reach the server.
	// When empty and Endpoint's host is an IP address, it is that address
	// and port.
	Network []enclave.Network
	// Key derives each tentacle's secret (enclave.DeriveSecret); at least
	// 32 bytes. Changing it changes every secret; Grant sets the new ones.
	Key []byte
	// Prefix starts every bucket and access key, so one server can serve
	// several platforms (or test runs). Empty means DefaultPrefix.
	Prefix string
	// Logger gets warnings (statements of users gone from the server,
	// taken out of a policy); nil discards them.
	Logger *slog.Logger
}

// DefaultPrefix starts buckets and access keys when Config.Prefix is empty.
const DefaultPrefix = "kraken"

// Errors callers may branch on.
var (
	// ErrConfig is what New's errors about its Config wrap.
	ErrConfig = errors.New("invalid object store config")
	// ErrUnreachable means no answer came from the server at all.
	ErrUnreachable = errors.New("object store unreachable")
	// ErrNotOpen means a tentacle was granted a room in an enclave whose
	// bucket has not been made (Open first).
	ErrNotOpen = errors.New("enclave has no bucket yet")
	// ErrTentacleName means a tentacle's name cannot name a prefix or user.
	ErrTentacleName = errors.New("invalid tentacle name")
)

// Backend is the object store as an enclave.Backend.
type Backend struct {
	s3      *minio.Client
	admin   *admin
	host    string
	port    int
	tls     bool
	region  string
	network []enclave.Network
	key     []byte
	prefix  string
	log     *slog.Logger
	locks   keyedMutex
}

var _ enclave.Backend = (*Backend)(nil)

// New checks the configuration and that the server answers with the root
// key, on both its S3 and admin APIs.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := newBackend(cfg)
	if err != nil {
		return nil, err
	}
	// A bucket that cannot exist: HEAD answers 404 to the root key and 403
	// to a wrong one, and costs the same with a million buckets.
	if _, err := b.s3.BucketExists(ctx, b.prefix+"-reachable"); err != nil {
		return nil, b.fail("checking the root key on the S3 API", err)
	}
	if err := b.admin.ping(ctx); err != nil {
		return nil, fmt.Errorf("object store at %s: checking the root key on the admin API: %w", b.admin.base, err)
	}
	return b, nil
}

func newBackend(cfg Config) (*Backend, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	var problems []string
	host, port, err := splitEndpoint(cfg.Endpoint)
	if err != nil {
		problems = append(problems, "endpoint: "+err.Error())
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		problems = append(problems, "the root access key and secret key are both required")
	}
	if len(cfg.Key) < 32 {
		problems = append(problems, fmt.Sprintf("the key deriving tentacles' secrets has %d bytes; it needs at least 32", len(cfg.Key)))
	}
	if err := validPrefix(cfg.Prefix); err != nil {
		problems = append(problems, err.Error())
	}
	adminBase, err := adminURL(cfg)
	if err != nil {
		problems = append(problems, "admin endpoint: "+err.Error())
	}
	network := cfg.Network
	if len(network) == 0 && host != "" {
		if ip, perr := netip.ParseAddr(host); perr == nil {
			network = []enclave.Network{{CIDR: netip.PrefixFrom(ip, ip.BitLen()).String(), Port: port}}
		} else {
			problems = append(problems, fmt.Sprintf("network is required when the endpoint's host (%s) is a name: say where tentacles' egress must be opened", host))
		}
	}
	for i, n := range network {
		if n.Port < 0 || n.Port > 65535 {
			problems = append(problems, fmt.Sprintf("network %d: port %d is not a port", i, n.Port))
		}
		if (n.CIDR == "") == (n.Namespace == "") {
			problems = append(problems, fmt.Sprintf("network %d: give a CIDR or a namespace, one of the two", i))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrConfig, strings.Join(problems, "; "))
	}

	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
	}
	s3, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    cfg.TLS,
		Region:    cfg.Region, // known, so no GetBucketLocation before each call
		Transport: transport,
		// Path style: the endpoint is an address, not a DNS zone of buckets.
		BucketLookup: minio.BucketLookupPath,
		// Fewer than the default 10, so a server that is down is said to
		// be within about two seconds.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return &Backend{
		s3: s3,
		admin: &admin{
			base:   adminBase,
			region: cfg.Region,
			access: cfg.AccessKey,
			secret: cfg.SecretKey,
			http:   &http.Client{Transport: transport},
		},
		host:    host,
		port:    port,
		tls:     cfg.TLS,
		region:  cfg.Region,
		network: slices.Clone(network),
		key:     slices.Clone(cfg.Key),
		prefix:  cfg.Prefix,
		log:     cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
	}, nil
}

func splitEndpoint(endpoint string) (string, int, error) {
	if endpoint == "" {
		return "", 0, errors.New("it is empty; give host:port")
	}
	if strings.Contains(endpoint, "://") {
		return "", 0, fmt.Errorf("%q is a URL; give host:port and set TLS for https", endpoint)
	}
	host, p, err := net.SplitHostPort(endpoint)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port: %w", endpoint, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 || host == "" {
		return "", 0, fmt.Errorf("%q is not host:port", endpoint)
	}
	return host, port, nil
}

func adminURL(cfg Config) (string, error) {
	a := cfg.AdminEndpoint
	if a == "" {
		a = cfg.Endpoint
	}
	if !strings.Contains(a, "://") {
		if _, _, err := splitEndpoint(a); err != nil {
			return "", err
		}
		scheme := "http"
		if cfg.TLS {
			scheme = "https"
		}
		return scheme + "://" + a, nil
	}
	u, err := url.Parse(a)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.User != nil {
		return "", fmt.Errorf("%q is neither host:port nor an http(s)://host:port URL", a)
	}
	return u.Scheme + "://" + u.Host, nil
}

// fail says what went wrong talking S3, plainly when nothing answered.
// minio's errors carry the code, message, bucket and key: no secrets.
func (b *Backend) fail(what string, err error) error {
	if minio.ToErrorResponse(err).Code == "" && !errors.Is(err, context.Canceled) {
		var ne net.Error
		if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("object store at %s: %s: %w: %w", b.s3.EndpointURL().Host, what, ErrUnreachable, err)
		}
	}
	return fmt.Errorf("object store at %s: %s: %w", b.s3.EndpointURL().Host, what, err)
}

// Kind is enclave.ObjectStore.
func (b *Backend) Kind() enclave.Kind { return enclave.ObjectStore }

// Bucket is the name of the enclave's bucket.
func (b *Backend) Bucket(encl string) string { return bucketName(b.prefix, encl) }

// AccessKey is the tentacle's access key id.
func (b *Backend) AccessKey(encl, tentacle string) string {
	return accessKey(b.prefix, encl, tentacle)
}

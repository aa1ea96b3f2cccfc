package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kraken-ops/kraken/enclave"
	"github.com/kraken-ops/kraken/enclave/natsuser"
	"github.com/kraken-ops/kraken/enclave/objectstore"
	"github.com/kraken-ops/kraken/enclave/postgres"
	"github.com/nats-io/nats.go"
)

// exoSettings are the services the platform gives enclaves (the
// exoskeleton), each turned on by its own variables; none is required.
type exoSettings struct {
	postgres *postgres.Config
	s3       *objectstore.Config
	nats     *natsuser.Config
}

// exoSettingsFrom reads the services' settings and the key their
// credentials are derived from. Credentials may come from files (mounted
// Secrets): every secret variable has a _FILE twin.
func exoSettingsFrom(getenv func(string) string) (exoSettings, []string) {
	s, problems := exoServicesFrom(getenv)
	if s.configured() {
		key, _, err := valueOrFile(getenv, exoKeyVar, exoKeyVar+"_FILE")
		if err == nil {
			err = s.setKey([]byte(strings.TrimSpace(key)))
		}
		if err != nil {
			problems = append(problems, err.Error())
		}
	}
	return s, problems
}

// exoServicesFrom reads the services' settings, without their key.
func exoServicesFrom(getenv func(string) string) (exoSettings, []string) {
	var s exoSettings
	var problems []string
	secret := func(name string) string {
		v, _, err := valueOrFile(getenv, name, name+"_FILE")
		if err != nil {
			problems = append(problems, err.Error())
		}
		return strings.TrimSpace(v)
	}
	network := func(name string) []enclave.Network {
		n, err := parseNetworks(getenv(name))
		if err != nil {
			problems = append(problems, name+": "+err.Error())
		}
		return n
	}
	if url := secret("KRAKEN_POSTGRES_URL"); url != "" {
		c := &postgres.Config{AdminURL: url, Network: network("KRAKEN_POSTGRES_NETWORK"), TLS: getenv("KRAKEN_POSTGRES_TLS") == "true"}
		if hp := getenv("KRAKEN_POSTGRES_HOST"); hp != "" {
			host, port, err := hostPort(hp)
			if err != nil {
				problems = append(problems, "KRAKEN_POSTGRES_HOST: "+err.Error())
			}
			c.Host, c.Port = host, port
		}
		s.postgres = c
	}
	if ep := getenv("KRAKEN_S3_ENDPOINT"); ep != "" {
		s.s3 = &objectstore.Config{
			Endpoint: ep, AdminEndpoint: getenv("KRAKEN_S3_ADMIN_ENDPOINT"), Region: getenv("KRAKEN_S3_REGION"),
			TLS:       getenv("KRAKEN_S3_TLS") == "true",
			AccessKey: secret("KRAKEN_S3_ACCESS_KEY"), SecretKey: secret("KRAKEN_S3_SECRET_KEY"),
			Network: network("KRAKEN_S3_NETWORK"),
		}
	}
	if seed := secret("KRAKEN_NATS_ACCOUNT_SEED"); seed != "" {
		s.nats = &natsuser.Config{
			URL: getenv("KRAKEN_NATS_URL"), AccountSeed: seed, Account: getenv("KRAKEN_NATS_ACCOUNT"),
			Network: network("KRAKEN_NATS_NETWORK"),
		}
		if s.nats.URL == "" {
			problems = append(problems, "KRAKEN_NATS_ACCOUNT_SEED is set, so KRAKEN_NATS_URL must say where NATS is")
		}
	}
	// Two installations sharing one server keep apart by their prefix.
	if p := getenv("KRAKEN_EXOSKELETON_PREFIX"); p != "" {
		if s.postgres != nil {
			s.postgres.Prefix = p
		}
		if s.s3 != nil {
			s.s3.Prefix = p
		}
		if s.nats != nil {
			s.nats.Prefix = p
		}
	}
	return s, problems
}

// exoKeyVar names the key every service credential is derived from.
const exoKeyVar = "KRAKEN_EXOSKELETON_KEY"

func (s *exoSettings) configured() bool { return s.postgres != nil || s.s3 != nil || s.nats != nil }

// setKey gives every service the key their tentacles' credentials are
// derived from, the same on every replica.
func (s *exoSettings) setKey(key []byte) error {
	if len(key) < 32 {
		return fmt.Errorf("%s (or %s_FILE) must be at least 32 bytes: enclave services are set up, and every tentacle's credentials on them are derived from it", exoKeyVar, exoKeyVar)
	}
	if s.postgres != nil {
		s.postgres.Key = key
	}
	if s.s3 != nil {
		s.s3.Key = key
	}
	if s.nats != nil {
		s.nats.Key = key
	}
	return nil
}

// exoskeleton is the services, opened, and how to let them go.
type exoskeleton struct {
	*enclave.Exoskeleton
	// natsOptions are the bot's own credentials on an operator-mode
	// NATS, for the queue triggers; nil when NATS is not a service.
	natsOptions []nats.Option
	close       func()
}

// openExoskeleton connects to each configured service; one that cannot be
// reached stops the start, so that no enclave is made without it.
func openExoskeleton(ctx context.Context, s exoSettings, log *slog.Logger) (*exoskeleton, error) {
	x := &exoskeleton{close: func() {}}
	var backends []enclave.Backend
	if s.postgres != nil {
		pg, err := postgres.New(ctx, *s.postgres)
		if err != nil {
			return nil, fmt.Errorf("enclave database: %w", err)
		}
		x.close = pg.Close
		backends = append(backends, pg)
	}
	if s.s3 != nil {
		objects, err := objectstore.New(ctx, *s.s3)
		if err != nil {
			x.close()
			return nil, fmt.Errorf("enclave object storage: %w", err)
		}
		backends = append(backends, objects)
	}
	if s.nats != nil {
		c := *s.nats
		c.Logger = log
		n, err := natsuser.New(ctx, c)
		if err != nil {
			x.close()
			return nil, fmt.Errorf("enclave messaging: %w", err)
		}
		if x.natsOptions, err = n.BotOptions(); err != nil {
			x.close()
			return nil, fmt.Errorf("enclave messaging: %w", err)
		}
		backends = append(backends, n)
	}
	var err error
	if x.Exoskeleton, err = enclave.NewExoskeleton(backends...); err != nil {
		x.close()
		return nil, err
	}
	if kinds := x.Kinds(); len(kinds) > 0 {
		log.Info("enclave services", "kinds", kinds)
	}
	return x, nil
}

// parseNetworks reads where tentacles reach a service, comma-separated:
// a CIDR ("10.0.5.0/24"), an address ("10.0.5.7"), or pods in a namespace
// ("ns:databases" or "ns:databases/app=postgres+role=primary"), on the
// port tentacles dial. Empty means nothing is opened beyond what the
// service derives itself.
func parseNetworks(v string) ([]enclave.Network, error) {
	var out []enclave.Network
	for _, entry := range strings.Split(v, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		var n enclave.Network
		if rest, ok := strings.CutPrefix(entry, "ns:"); ok {
			ns, sel, _ := strings.Cut(rest, "/")
			if ns == "" {
				return nil, fmt.Errorf("%q names no namespace", entry)
			}
			n.Namespace = ns
			if sel != "" {
				n.Pods = map[string]string{}
				for _, kv := range strings.Split(sel, "+") {
					k, val, ok := strings.Cut(kv, "=")
					if !ok || k == "" {
						return nil, fmt.Errorf("%q: pod labels are key=value joined by +", entry)
					}
					n.Pods[k] = val
				}
			}
			out = append(out, n)
			continue
		}
		if p, err := netip.ParsePrefix(entry); err == nil {
			n.CIDR = p.Masked().String()
		} else if a, err := netip.ParseAddr(entry); err == nil {
			n.CIDR = netip.PrefixFrom(a, a.BitLen()).String()
		} else {
			return nil, fmt.Errorf("%q is neither a CIDR, an address, nor ns:<namespace>[/labels]", entry)
		}
		out = append(out, n)
	}
	return out, nil
}

// hostPort splits "host:port", the port required.
func hostPort(v string) (string, int, error) {
	host, p, err := net.SplitHostPort(v)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port", v)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%q has no valid port", v)
	}
	return host, port, nil
}

// devExoskeleton opens the services set in the environment for `kraken
// dev` (e.g. KRAKEN_POSTGRES_URL=postgres://postgres@127.0.0.1/postgres),
// deriving credentials from a key kept in the data directory when none is
// given. With none set, tentacles get no services, as in a cluster
// without them.
func devExoskeleton(ctx context.Context, getenv func(string) string, data string, log *slog.Logger) (*exoskeleton, error) {
	var s exoSettings
	var problems []string
	if getenv(exoKeyVar) != "" || getenv(exoKeyVar+"_FILE") != "" {
		s, problems = exoSettingsFrom(getenv)
	} else if s, problems = exoServicesFrom(getenv); s.configured() {
		path := filepath.Join(data, devExoskeletonKeyFile)
		key, made, err := loadOrMakeKey(path)
		if err != nil {
			return nil, err
		}
		if made {
			log.Warn("generated the key enclave service credentials are derived from, for development only: a real deployment sets "+exoKeyVar, "file", path)
		}
		if err := s.setKey(key); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("enclave services: %s", strings.Join(problems, "; "))
	}
	return openExoskeleton(ctx, s, log)
}

// devExoskeletonKeyFile holds `kraken dev`'s generated exoskeleton key.
const devExoskeletonKeyFile = "exoskeleton.key"

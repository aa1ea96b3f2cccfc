// Package k8s is the only package that talks to the Kubernetes API: it
// provisions enclaves and deploys tentacles with server-side apply, and
// reports their status, logs and events. It implements the Cluster
// interfaces that the enclave and tentacle packages declare.
package k8s

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/kraken-ops/kraken/enclave"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// FieldManager owns every field the bot applies.
const FieldManager = "kraken"

// Labels and annotations on everything the bot creates.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "kraken"
	LabelEnclave   = "kraken.dev/enclave"
	LabelTentacle  = "kraken.dev/tentacle"

	AnnotationActor   = "kraken.dev/by"      // who asked, a Slack user id or "system"
	AnnotationAt      = "kraken.dev/at"      // when, RFC 3339
	AnnotationChannel = "kraken.dev/channel" // from which Slack channel
	AnnotationOwner   = "kraken.dev/owner"   // the enclave's owner
	AnnotationFrozen  = "kraken.dev/frozen"  // "true" while frozen
	AnnotationTeam    = "kraken.dev/team"    // the Slack team id
	AnnotationName    = "kraken.dev/channel-name"
)

// Config says how to reach the cluster and what to create in it.
type Config struct {
	// Rest is the API connection; see RestConfig.
	Rest *rest.Config
	// Image is the kraken image tentacle pods run `kraken engine` from.
	Image string
	// BotNamespace and BotPodLabels identify the bot's pods, which
	// enclave network policies let in.
	BotNamespace string
	BotPodLabels map[string]string
	// BotServiceAccount is the bot's ServiceAccount in BotNamespace,
	// which each enclave's RoleBinding grants EnclaveRole; default
	// "kraken".
	BotServiceAccount string
	// EnclaveRole is the ClusterRole a RoleBinding grants the bot in each
	// enclave namespace; the chart installs it.
	EnclaveRole string
	// IdentitiesSecret is the Secret in BotNamespace that holds people's
	// sign-ins (Identities); the chart creates it. Default
	// DefaultIdentitiesSecret.
	IdentitiesSecret string
	// DefaultQuota applies where an enclave sets nothing.
	DefaultQuota enclave.Quota
	// RunTransport carries POST /run to tentacle Services; nil means
	// http.DefaultTransport (in-cluster DNS). Tests route it to local
	// engine processes.
	RunTransport http.RoundTripper
	// RunTimeout bounds a run; zero means 5 minutes.
	RunTimeout time.Duration
	Logger     *slog.Logger

	// NodeSelector is put on every tentacle pod, e.g. to pin tentacles
	// to a gVisor node pool.
	NodeSelector map[string]string
	// RuntimeClass is the RuntimeClass tentacle pods run with when the
	// cluster has it; empty means DefaultRuntimeClass (gvisor), and
	// NoRuntimeClass ("none") turns the sandbox off.
	RuntimeClass string
}

// Client implements enclave.Cluster; NewTentacles(c) gives the
// tentacle.Cluster over the same connection.
type Client struct {
	cs  kubernetes.Interface
	cfg Config
	log *slog.Logger
}

// New connects to the cluster described by cfg.Rest.
func New(cfg Config) (*Client, error) {
	if cfg.Rest == nil {
		return nil, errors.New("k8s: no API connection configured")
	}
	if cfg.Rest.QPS == 0 && cfg.Rest.RateLimiter == nil {
		// client-go's default of 5 requests/s would throttle one enclave
		// provision (about ten requests) to two seconds; the API server's
		// own priority and fairness protects it.
		rc := rest.CopyConfig(cfg.Rest)
		rc.QPS, rc.Burst = 50, 100
		cfg.Rest = rc
	}
	cs, err := kubernetes.NewForConfig(cfg.Rest)
	if err != nil {
		return nil, fmt.Errorf("k8s: %w", err)
	}
	if cfg.EnclaveRole == "" {
		cfg.EnclaveRole = "kraken-enclave"
	}
	if cfg.IdentitiesSecret == "" {
		cfg.IdentitiesSecret = DefaultIdentitiesSecret
	}
	if cfg.RunTimeout <= 0 {
		cfg.RunTimeout = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BotNamespace == "" {
		cfg.BotNamespace = "kraken-system"
	}
	if cfg.BotServiceAccount == "" {
		cfg.BotServiceAccount = "kraken"
	}
	if len(cfg.BotPodLabels) == 0 {
		cfg.BotPodLabels = map[string]string{"app.kubernetes.io/name": "kraken"}
	}
	return &Client{cs: cs, cfg: cfg, log: cfg.Logger}, nil
}

// RestConfig finds the API connection: an explicit kubeconfig path (the
// --kubeconfig flag), then $KUBECONFIG, then the in-cluster service
// account, then ~/.kube/config.
func RestConfig(kubeconfig string, getenv func(string) string) (*rest.Config, error) {
	if kubeconfig == "" {
		kubeconfig = getenv("KUBECONFIG")
	}
	if kubeconfig != "" {
		c, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("k8s: kubeconfig %s: %w", kubeconfig, err)
		}
		return c, nil
	}
	if c, err := rest.InClusterConfig(); err == nil {
		return c, nil
	}
	home := getenv("HOME")
	if p := filepath.Join(home, ".kube", "config"); home != "" {
		if _, err := os.Stat(p); err == nil {
			return clientcmd.BuildConfigFromFlags("", p)
		}
	}
	return nil, errors.New("k8s: no cluster configured: run inside the cluster, or pass --kubeconfig, or set KUBECONFIG")
}

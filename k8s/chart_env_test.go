package k8s_test

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestChartServicesAndSignIn: the chart hands the bot its store key
// always, and the sign-in and enclave-service settings when they are
// turned on, every secret by reference to a Secret, never as a value.
func TestChartServicesAndSignIn(t *testing.T) {
	env := func(objs []renderedObject) map[string]corev1.EnvVar {
		t.Helper()
		d := findObject[appsv1.Deployment](t, objs, "Deployment", "kraken")
		out := map[string]corev1.EnvVar{}
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			out[e.Name] = e
		}
		return out
	}
	ref := func(e corev1.EnvVar) string {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			return "value " + e.Value
		}
		return e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
	}
	one := map[string]any{"replicaCount": 1}

	plain := env(renderChart(t, "kraken", "kraken-system", one))
	if got := ref(plain["KRAKEN_STORE_KEY"]); got != "kraken-store-key/key" {
		t.Errorf("KRAKEN_STORE_KEY from %s", got)
	}
	for name := range plain {
		if strings.HasPrefix(name, "KRAKEN_LOGIN_") || strings.HasPrefix(name, "KRAKEN_POSTGRES_") || strings.HasPrefix(name, "KRAKEN_S3_") || name == "KRAKEN_EXOSKELETON_KEY" {
			t.Errorf("%s is set although nothing turned it on", name)
		}
	}

	on := map[string]any{
		"replicaCount": 1,
		"login":        map[string]any{"issuer": "https://id.example.com", "clientID": "kraken", "existingSecret": "kraken-login"},
		"exoskeleton": map[string]any{
			"existingSecret": "kraken-exo", "prefix": "k2",
			"postgres": map[string]any{"enabled": true, "network": "ns:databases/app=postgres"},
			"s3":       map[string]any{"endpoint": "s3.storage.svc:7070", "network": "10.0.9.0/24"},
			"nats":     map[string]any{"enabled": true, "account": "AABC"},
		},
	}
	got := env(renderChart(t, "kraken", "kraken-system", on))
	for name, want := range map[string]string{
		"KRAKEN_LOGIN_ISSUER":        "value https://id.example.com",
		"KRAKEN_LOGIN_CLIENT_ID":     "value kraken",
		"KRAKEN_LOGIN_CLIENT_SECRET": "kraken-login/client-secret",
		"KRAKEN_EXOSKELETON_KEY":     "kraken-exo/key",
		"KRAKEN_EXOSKELETON_PREFIX":  "value k2",
		"KRAKEN_POSTGRES_URL":        "kraken-exo/postgres-url",
		"KRAKEN_POSTGRES_NETWORK":    "value ns:databases/app=postgres",
		"KRAKEN_S3_ENDPOINT":         "value s3.storage.svc:7070",
		"KRAKEN_S3_ACCESS_KEY":       "kraken-exo/s3-access-key",
		"KRAKEN_S3_SECRET_KEY":       "kraken-exo/s3-secret-key",
		"KRAKEN_S3_NETWORK":          "value 10.0.9.0/24",
		"KRAKEN_NATS_ACCOUNT_SEED":   "kraken-exo/nats-account-seed",
		"KRAKEN_NATS_ACCOUNT":        "value AABC",
	} {
		if r := ref(got[name]); r != want {
			t.Errorf("%s = %s, want %s", name, r, want)
		}
	}

	// A service without the Secret its credentials come from is refused
	// at render time, not at the bot's start.
	_, err := renderChartError(t, "kraken", "kraken-system", map[string]any{"replicaCount": 1, "exoskeleton": map[string]any{"postgres": map[string]any{"enabled": true}}})
	if err == nil || !strings.Contains(err.Error(), "exoskeleton.existingSecret is needed") {
		t.Errorf("postgres without a Secret: %v", err)
	}
}

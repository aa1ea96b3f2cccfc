package k8s_test

import (
	"testing"

	"github.com/kraken-ops/kraken/k8s"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestChartRuntimeClass: the chart's gVisor switch reaches the bot as a
// Config.RuntimeClass that means it. Off must be NoRuntimeClass: an
// empty value would mean DefaultRuntimeClass.
func TestChartRuntimeClass(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"default", nil, k8s.DefaultRuntimeClass},
		{"another class", map[string]any{"gvisor": map[string]any{"runtimeClassName": "runsc-fast"}}, "runsc-fast"},
		{"off", map[string]any{"gvisor": map[string]any{"enabled": false}}, k8s.NoRuntimeClass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var env []string
			for _, o := range renderChart(t, "kraken", "kraken-system", tt.values) {
				if o.GetKind() != "Deployment" {
					continue
				}
				var dep appsv1.Deployment
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &dep); err != nil {
					t.Fatal(err)
				}
				for _, c := range dep.Spec.Template.Spec.Containers {
					for _, e := range c.Env {
						if e.Name == "KRAKEN_RUNTIME_CLASS" {
							env = append(env, e.Value)
						}
					}
				}
			}
			if len(env) != 1 || env[0] != tt.want {
				t.Errorf("KRAKEN_RUNTIME_CLASS = %q, want %q", env, tt.want)
			}
		})
	}
}

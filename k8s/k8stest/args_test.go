package k8stest

import (
	"slices"
	"strings"
	"testing"
)

func TestRewriteEngineArgs(t *testing.T) {
	mounts := []mount{
		{path: "/app/workflow", local: "/tmp/p/volumes/workflow"},
		{path: "/app/secrets", local: "/tmp/p/volumes/secrets"},
		{path: "/app/workflow/nodes", local: "/tmp/p/volumes/nodes"},
	}
	const tail = "--port 40000 --addr 127.0.0.1 --deno /d/deno"
	tests := []struct {
		name     string
		args     string
		mounts   []mount
		want     string
		wantPort int
	}{
		{
			name: "flags with separate values", mounts: mounts,
			args:     "--workflow /app/workflow --port 9000 --mounted-secrets /app/secrets",
			want:     "--workflow /tmp/p/volumes/workflow --mounted-secrets /tmp/p/volumes/secrets " + tail,
			wantPort: 9000,
		},
		{
			name: "inline values, single dash, the longest mount wins", mounts: mounts,
			args:     "-workflow=/app/workflow/nodes/a.ts --addr=0.0.0.0 -v --deno /usr/bin/deno",
			want:     "--workflow /tmp/p/volumes/nodes/a.ts -v --mounted-secrets /tmp/p/volumes/secrets " + tail,
			wantPort: 8080,
		},
		{
			name:     "paths outside any mount are the image's, which is empty here",
			args:     "--workflow /app/workflow --grace 5s",
			want:     "--workflow /tmp/p/rootfs/app/workflow --grace 5s --mounted-secrets /tmp/p/rootfs/app/secrets " + tail,
			wantPort: 8080,
		},
		{
			name: "after --, arguments stay last", mounts: mounts,
			args:     "--mounted-secrets=/app/secrets -- /app/workflow",
			want:     "--mounted-secrets /tmp/p/volumes/secrets " + tail + " -- /tmp/p/volumes/workflow",
			wantPort: 8080,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, port := rewriteEngineArgs(strings.Fields(tt.args), tt.mounts, "/tmp/p/rootfs", 40000, "/d/deno")
			if strings.Join(got, " ") != tt.want || port != tt.wantPort {
				t.Errorf("got %q, port %d\nwant %q, port %d", strings.Join(got, " "), port, tt.want, tt.wantPort)
			}
		})
	}
}

func TestEngineCommand(t *testing.T) {
	tests := []struct {
		command, args []string
		want          []string
		ok            bool
	}{
		{[]string{"kraken", "engine", "--workflow", "/w"}, nil, []string{"--workflow", "/w"}, true},
		{[]string{"/usr/local/bin/kraken"}, []string{"engine", "--port", "8080"}, []string{"--port", "8080"}, true},
		{nil, []string{"engine"}, []string{}, true},
		{[]string{"proxy", "--listen", ":3128"}, nil, nil, false},
	}
	for _, tt := range tests {
		got, ok := engineCommand(tt.command, tt.args)
		if ok != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("engineCommand(%q, %q) = %q, %v; want %q, %v", tt.command, tt.args, got, ok, tt.want, tt.ok)
		}
	}
}

func TestServiceHost(t *testing.T) {
	tests := []struct {
		host, name, ns string
		ok             bool
	}{
		{"echo.team-a.svc.cluster.local", "echo", "team-a", true},
		{"echo.team-a.svc.cluster.local.", "echo", "team-a", true},
		{"echo.team-a.svc", "echo", "team-a", true},
		{"echo.team-a", "echo", "team-a", true},
		{"api.github.com", "", "", false},
		{"localhost", "", "", false},
	}
	for _, tt := range tests {
		name, ns, ok := serviceHost(tt.host)
		if name != tt.name || ns != tt.ns || ok != tt.ok {
			t.Errorf("serviceHost(%q) = %q, %q, %v; want %q, %q, %v", tt.host, name, ns, ok, tt.name, tt.ns, tt.ok)
		}
	}
}

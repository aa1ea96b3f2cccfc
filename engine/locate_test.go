package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindDeno(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "deno-explicit")
	envBin := filepath.Join(dir, "deno-env")
	plain := filepath.Join(dir, "not-executable")
	for _, p := range []string{exe, envBin} {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.WriteFile(plain, nil, 0o644)
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "KRAKEN_DENO" {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name, explicit, env, want, err string
	}{
		{"the flag wins", exe, envBin, exe, ""},
		{"then the environment", "", envBin, envBin, ""},
		{"a flag naming a non-executable is an error", plain, envBin, "", "not an executable"},
		{"an env naming nothing is an error", "", filepath.Join(dir, "missing"), "", "not an executable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FindDeno(tt.explicit, env(tt.env))
			if tt.err != "" {
				if !errors.Is(err, ErrNoDeno) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestFindDenoSaysHowToInstall(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("PATH", t.TempDir())
	_, err := FindDeno("", func(string) string { return "" })
	if err == nil {
		t.Fatal("found a Deno with no flag, no env, no pinned install near the working directory and an empty PATH")
	}
	for _, want := range []string{"make deno", DenoVersion, "--deno", "KRAKEN_DENO"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
}

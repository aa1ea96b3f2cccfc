package engine

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// DenoVersion is the Deno release the project pins and tests against.
const DenoVersion = "2.9.6"

// PinnedDenoPath is where `make deno` installs Deno, relative to the
// project root.
func PinnedDenoPath() string {
	arch := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	return filepath.Join(".cache", "deno", "node_modules", "@deno", "linux-"+arch+"-glibc", "deno")
}

// ErrNoDeno means no Deno binary could be found; its message says how to
// get one.
var ErrNoDeno = errors.New("deno not found")

// FindDeno picks the Deno binary: the explicit path (the --deno flag),
// then $KRAKEN_DENO, then the Makefile's pinned install found next to the
// working directory or the kraken binary (or a parent of either), then
// deno on PATH.
func FindDeno(explicit string, getenv func(string) string) (string, error) {
	for _, p := range []string{explicit, getenv("KRAKEN_DENO")} {
		if p == "" {
			continue
		}
		if !isExecutable(p) {
			return "", fmt.Errorf("%w: %s is not an executable file", ErrNoDeno, p)
		}
		return p, nil
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for range 4 {
			if p := filepath.Join(dir, PinnedDenoPath()); isExecutable(p) {
				return p, nil
			}
			dir = filepath.Dir(dir)
		}
	}
	if p, err := exec.LookPath("deno"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: run `make deno` in the project (it installs Deno %s from the npm registry into %s), "+
		"or pass --deno PATH, or set KRAKEN_DENO", ErrNoDeno, DenoVersion, PinnedDenoPath())
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

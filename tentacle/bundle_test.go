package tentacle

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const bundleSpec = `name: b
version: "1.0"
nodes:
  a:
    path: ./nodes/a.ts
`

func TestLoadBundleFiles(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		FileName:                 bundleSpec,
		"nodes/a.ts":             `import { x } from "../lib/util.ts"; export default async () => x;`,
		"lib/util.ts":            "export const x = 1;",
		"lib/data.json":          `{"k": 1}`,
		"sub/tests/helper.ts":    "nested tests directories are modules like any other",
		"README.md":              "docs",
		"readme.txt":             "docs",
		"docs/guide.MD":          "docs",
		"tests/fixtures/a.json":  `{"input": {}, "expected": 1}`,
		".secrets.yaml":          "k: v",
		".secrets/token":         "v",
		".git/config":            "[core]",
		"nodes/.hidden.ts":       "x",
		"empty-dir/.placeholder": "",
	})
	b, err := LoadBundle(dir, map[string]any{"k": "v"})
	if err != nil {
		t.Fatalf("LoadBundle: %v", err)
	}
	got := slices.Sorted(maps.Keys(b.Files))
	want := []string{"lib/data.json", "lib/util.ts", "nodes/a.ts", "sub/tests/helper.ts", FileName}
	if !slices.Equal(got, want) {
		t.Errorf("files = %q, want %q", got, want)
	}
	if string(b.Files["lib/util.ts"]) != "export const x = 1;" {
		t.Errorf("lib/util.ts = %q", b.Files["lib/util.ts"])
	}
	if b.Workflow == nil || b.Workflow.Name != "b" {
		t.Errorf("workflow = %+v", b.Workflow)
	}
	if b.Secrets["k"] != "v" {
		t.Errorf("secrets = %v", b.Secrets)
	}
}

func TestLoadBundleSymlinks(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret.txt": "not yours", "lib/x.ts": "x"})
	tests := []struct {
		name    string
		links   map[string]string // link path -> target (relative targets stay relative)
		want    []string          // extra files expected besides workflow.yaml and nodes/a.ts
		wantErr string
	}{
		{name: "file inside", links: map[string]string{"shared.ts": "nodes/a.ts"}, want: []string{"shared.ts"}},
		{name: "directory inside", links: map[string]string{"lib": "nodes"}, want: []string{"lib/a.ts"}},
		{name: "file outside", links: map[string]string{"leak.txt": filepath.Join(outside, "secret.txt")}, wantErr: "outside the tentacle directory"},
		{name: "directory outside", links: map[string]string{"vendor": filepath.Join(outside, "lib")}, wantErr: "outside the tentacle directory"},
		{name: "relative escape", links: map[string]string{"up": "../"}, wantErr: "outside the tentacle directory"},
		{name: "loop", links: map[string]string{"nodes/again": ".."}, wantErr: "leads back into a directory"},
		{name: "broken", links: map[string]string{"gone.ts": "nodes/missing.ts"}, wantErr: "is broken"},
		{name: "hidden link outside is ignored", links: map[string]string{".env": filepath.Join(outside, "secret.txt")}},
		{name: "tests link is skipped", links: map[string]string{"tests": "nodes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{FileName: bundleSpec, "nodes/a.ts": "export default async () => 1;"})
			for link, target := range tt.links {
				if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(link))); err != nil {
					t.Fatal(err)
				}
			}
			b, err := LoadBundle(dir, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadBundle: %v", err)
			}
			want := slices.Sorted(slices.Values(append([]string{FileName, "nodes/a.ts"}, tt.want...)))
			if got := slices.Sorted(maps.Keys(b.Files)); !slices.Equal(got, want) {
				t.Errorf("files = %q, want %q", got, want)
			}
		})
	}
}

func TestLoadBundleTooLarge(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		FileName:             bundleSpec,
		"nodes/a.ts":         "export default async () => 1;",
		"data/big.json":      strings.Repeat("x", 600<<10-len(bundleSpec)-len("export default async () => 1;")),
		"data/medium.json":   strings.Repeat("y", 300<<10),
		"data/small.json":    strings.Repeat("z", 10<<10),
		"tests/fixture.json": strings.Repeat("t", 2<<20), // excluded, so it does not count
	})
	_, err := LoadBundle(dir, nil)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	for _, want := range []string{"data/big.json (599.9 KiB)", "data/medium.json (300.0 KiB)", "(921600 bytes)", "(931840 bytes)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	// Just under the limit is fine.
	if err := os.Remove(filepath.Join(dir, "data", "small.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBundle(dir, nil); err != nil {
		t.Errorf("at %d bytes: %v", 900<<10, err)
	}
}

func TestLoadBundleInvalidWorkflow(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{FileName: bundleSpec}) // nodes/a.ts missing
	_, err := LoadBundle(dir, nil)
	var se *SpecError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a *SpecError", err)
	}
}

func TestBundleDigest(t *testing.T) {
	base := map[string][]byte{FileName: []byte(bundleSpec), "nodes/a.ts": []byte("a")}
	digest := func(files map[string][]byte) string { return (&Bundle{Files: files}).Digest() }
	with := func(k, v string) map[string][]byte {
		m := maps.Clone(base)
		m[k] = []byte(v)
		return m
	}
	d := digest(base)
	if !strings.HasPrefix(d, "sha256:") || len(d) != len("sha256:")+64 {
		t.Fatalf("digest = %q", d)
	}
	if again := digest(maps.Clone(base)); again != d {
		t.Errorf("digest not stable: %s then %s", d, again)
	}
	// Secrets are not files: they must not change the digest.
	if s := (&Bundle{Files: base, Secrets: map[string]any{"k": "v"}}).Digest(); s != d {
		t.Errorf("secrets changed the digest")
	}
	different := map[string]map[string][]byte{
		"content changed": with("nodes/a.ts", "b"),
		"file added":      with("lib/x.ts", ""),
		"file renamed":    {FileName: []byte(bundleSpec), "nodes/b.ts": []byte("a")},
		// The same bytes split differently between path and content.
		"boundary moved": {FileName: []byte(bundleSpec), "nodes/a.t": []byte("sa")},
	}
	for name, files := range different {
		if digest(files) == d {
			t.Errorf("%s: digest unchanged", name)
		}
	}
}

func TestBundleFromFiles(t *testing.T) {
	files := map[string][]byte{FileName: []byte(bundleSpec), "nodes/a.ts": []byte("export default async () => 1;")}
	b, err := BundleFromFiles(files, nil)
	if err != nil {
		t.Fatalf("BundleFromFiles: %v", err)
	}
	if b.Workflow.Name != "b" || b.Digest() != (&Bundle{Files: files}).Digest() {
		t.Errorf("bundle = %+v", b)
	}
	tests := map[string]struct {
		files map[string][]byte
		want  string
	}{
		"no workflow": {map[string][]byte{"nodes/a.ts": nil}, "workflow.yaml is missing"},
		"no node":     {map[string][]byte{FileName: []byte(bundleSpec)}, "nodes/a.ts is missing"},
		"too large":   {map[string][]byte{FileName: []byte(bundleSpec), "nodes/a.ts": make([]byte, MaxBundleSize)}, "tentacle too large"},
		"too many":    {manyFiles(MaxBundleFiles + 1), "1001 files"},
		"long path":   {map[string][]byte{FileName: []byte(bundleSpec), "nodes/a.ts": nil, strings.Repeat("d/", 128) + "x": nil}, "257 characters"},
	}
	// A revision's files come back from the cluster, where anyone with
	// write access to the ConfigMap could have put any path.
	for _, bad := range []string{"../escape.ts", "nodes/../../x.ts", "/etc/passwd", "./nodes/b.ts", "nodes//b.ts", "nodes/", ".", "..data/x", "nodes/..b"} {
		tests["path "+bad] = struct {
			files map[string][]byte
			want  string
		}{map[string][]byte{FileName: []byte(bundleSpec), "nodes/a.ts": nil, bad: nil}, fmt.Sprintf("the file path %q cannot be used", bad)}
	}
	for name, tt := range tests {
		if _, err := BundleFromFiles(tt.files, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tt.want)
		}
	}
}

func TestBundleCheckPaths(t *testing.T) {
	ok := &Bundle{Files: map[string][]byte{FileName: nil, "nodes/a.ts": nil, ".hidden/x": nil, "a..b/c..": nil, "with space.ts": nil}}
	if err := ok.CheckPaths(); err != nil {
		t.Errorf("CheckPaths: %v", err)
	}
	bad := &Bundle{Files: map[string][]byte{FileName: nil, "lib/../../x": nil}}
	if err := bad.CheckPaths(); err == nil {
		t.Errorf("CheckPaths accepted %q", "lib/../../x")
	}
}

func manyFiles(n int) map[string][]byte {
	files := map[string][]byte{FileName: []byte(bundleSpec), "nodes/a.ts": nil}
	for i := len(files); i < n; i++ {
		files[fmt.Sprintf("data/%d.json", i)] = nil
	}
	return files
}

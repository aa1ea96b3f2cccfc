package tentacle

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree creates files under dir; content "DIR" makes a directory.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if content == "DIR" {
			if err := os.MkdirAll(path, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const loadSpec = `name: t
version: "1.0"
nodes:
  fetch:
    path: nodes/fetch.ts
  store:
    path: nodes/store.ts
edges:
  - {from: fetch, to: store}
`

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		FileName:         loadSpec,
		"nodes/fetch.ts": "export default async () => ({})\n",
		"nodes/store.ts": "export default async () => ({})\n",
	})
	w, err := Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !filepath.IsAbs(w.Dir) || w.Dir != dir {
		t.Errorf("Dir = %q, want %q", w.Dir, dir)
	}
	if len(w.NodeIDs) != 2 || w.Nodes["fetch"].ID != "fetch" {
		t.Errorf("nodes = %v", w.Nodes)
	}
}

func TestLoadRelativeDirIsMadeAbsolute(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		FileName:         loadSpec,
		"nodes/fetch.ts": "x",
		"nodes/store.ts": "x",
	})
	t.Chdir(dir)
	w, err := Load(".")
	if err != nil {
		t.Fatal(err)
	}
	if w.Dir != dir {
		t.Errorf("Dir = %q, want %q", w.Dir, dir)
	}
}

func TestLoadNodeFileProblems(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"evil.ts": "x"})
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		line  int
		field string
		msg   string
	}{
		{
			name:  "missing node file",
			setup: func(t *testing.T, dir string) { writeTree(t, dir, map[string]string{"nodes/fetch.ts": "x"}) },
			line:  7, field: "nodes.store.path", msg: "node file nodes/store.ts does not exist",
		},
		{
			name: "node file is a directory",
			setup: func(t *testing.T, dir string) {
				writeTree(t, dir, map[string]string{"nodes/fetch.ts": "x", "nodes/store.ts": "DIR"})
			},
			line: 7, field: "nodes.store.path", msg: "is not a regular file",
		},
		{
			name: "oversized node file",
			setup: func(t *testing.T, dir string) {
				writeTree(t, dir, map[string]string{
					"nodes/fetch.ts": strings.Repeat("x", MaxNodeFileSize+1),
					"nodes/store.ts": strings.Repeat("x", MaxNodeFileSize), // exactly the limit is fine
				})
			},
			line: 5, field: "nodes.fetch.path", msg: "is 524289 bytes; node files may be at most 512 KiB",
		},
		{
			name: "symlink out of the tentacle",
			setup: func(t *testing.T, dir string) {
				writeTree(t, dir, map[string]string{"nodes/fetch.ts": "x"})
				symlink(t, filepath.Join(outside, "evil.ts"), filepath.Join(dir, "nodes", "store.ts"))
			},
			line: 7, field: "nodes.store.path", msg: "node files must stay inside the tentacle directory",
		},
		{
			name: "symlinked directory out of the tentacle",
			setup: func(t *testing.T, dir string) {
				writeTree(t, dir, map[string]string{FileName: strings.Replace(loadSpec, "nodes/store.ts", "lib/evil.ts", 1), "nodes/fetch.ts": "x"})
				symlink(t, outside, filepath.Join(dir, "lib"))
			},
			line: 7, field: "nodes.store.path", msg: "outside the tentacle directory",
		},
		{
			name: "dangling symlink",
			setup: func(t *testing.T, dir string) {
				writeTree(t, dir, map[string]string{"nodes/fetch.ts": "x"})
				symlink(t, filepath.Join(dir, "nowhere.ts"), filepath.Join(dir, "nodes", "store.ts"))
			},
			line: 7, field: "nodes.store.path", msg: "does not exist",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, map[string]string{FileName: loadSpec})
			tt.setup(t, dir)
			_, err := Load(dir)
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("Load error = %v, want *SpecError", err)
			}
			if len(se.Problems) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v", len(se.Problems), se)
			}
			p := se.Problems[0]
			if p.File != filepath.Join(dir, FileName) || p.Line != tt.line || p.Column != 11 || p.Field != tt.field || !strings.Contains(p.Msg, tt.msg) {
				t.Errorf("problem = %s\nwant %s:%d:11: %s: …%s…", p, filepath.Join(dir, FileName), tt.line, tt.field, tt.msg)
			}
		})
	}
}

func TestLoadSymlinkInsideIsFine(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		FileName:         loadSpec,
		"src/fetch.ts":   "x",
		"nodes/store.ts": "x",
	})
	symlink(t, filepath.Join(dir, "src", "fetch.ts"), filepath.Join(dir, "nodes", "fetch.ts"))
	if _, err := Load(dir); err != nil {
		t.Fatal(err)
	}
}

func TestLoadThroughSymlinkedDir(t *testing.T) {
	real := t.TempDir()
	writeTree(t, real, map[string]string{FileName: loadSpec, "nodes/fetch.ts": "x", "nodes/store.ts": "x"})
	link := filepath.Join(t.TempDir(), "tentacle")
	symlink(t, real, link)
	if _, err := Load(link); err != nil {
		t.Fatalf("a tentacle reached through a symlink should load: %v", err)
	}
}

func TestLoadCombinesSpecAndFileProblems(t *testing.T) {
	dir := t.TempDir()
	spec := strings.Replace(loadSpec, "name: t", "name: T", 1) + "  - {from: fetch, to: ghost}\n"
	writeTree(t, dir, map[string]string{FileName: spec, "nodes/fetch.ts": "x"})
	_, err := Load(dir)
	var se *SpecError
	if !errors.As(err, &se) {
		t.Fatalf("Load error = %v", err)
	}
	var fields []string
	for _, p := range se.Problems {
		fields = append(fields, p.Field)
	}
	want := []string{"name", "nodes.store.path", "edges[1].to"}
	if strings.Join(fields, " ") != strings.Join(want, " ") {
		t.Errorf("fields = %v, want %v\n%v", fields, want, se)
	}
}

func TestLoadMissingSpec(t *testing.T) {
	_, err := Load(t.TempDir())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load error = %v, want fs.ErrNotExist", err)
	}
}

func TestLoadOversizedSpec(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{FileName: loadSpec + "# " + strings.Repeat("x", MaxSpecSize) + "\n"})
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "larger than 1024 KiB") {
		t.Errorf("Load error = %v", err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
}

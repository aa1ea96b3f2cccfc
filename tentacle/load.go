package tentacle

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MaxNodeFileSize is the largest node file accepted. Nodes are small
// scripts; anything bigger is most likely a bundled dependency or data.
const MaxNodeFileSize = 512 << 10

// Load reads dir/workflow.yaml, validates it, and checks that every node
// file exists inside dir. Problems in the spec and with node files come
// together in one *SpecError; failing to read workflow.yaml at all is
// returned as is (errors.Is(err, fs.ErrNotExist) works).
func Load(dir string) (*Workflow, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("load tentacle %s: %w", dir, err)
	}
	file := filepath.Join(dir, FileName)
	data, err := readAtMost(file, MaxSpecSize)
	if err != nil {
		return nil, fmt.Errorf("load tentacle: %w", err)
	}
	p := parse(file, data)
	if p.wf != nil {
		checkNodeFiles(p, abs)
	}
	if err := p.r.err(); err != nil {
		return nil, err
	}
	p.wf.Dir = abs
	return p.wf, nil
}

// readAtMost reads up to limit+1 bytes: enough for the caller to tell
// that the file is too big without reading all of it.
func readAtMost(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit+1))
}

// checkNodeFiles checks the files of the nodes whose path is well formed.
func checkNodeFiles(p *parsed, dir string) {
	// Compare resolved paths: dir itself may sit behind a symlink.
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		realDir = dir
	}
	for _, id := range p.wf.NodeIDs {
		at := p.nodePaths[id]
		if at == nil {
			continue
		}
		if err := checkNodeFile(dir, realDir, p.wf.Nodes[id].Path); err != nil {
			p.r.errorf(at, "nodes."+id+".path", "%v", err)
		}
	}
}

// checkNodeFile checks one node file: present, regular, inside the
// tentacle once symlinks are resolved, and not too big.
func checkNodeFile(dir, realDir, rel string) error {
	real, err := filepath.EvalSymlinks(filepath.Join(dir, filepath.FromSlash(rel)))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("node file %s does not exist", rel)
	}
	if err != nil {
		return fmt.Errorf("node file %s: %w", rel, err)
	}
	if !within(realDir, real) {
		return fmt.Errorf("node file %s resolves to %s, outside the tentacle directory: node files must stay inside the tentacle directory", rel, real)
	}
	info, err := os.Stat(real)
	switch {
	case err != nil:
		return fmt.Errorf("node file %s: %w", rel, err)
	case !info.Mode().IsRegular():
		return fmt.Errorf("node file %s is not a regular file", rel)
	case info.Size() > MaxNodeFileSize:
		return fmt.Errorf("node file %s is %d bytes; node files may be at most %d KiB", rel, info.Size(), MaxNodeFileSize>>10)
	}
	return nil
}

// within reports whether path is dir or below it; both must be clean.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && !filepath.IsAbs(rel) && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

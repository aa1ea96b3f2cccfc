package tentacle

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// MaxBundleSize bounds the files of one tentacle. A deployed revision
// travels in one ConfigMap, which Kubernetes caps at 1 MiB including its
// keys and metadata; the rest of that MiB is the margin.
const MaxBundleSize = 900 << 10

// MaxBundleFiles and MaxBundlePath bound what the revision's index of
// files adds to its size.
const (
	MaxBundleFiles = 1000
	MaxBundlePath  = 255
)

// LoadBundle loads the tentacle in dir and collects the files its nodes
// may import: every regular file under dir except hidden files and
// directories (.secrets*, .git, ...), the top-level tests/ directory and
// documentation (README*, *.md). Symbolic links are followed when they
// stay inside dir and refused when they leave it. A bundle whose files
// add up to more than MaxBundleSize is refused with an error wrapping
// ErrTooLarge that names the biggest files.
func LoadBundle(dir string, secrets map[string]any) (*Bundle, error) {
	wf, err := Load(dir)
	if err != nil {
		return nil, err
	}
	root, err := filepath.EvalSymlinks(wf.Dir)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	c := collector{root: root}
	if err := c.walk(root, "", []string{root}); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	if err := checkSize(c.total, c.sizes); err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	files := make(map[string][]byte, len(c.paths))
	total := 0
	for rel, real := range c.paths {
		// Read at most what is left of the budget, so a file that grew
		// since it was measured cannot blow the limit unnoticed.
		data, err := readAtMost(real, int64(MaxBundleSize-total))
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %w", dir, err)
		}
		total += len(data)
		if total > MaxBundleSize {
			return nil, fmt.Errorf("bundle %s: %w: the files grew past %s while being read", dir, ErrTooLarge, humanSize(MaxBundleSize))
		}
		files[rel] = data
	}
	return &Bundle{Workflow: wf, Files: files, Secrets: secrets}, nil
}

// BundleFromFiles rebuilds a bundle from files already collected, as a
// deployed revision holds them: workflow.yaml is parsed and every node
// file must be among the files.
func BundleFromFiles(files map[string][]byte, secrets map[string]any) (*Bundle, error) {
	spec, ok := files[FileName]
	if !ok {
		return nil, fmt.Errorf("bundle: %s is missing", FileName)
	}
	wf, err := Parse(FileName, spec)
	if err != nil {
		return nil, err
	}
	for _, id := range wf.NodeIDs {
		p := path.Clean(wf.Nodes[id].Path)
		data, ok := files[p]
		if !ok {
			return nil, fmt.Errorf("bundle: node %s: file %s is missing", id, p)
		}
		if len(data) > MaxNodeFileSize {
			return nil, fmt.Errorf("%w: node file %s is %d bytes; node files may be at most %d KiB", ErrTooLarge, p, len(data), MaxNodeFileSize>>10)
		}
	}
	b := &Bundle{Workflow: wf, Files: files, Secrets: secrets}
	if err := b.CheckPaths(); err != nil {
		return nil, err
	}
	if err := b.CheckSize(); err != nil {
		return nil, err
	}
	return b, nil
}

// CheckPaths refuses a file path that could point outside the tentacle
// directory or that a volume could not hold: every path must be
// fs.ValidPath (relative, slash-separated, no empty, "." or ".."
// element), not "." itself, and no element may start with "..", which
// Kubernetes keeps for the files of its volumes. LoadBundle makes only
// such paths; bundles made otherwise need the check.
func (b *Bundle) CheckPaths() error {
	for _, p := range slices.Sorted(maps.Keys(b.Files)) {
		if !fs.ValidPath(p) || p == "." || slices.ContainsFunc(strings.Split(p, "/"), func(e string) bool { return strings.HasPrefix(e, "..") }) {
			return fmt.Errorf("bundle: the file path %q cannot be used: a path must be relative and slash-separated, with no empty, '.' or '..' element and no element starting with '..'", p)
		}
	}
	return nil
}

// Size is the number of bytes of the bundle's files.
func (b *Bundle) Size() int {
	n := 0
	for _, data := range b.Files {
		n += len(data)
	}
	return n
}

// CheckSize returns an error wrapping ErrTooLarge when the files add up
// to more than MaxBundleSize. Bundles not made by LoadBundle need it.
func (b *Bundle) CheckSize() error {
	sizes := make(map[string]int64, len(b.Files))
	for p, data := range b.Files {
		sizes[p] = int64(len(data))
	}
	return checkSize(int64(b.Size()), sizes)
}

// Digest identifies the bundle's files: sha256 over the sorted paths and
// their contents, each length-prefixed so that no two different bundles
// hash the same bytes. Secrets are not part of it.
func (b *Bundle) Digest() string {
	h := sha256.New()
	for _, p := range slices.Sorted(maps.Keys(b.Files)) {
		data := b.Files[p]
		fmt.Fprintf(h, "%d:%s\x00%d:", len(p), p, len(data))
		h.Write(data)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// collector walks a tentacle directory. paths maps the slash-separated
// path inside the bundle to the real file to read.
type collector struct {
	root  string
	paths map[string]string
	sizes map[string]int64
	total int64
}

// walk collects the files of dir (a resolved path), known inside the
// bundle as rel. stack holds the resolved directories being walked, to
// refuse a link back into one of them, which would never end.
func (c *collector) walk(dir, rel string, stack []string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		relPath := path.Join(rel, name)
		if skipped(name, rel == "", e.IsDir()) {
			continue
		}
		full := filepath.Join(dir, name)
		info, err := e.Info()
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			real, err := filepath.EvalSymlinks(full)
			if err != nil {
				return fmt.Errorf("symbolic link %s is broken: %w", relPath, err)
			}
			if !within(c.root, real) {
				return fmt.Errorf("symbolic link %s points to %s, outside the tentacle directory: a tentacle may only use files inside its directory", relPath, real)
			}
			if info, err = os.Stat(real); err != nil {
				return err
			}
			full = real
			// A linked directory or file is judged by its link name;
			// the name of its target does not matter.
			if skipped(name, rel == "", info.IsDir()) {
				continue
			}
		}
		switch {
		case info.IsDir():
			if slices.ContainsFunc(stack, func(d string) bool { return within(full, d) }) {
				return fmt.Errorf("symbolic link %s leads back into a directory that contains it", relPath)
			}
			if err := c.walk(full, relPath, append(stack, full)); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if c.paths == nil {
				c.paths, c.sizes = map[string]string{}, map[string]int64{}
			}
			c.paths[relPath] = full
			c.sizes[relPath] = info.Size()
			c.total += info.Size()
		}
		// Sockets, devices and pipes cannot be imported; leave them.
	}
	return nil
}

// skipped reports whether a directory entry stays out of the bundle:
// hidden entries (secrets, VCS data), the top-level tests directory
// (fixtures are for `tentacle test`, not for the cluster) and
// documentation.
func skipped(name string, top, dir bool) bool {
	switch {
	case strings.HasPrefix(name, "."):
		return true
	case dir:
		return top && name == "tests"
	case strings.HasPrefix(strings.ToUpper(name), "README"):
		return true
	case strings.EqualFold(filepath.Ext(name), ".md"):
		return true
	}
	return false
}

// checkSize refuses more than MaxBundleSize bytes, naming the biggest
// files since those are what the author has to move out.
func checkSize(total int64, sizes map[string]int64) error {
	if len(sizes) > MaxBundleFiles {
		return fmt.Errorf("%w: it has %d files, more than the %d a tentacle may have", ErrTooLarge, len(sizes), MaxBundleFiles)
	}
	for _, p := range slices.Sorted(maps.Keys(sizes)) {
		if len(p) > MaxBundlePath {
			return fmt.Errorf("%w: the path %s… is %d characters long, more than %d", ErrTooLarge, p[:40], len(p), MaxBundlePath)
		}
	}
	if total <= MaxBundleSize {
		return nil
	}
	type file struct {
		path string
		size int64
	}
	var files []file
	for p, s := range sizes {
		files = append(files, file{p, s})
	}
	slices.SortFunc(files, func(a, b file) int {
		return cmp.Or(cmp.Compare(b.size, a.size), strings.Compare(a.path, b.path))
	})
	var biggest []string
	for _, f := range files[:min(3, len(files))] {
		biggest = append(biggest, f.path+" ("+humanSize(f.size)+")")
	}
	return fmt.Errorf("%w: its files add up to %s (%d bytes), more than the %s (%d bytes) a tentacle may have; the biggest are %s. Fetch data at run time instead of shipping it, or keep test data under tests/",
		ErrTooLarge, humanSize(total), total, humanSize(MaxBundleSize), MaxBundleSize, strings.Join(biggest, ", "))
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

package console

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxUpload bounds what !upload reads into memory. The registry takes
// far less (a tentacle archive is at most a few MiB); this only keeps a
// mistaken `!upload ~` from reading a home directory.
const maxUpload = 32 << 20

// upload is a file shared in the channel, kept in memory.
type upload struct {
	name string
	data []byte
}

// readUpload reads what !upload names: a file as it is, a directory
// packed as <dir>.tar.gz with the directory as its top folder, as `tar
// czf` would make it.
func readUpload(p string) (upload, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return upload{}, err
	}
	if !fi.IsDir() {
		if fi.Size() > maxUpload {
			return upload{}, fmt.Errorf("%s is larger than %d MiB", p, maxUpload>>20)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return upload{}, err
		}
		return upload{name: filepath.Base(p), data: data}, nil
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return upload{}, err
	}
	top := filepath.Base(abs)
	data, err := packDir(abs, top)
	if err != nil {
		return upload{}, err
	}
	return upload{name: top + ".tar.gz", data: data}, nil
}

// packDir packs dir as a gzipped tar under the folder top. Hidden files
// and folders (.git, .secrets/, .secrets.yaml) and node_modules stay
// out: no tentacle needs them, and secrets must never be shared in a
// channel. Symbolic links stay out too, because the bot refuses
// archives holding them.
func packDir(dir, top string) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		name := path.Join(top, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755})
		case !d.Type().IsRegular():
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if total += fi.Size(); total > maxUpload {
			return fmt.Errorf("%s holds more than %d MiB; a tentacle is far smaller, so pick its folder", dir, maxUpload>>20)
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(tw, f, fi.Size())
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// open gives the registry the upload's content, refusing more than max
// bytes as a workspace's download would.
func (u upload) open(_ context.Context, max int64) (io.ReadCloser, error) {
	if int64(len(u.data)) > max {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d asked for", u.name, len(u.data), max)
	}
	return io.NopCloser(bytes.NewReader(u.data)), nil
}

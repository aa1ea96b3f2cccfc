package tentacle

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ent is one archive entry for the tests.
type ent struct {
	name, body string
	typ        byte        // tar type; 0 is a regular file (a directory when name ends in /)
	link       string      // tar link target
	mode       fs.FileMode // zip: type bits, e.g. fs.ModeSymlink (body is the target)
	size       int64       // when > 0, body is size zero bytes (bombs)
}

func (e ent) reader() io.Reader {
	if e.size > 0 {
		return io.LimitReader(zeros{}, e.size)
	}
	return strings.NewReader(e.body)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func makeTar(t testing.TB, gz bool, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		// The fastest level still shrinks the bombs enough and keeps the
		// tests quick under -race.
		zw, _ = gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, Format: tar.FormatPAX}
		switch {
		case e.typ == 0 && strings.HasSuffix(e.name, "/"):
			h.Typeflag = tar.TypeDir
		case e.typ == 0:
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
			if e.size > 0 {
				h.Size = e.size
			}
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			h = &tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: e.name, PAXRecords: map[string]string{"comment": "git archive writes one"}, Format: tar.FormatPAX}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, e.reader()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func makeZip(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	for _, e := range ents {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.size == 0 && len(e.body) < 1<<10 {
			// A flate writer costs most of a MiB; the tests with a
			// thousand entries would spend their time making them.
			h.Method = zip.Store
		}
		if e.mode != 0 {
			h.SetMode(e.mode | 0o777)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(w, e.reader()); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// under puts entries under a top directory, as archiving a folder does.
func under(dir string, ents ...ent) []ent {
	out := []ent{{name: dir + "/"}}
	for _, e := range ents {
		e.name = dir + "/" + e.name
		out = append(out, e)
	}
	return out
}

// tentacleEnts is a small tentacle with what an archive of its folder
// also holds and the bundle leaves out.
var tentacleEnts = []ent{
	{name: FileName, body: bundleSpec},
	{name: "nodes/"},
	{name: "nodes/a.ts", body: `import { x } from "../lib/util.ts"; export default async () => x;`},
	{name: "lib/util.ts", body: "export const x = 1;"},
	{name: "README.md", body: "docs"},
	{name: "tests/fixtures/a.json", body: `{"input": {}, "expected": 1}`},
	{name: ".DS_Store", body: "\x00\x00\x00\x01Bud1"},
	{name: ".secrets.yaml", body: "token: hunter2"},
	{name: ".secrets/api", body: "hunter3"},
	{name: ".git/config", body: "[core]"},
}

var tentacleFiles = []string{"lib/util.ts", "nodes/a.ts", FileName}

func TestBundleFromArchiveLayouts(t *testing.T) {
	macJunk := []ent{{name: "__MACOSX/"}, {name: "__MACOSX/hello/._workflow.yaml", body: "\x00\x05\x16\x07junk"}}
	tests := []struct {
		name string
		data []byte
	}{
		{"tar.gz with a top folder", makeTar(t, true, under("hello", tentacleEnts...)...)},
		{"tar.gz at the root", makeTar(t, true, tentacleEnts...)},
		{"tar.gz from tar -C dir .", makeTar(t, true, under(".", tentacleEnts...)...)},
		{"tar.gz from git archive", makeTar(t, true, append([]ent{{name: "pax_global_header", typ: tar.TypeXGlobalHeader}}, under("hello", tentacleEnts...)...)...)},
		{"plain tar", makeTar(t, false, under("hello", tentacleEnts...)...)},
		{"zip with a top folder", makeZip(t, under("hello", tentacleEnts...)...)},
		{"zip at the root", makeZip(t, tentacleEnts...)},
		{"zip from macOS", makeZip(t, append(under("hello", tentacleEnts...), macJunk...)...)},
		{"files outside the tentacle are ignored", makeZip(t, append(under("repo/hello", tentacleEnts...), ent{name: "repo/README.md", body: "x"}, ent{name: "repo/other/x.ts", body: "x"})...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := BundleFromArchive("hello.upload", bytes.NewReader(tt.data), map[string]any{"k": "v"})
			if err != nil {
				t.Fatalf("BundleFromArchive: %v", err)
			}
			if got := slices.Sorted(maps.Keys(b.Files)); !slices.Equal(got, tentacleFiles) {
				t.Errorf("files = %q, want %q", got, tentacleFiles)
			}
			if string(b.Files["lib/util.ts"]) != "export const x = 1;" {
				t.Errorf("lib/util.ts = %q", b.Files["lib/util.ts"])
			}
			if b.Workflow.Name != "b" || b.Secrets["k"] != "v" {
				t.Errorf("workflow %q, secrets %v", b.Workflow.Name, b.Secrets)
			}
		})
	}
}

func TestBundleFromArchiveSecretsIgnored(t *testing.T) {
	for _, data := range [][]byte{makeTar(t, true, under("hello", tentacleEnts...)...), makeZip(t, tentacleEnts...)} {
		b, err := BundleFromArchive("hello.zip", bytes.NewReader(data), nil)
		if err != nil {
			t.Fatal(err)
		}
		for p, content := range b.Files {
			if strings.Contains(p, "secret") || strings.Contains(string(content), "hunter") {
				t.Errorf("bundle holds %s: %q", p, content)
			}
		}
		if b.Secrets != nil {
			t.Errorf("secrets = %v, want none", b.Secrets)
		}
		var warned bool
		for _, w := range b.Workflow.Warnings {
			s := w.String()
			if strings.Contains(s, "hunter") {
				t.Errorf("warning shows a secret: %s", s)
			}
			warned = warned || strings.Contains(s, ".secrets.yaml") && strings.Contains(s, ".secrets/api") && strings.Contains(s, "exposed")
		}
		if !warned {
			t.Errorf("no warning about the secrets files: %v", b.Workflow.Warnings)
		}
	}
}

// An archive of a folder bundles exactly what LoadBundle takes from it.
func TestBundleFromArchiveExample(t *testing.T) {
	dir := filepath.Join("..", "examples", "hello-fanout")
	want, err := LoadBundle(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ents []ent
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := "hello-fanout/" + filepath.ToSlash(rel)
		if d.IsDir() {
			ents = append(ents, ent{name: name + "/"})
			return nil
		}
		data, err := os.ReadFile(p)
		ents = append(ents, ent{name: name, body: string(data)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(ents, func(e ent) bool { return strings.Contains(e.name, "/tests/") }) {
		t.Fatal("the example has no tests/ to leave out any more; the test lost its point")
	}
	for name, data := range map[string][]byte{
		"hello-fanout.tgz": makeTar(t, true, ents...),
		"hello-fanout.zip": makeZip(t, ents...),
		"hello-fanout.tar": makeTar(t, false, ents...),
	} {
		b, err := BundleFromArchive(name, bytes.NewReader(data), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := slices.Sorted(maps.Keys(b.Files)); !slices.Equal(got, slices.Sorted(maps.Keys(want.Files))) || b.Digest() != want.Digest() {
			t.Errorf("%s: files %q, want %q as LoadBundle has them", name, got, slices.Sorted(maps.Keys(want.Files)))
		}
		if len(b.Workflow.NodeIDs) != 5 {
			t.Errorf("%s: nodes %q", name, b.Workflow.NodeIDs)
		}
	}
}

func TestBundleFromArchiveRefused(t *testing.T) {
	spec := ent{name: FileName, body: bundleSpec}
	node := ent{name: "nodes/a.ts", body: "export default async () => 1;"}
	ok := []ent{spec, node}
	with := func(extra ...ent) []ent { return append(slices.Clone(ok), extra...) }
	manyFiles := with()
	for i := range MaxBundleFiles {
		manyFiles = append(manyFiles, ent{name: fmt.Sprintf("data/%d.txt", i), body: "x"})
	}
	manyEntries := with()
	for range maxArchiveEntries {
		manyEntries = append(manyEntries, ent{name: "d/"})
	}
	truncated := makeTar(t, true, with(ent{name: "lib/big.ts", body: noise(200 << 10)})...)
	truncated = truncated[:len(truncated)/2]
	notTar, _ := gzipped([]byte(bundleSpec))
	emptyGzip, _ := gzipped(nil)
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), make([]byte, 100)...)
	hugeUpload := makeTar(t, false, with(ent{name: "lib/noise.bin", body: noise(MaxArchiveSize)})...)

	tests := []struct {
		name    string
		file    string
		data    []byte
		is      error  // sentinel the error must wrap
		wantErr string // text it must hold
	}{
		{"parent traversal", "x.tgz", makeTar(t, true, with(ent{name: "../etc/passwd", body: "root"})...), ErrBadArchive, "it holds ../etc/passwd, which points outside the tentacle"},
		{"traversal inside a folder", "x.tgz", makeTar(t, true, under("hello", with(ent{name: "../../x.ts", body: "x"})...)...), ErrBadArchive, "hello/../../x.ts, which points outside"},
		{"traversal in zip", "x.zip", makeZip(t, with(ent{name: "hello/../../../x", body: "x"})...), ErrBadArchive, "points outside the tentacle"},
		{"traversal in junk", "x.zip", makeZip(t, with(ent{name: "__MACOSX/../../x", body: "x"})...), ErrBadArchive, "points outside the tentacle"},
		{"absolute path", "x.tar", makeTar(t, false, with(ent{name: "/etc/cron.d/x", body: "x"})...), ErrBadArchive, "/etc/cron.d/x, which is an absolute path"},
		{"drive letter", "x.zip", makeZip(t, with(ent{name: "C:/Windows/x", body: "x"})...), ErrBadArchive, "absolute path"},
		{"backslash traversal", "x.zip", makeZip(t, with(ent{name: `..\..\evil.ts`, body: "x"})...), ErrBadArchive, "backslash"},
		{"control characters", "x.zip", makeZip(t, with(ent{name: "lib/a\nb.ts", body: "x"})...), ErrBadArchive, `"lib/a\nb.ts"`},
		{"symlink in tar", "x.tgz", makeTar(t, true, with(ent{name: "lib/passwd", typ: tar.TypeSymlink, link: "/etc/passwd"})...), ErrBadArchive, "lib/passwd, which is a symbolic link to /etc/passwd"},
		{"hard link in tar", "x.tgz", makeTar(t, true, with(ent{name: "lib/copy.ts", typ: tar.TypeLink, link: "nodes/a.ts"})...), ErrBadArchive, "lib/copy.ts, which is a hard link to nodes/a.ts"},
		{"symlink in zip", "x.zip", makeZip(t, with(ent{name: "lib/passwd", body: "/etc/passwd", mode: fs.ModeSymlink})...), ErrBadArchive, "lib/passwd, which is a symbolic link"},
		{"device", "x.tar", makeTar(t, false, with(ent{name: "dev/null", typ: tar.TypeChar})...), ErrBadArchive, "dev/null, which is a device, pipe or socket"},
		{"pipe in zip", "x.zip", makeZip(t, with(ent{name: "fifo", mode: fs.ModeNamedPipe})...), ErrBadArchive, "fifo, which is a device"},
		{"contiguous file", "x.tar", makeTar(t, false, with(ent{name: "odd", typ: tar.TypeCont})...), ErrBadArchive, "odd, which is not a regular file"},
		{"duplicate", "x.zip", makeZip(t, with(ent{name: "nodes/a.ts", body: "evil"})...), ErrBadArchive, "it holds nodes/a.ts twice"},
		{"duplicate spelled differently", "x.tgz", makeTar(t, true, with(ent{name: "./nodes//a.ts", body: "evil"})...), ErrBadArchive, "twice"},
		{"file and folder of one name", "x.zip", makeZip(t, with(ent{name: "lib", body: "x"}, ent{name: "lib/x.ts", body: "x"})...), ErrBadArchive, "both a file and a folder named lib"},
		{"two tentacles", "x.zip", makeZip(t, slices.Concat(under("a", ok...), under("b", ok...))...), ErrBadArchive, "more than one tentacle: a/workflow.yaml and b/workflow.yaml"},
		{"nested tentacles", "x.zip", makeZip(t, slices.Concat(ok, under("b", ok...))...), ErrBadArchive, "b/workflow.yaml and workflow.yaml"},
		{"no workflow", "x.zip", makeZip(t, node), ErrBadArchive, "holds no workflow.yaml"},
		{"workflow.yml", "x.zip", makeZip(t, ent{name: "hello/workflow.yml", body: bundleSpec}, node), ErrBadArchive, "hello/workflow.yml, but the spec must be named exactly workflow.yaml"},
		{"only junk", "x.zip", makeZip(t, ent{name: "hello/"}, ent{name: "hello/.secrets.yaml", body: "k: v"}), ErrBadArchive, "holds no files"},
		{"empty zip", "x.zip", makeZip(t), ErrBadArchive, "holds no files"},
		{"empty tar", "x.tar", makeTar(t, false), ErrBadArchive, "holds no files"},
		{"empty tar.gz", "x.tgz", makeTar(t, true), ErrBadArchive, "holds no files"},
		{"empty gzip", "x.tgz", emptyGzip, ErrBadArchive, "the archive is empty"},
		{"empty upload", "x.zip", nil, ErrBadArchive, "the file is empty"},
		{"gzip without tar", "workflow.yaml.gz", notTar, ErrBadArchive, "gzip-compressed but holds no tar archive"},
		{"png", "hello.zip", png, ErrBadArchive, "it looks like a PNG image, not a .zip, .tar.gz or .tar archive (whatever its name says)"},
		{"text", "workflow.yaml", []byte(bundleSpec), ErrBadArchive, "it looks like text, not a .zip, .tar.gz or .tar archive;"},
		{"xz", "x.tar.xz", []byte("\xfd7zXZ\x00\x00\x04junk"), ErrBadArchive, "xz-compressed data"},
		{"truncated", "x.tgz", truncated, ErrBadArchive, "damaged or cut short"},
		{"missing node file", "x.zip", makeZip(t, spec), nil, "node a: file nodes/a.ts is missing"},
		{"too many files", "x.zip", makeZip(t, manyFiles...), ErrTooLarge, "more than the 1000 a tentacle may have"},
		{"too many entries", "x.zip", makeZip(t, manyEntries...), ErrTooLarge, "more than 4000 entries"},
		{"node file too large", "x.zip", makeZip(t, spec, ent{name: "nodes/a.ts", body: strings.Repeat("x", MaxNodeFileSize+1)}), ErrTooLarge, "node file nodes/a.ts is 524289 bytes"},
		{"bundle too large", "x.zip", makeZip(t, with(ent{name: "lib/a.json", size: 500 << 10}, ent{name: "lib/b.json", size: 500 << 10})...), ErrTooLarge, "the biggest are lib/a.json (500.0 KiB), lib/b.json (500.0 KiB)"},
		{"upload too large", "x.tar", hugeUpload, ErrTooLarge, "the archive is larger than 4.0 MiB"},
		{"gzip bomb", "x.tgz", makeTar(t, true, with(ent{name: "lib/zeros", size: 20 << 20})...), ErrTooLarge, "unpacks to more than 16.0 MiB (at lib/zeros, which alone unpacks to 20.0 MiB)"},
		{"zip bomb", "x.zip", makeZip(t, with(ent{name: "lib/zeros", size: 20 << 20})...), ErrTooLarge, "lib/zeros, which alone unpacks to 20.0 MiB"},
		{"bomb of many files", "x.zip", makeZip(t, with(ent{name: "tests/a", size: 9 << 20}, ent{name: "tests/b", size: 9 << 20})...), ErrTooLarge, "at tests/b"},
		{"bomb in a skipped entry", "x.tgz", makeTar(t, true, with(ent{name: ".git/objects/pack", size: 20 << 20})...), ErrTooLarge, "unpacks to more than 16.0 MiB"},
		{"zip lying about its size", "x.zip", lyingZip(t), ErrBadArchive, "cannot read lib/zeros"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := BundleFromArchive(tt.file, bytes.NewReader(tt.data), nil)
			if err == nil {
				t.Fatalf("accepted: files %q", slices.Sorted(maps.Keys(b.Files)))
			}
			if b != nil {
				t.Error("bundle returned along with an error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want one wrapping %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "archive "+tt.file+": ") && tt.file != "" {
				t.Errorf("err = %v, want it to name the upload", err)
			}
		})
	}
}

// lyingZip declares 10 bytes for an entry that inflates to 20 MiB.
func lyingZip(t *testing.T) []byte {
	var raw bytes.Buffer
	fw, err := flate.NewWriter(&raw, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(fw, io.LimitReader(zeros{}, 20<<20)); err != nil {
		t.Fatal(err)
	}
	fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range []ent{{name: FileName, body: bundleSpec}, {name: "nodes/a.ts", body: "x"}} {
		w, _ := zw.Create(e.name)
		io.WriteString(w, e.body)
	}
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "lib/zeros", Method: zip.Deflate, CompressedSize64: uint64(raw.Len()), UncompressedSize64: 10})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(raw.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	err := zw.Close()
	return buf.Bytes(), err
}

// noise does not compress, unlike the bombs.
func noise(n int) string {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{}).Read(b)
	return string(b)
}

func TestBundleFromArchiveSpecError(t *testing.T) {
	bad := "name: b\nversion: \"1.0\"\nnodes:\n  a:\n    path: ./nodes/a.ts\n  b: [\n"
	invalid := "name: b\nversion: \"1.0\"\nnodes:\n  a:\n    path: ./nodes/a.ts\nedges:\n  - {from: a, to: nowhere}\n"
	for _, tt := range []struct {
		name, spec, file string
		line             int
	}{
		{"syntax", bad, "hello/workflow.yaml", 6},
		{"unknown node", invalid, "workflow.yaml", 7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var ents []ent
			if dir := path.Dir(tt.file); dir != "." {
				ents = under(dir, ent{name: FileName, body: tt.spec}, ent{name: "nodes/a.ts", body: "x"})
			} else {
				ents = []ent{{name: FileName, body: tt.spec}, {name: "nodes/a.ts", body: "x"}}
			}
			_, err := BundleFromArchive("x.zip", bytes.NewReader(makeZip(t, ents...)), nil)
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *SpecError", err)
			}
			p := se.Problems[0]
			if p.File != tt.file || p.Line != tt.line {
				t.Errorf("problem at %s:%d, want %s:%d (%v)", p.File, p.Line, tt.file, tt.line, err)
			}
		})
	}
}

func FuzzBundleFromArchive(f *testing.F) {
	ok := []ent{{name: FileName, body: bundleSpec}, {name: "nodes/a.ts", body: "export default async () => 1;"}}
	f.Add(makeTar(f, true, under("hello", ok...)...))
	f.Add(makeTar(f, false, under("hello", ok...)...))
	f.Add(makeTar(f, false, append(ok, ent{name: "l", typ: tar.TypeSymlink, link: "../x"})...))
	f.Add(makeZip(f, ok...))
	f.Add(makeZip(f, append(ok, ent{name: "../x", body: "x"})...))
	f.Add(makeTar(f, true))
	f.Add([]byte("PK\x05\x06"))
	f.Add([]byte("\x1f\x8b"))
	f.Add([]byte(bundleSpec))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := BundleFromArchive("fuzz", bytes.NewReader(data), nil)
		if err != nil {
			if b != nil || err.Error() == "" {
				t.Fatalf("bundle %v with error %q", b, err)
			}
			return
		}
		if b == nil || b.Workflow == nil || b.Files[FileName] == nil {
			t.Fatalf("accepted without a workflow: %+v", b)
		}
		if err := b.CheckPaths(); err != nil {
			t.Fatal(err)
		}
		if err := b.CheckSize(); err != nil {
			t.Fatal(err)
		}
		for p := range b.Files {
			if junk(p) || leftOut(p) {
				t.Fatalf("bundle holds %q", p)
			}
		}
	})
}

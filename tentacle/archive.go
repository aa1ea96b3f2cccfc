package tentacle

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxArchiveSize bounds an uploaded archive as received. A tentacle's
// files may add up to MaxBundleSize; the rest leaves room for what an
// archive of its folder also holds (tests, docs) and for tar's headers.
const MaxArchiveSize = 4 << 20

// maxUnpackedSize bounds what an archive may unpack to, the defence
// against a small archive that expands to gigabytes (a "zip bomb").
// maxArchiveEntries bounds the number of entries for the same reason.
const (
	maxUnpackedSize   = 16 << 20
	maxArchiveEntries = 4 * MaxBundleFiles
)

// ErrBadArchive is wrapped by every error saying an uploaded archive
// cannot be used as it is: not an archive, damaged, unsafe, or not
// holding exactly one tentacle.
var ErrBadArchive = errors.New("unusable archive")

// BundleFromArchive reads a tentacle from a .tar.gz/.tgz/.tar or .zip
// archive, as people upload them to deploy. The format is detected from
// the content; name (the uploaded file's name) only improves the messages.
//
// The archive may hold the tentacle's folder (hello/workflow.yaml, ...)
// or its files at the top; the folder is the one holding workflow.yaml,
// and there must be exactly one. Files outside it are ignored, and
// inside it the same files stay out of the bundle as for LoadBundle
// (hidden files, tests/, documentation). macOS metadata (__MACOSX/,
// .DS_Store) is ignored too.
//
// Secrets never come from an archive: .secrets/ and .secrets.yaml are
// ignored, and the workflow gets a warning saying so, because a file
// shared in a channel is readable by everyone there, so whatever secrets
// it held are exposed and need replacing. secrets is what the bundle gets.
//
// Entries that could write outside the tentacle or point elsewhere are
// refused, not skipped: absolute paths, "..", backslashes, symbolic and
// hard links, devices, duplicates. Such errors wrap ErrBadArchive, as do
// unreadable and empty archives. An archive above MaxArchiveSize, one
// that unpacks to much more than a tentacle may hold, or a tentacle above
// the limits of LoadBundle gives an error wrapping ErrTooLarge. A
// workflow.yaml with problems gives its *SpecError, with line numbers.
func BundleFromArchive(name string, r io.Reader, secrets map[string]any) (*Bundle, error) {
	b, err := bundleFromArchive(name, r, secrets)
	var se *SpecError
	switch {
	case err == nil:
		return b, nil
	case errors.As(err, &se):
		// As LoadBundle does, so callers show problems the same way.
		return nil, err
	case name == "":
		return nil, fmt.Errorf("archive: %w", err)
	}
	return nil, fmt.Errorf("archive %s: %w", show(name), err)
}

func bundleFromArchive(name string, r io.Reader, secrets map[string]any) (*Bundle, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxArchiveSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the upload: %w", err)
	}
	if len(data) > MaxArchiveSize {
		return nil, fmt.Errorf("%w: the archive is larger than %s, while a tentacle's files may add up to %s; leave out test data and anything the tentacle can fetch at run time",
			ErrTooLarge, humanSize(MaxArchiveSize), humanSize(MaxBundleSize))
	}
	u := &unpacker{files: map[string][]byte{}, left: maxUnpackedSize}
	switch {
	case len(data) == 0:
		return nil, fmt.Errorf("%w: the file is empty", ErrBadArchive)
	case bytes.HasPrefix(data, []byte("PK\x03\x04")), bytes.HasPrefix(data, []byte("PK\x05\x06")):
		err = u.readZip(data)
	case bytes.HasPrefix(data, []byte("\x1f\x8b")):
		err = u.readGzip(data)
	case isTar(data):
		err = u.readTar(bytes.NewReader(data))
	default:
		err = notArchive(name, data)
	}
	if err != nil {
		return nil, err
	}
	root, files, err := u.tentacle()
	if err != nil {
		return nil, err
	}
	b, err := BundleFromFiles(files, secrets)
	if se := (*SpecError)(nil); errors.As(err, &se) {
		// Name the file as it is in the archive, which is what the
		// person has in front of them.
		for i := range se.Problems {
			if se.Problems[i].File == FileName {
				se.Problems[i].File = path.Join(root, FileName)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if len(u.secrets) > 0 {
		file := name
		if file == "" {
			file = "the archive"
		}
		b.Workflow.Warnings = append(b.Workflow.Warnings, Problem{
			File: file,
			Msg: fmt.Sprintf("ignored %s: secrets never come from an uploaded archive. Everyone in the channel can download this file, so treat the secrets in it as exposed and replace them",
				strings.Join(u.secrets, ", ")),
		})
	}
	return b, nil
}

// entryKind is what an archive entry is, as far as a tentacle cares.
type entryKind int

const (
	entryRegular entryKind = iota
	entryDirectory
	entrySymlink
	entryHardlink
	entrySpecial // device, pipe or socket
	entryUnknown
	entryIgnored // tar metadata such as git archive's pax_global_header
)

// unpacker collects the regular files of an archive, by cleaned path,
// checking each entry as it comes.
type unpacker struct {
	files   map[string][]byte
	secrets []string // secrets files seen, by cleaned path
	left    int64    // bytes the entries may still unpack to
	entries int
}

func (u *unpacker) readZip(data []byte) error {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	// With GODEBUG zipinsecurepath=0 the reader flags unsafe names but
	// is usable; add refuses them with a better message.
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return damaged("zip", err)
	}
	if len(zr.File) > maxArchiveEntries {
		return tooManyEntries()
	}
	for _, f := range zr.File {
		kind := entryUnknown
		switch m := f.Mode(); {
		case m&fs.ModeSymlink != 0:
			kind = entrySymlink
		case m.IsDir():
			kind = entryDirectory
		case m&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0:
			kind = entrySpecial
		case m.IsRegular():
			kind = entryRegular
		}
		size := int64(math.MaxInt64)
		if f.UncompressedSize64 < math.MaxInt64 {
			size = int64(f.UncompressedSize64)
		}
		open := func() (io.ReadCloser, error) {
			if f.Flags&1 != 0 {
				return nil, errors.New("it is encrypted; pack the tentacle without a password")
			}
			return f.Open()
		}
		if err := u.add(f.Name, kind, "", size, open); err != nil {
			return err
		}
	}
	return nil
}

func (u *unpacker) readGzip(data []byte) error {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return damaged("gzip", err)
	}
	// Counting what comes out of gzip, not only the entries kept, also
	// bounds entries that are skipped but still have to be decompressed.
	br := bufio.NewReader(&capped{r: zr, left: maxUnpackedSize})
	head, err := br.Peek(512)
	switch {
	case len(head) == 0 && err != nil && err != io.EOF:
		return damaged("gzip", err)
	case len(head) == 0:
		return fmt.Errorf("%w: the archive is empty", ErrBadArchive)
	case !isTar(head):
		return fmt.Errorf("%w: it is gzip-compressed but holds no tar archive; gzip alone compresses one file, so pack the tentacle's folder with tar -czf first", ErrBadArchive)
	}
	return u.readTar(br)
}

func (u *unpacker) readTar(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		// As for zip: tarinsecurepath=0 flags names add refuses anyway.
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return damaged("tar", err)
		}
		kind := entryUnknown
		switch hdr.Typeflag {
		case tar.TypeReg:
			kind = entryRegular
		case tar.TypeDir:
			kind = entryDirectory
		case tar.TypeSymlink:
			kind = entrySymlink
		case tar.TypeLink:
			kind = entryHardlink
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			kind = entrySpecial
		case tar.TypeXGlobalHeader:
			kind = entryIgnored
		}
		open := func() (io.ReadCloser, error) { return io.NopCloser(tr), nil }
		if err := u.add(hdr.Name, kind, hdr.Linkname, hdr.Size, open); err != nil {
			return err
		}
	}
}

// add checks one entry and keeps it when it is a regular file the
// tentacle may need. open is called only then.
func (u *unpacker) add(name string, kind entryKind, target string, size int64, open func() (io.ReadCloser, error)) error {
	u.entries++
	if u.entries > maxArchiveEntries {
		return tooManyEntries()
	}
	if kind == entryIgnored {
		return nil
	}
	p, err := entryPath(name)
	if err != nil {
		return err
	}
	if p == "" && kind == entryDirectory {
		return nil // "./", the archive's own top
	}
	if p == "" {
		return fmt.Errorf("%w: it holds an entry named %s, which is not a file name", ErrBadArchive, show(name))
	}
	if junk(p) {
		if kind == entryRegular && slices.ContainsFunc(strings.Split(p, "/"), isSecrets) {
			u.secrets = append(u.secrets, p)
		}
		return nil
	}
	switch kind {
	case entryDirectory:
		return nil
	case entrySymlink, entryHardlink:
		what := "a symbolic link"
		if kind == entryHardlink {
			what = "a hard link"
		}
		if target != "" {
			what += " to " + show(target)
		}
		return fmt.Errorf("%w: it holds %s, which is %s; an uploaded tentacle may only hold regular files, so put the file itself in the archive", ErrBadArchive, show(name), what)
	case entrySpecial:
		return fmt.Errorf("%w: it holds %s, which is a device, pipe or socket; an uploaded tentacle may only hold regular files", ErrBadArchive, show(name))
	case entryUnknown:
		return fmt.Errorf("%w: it holds %s, which is not a regular file; an uploaded tentacle may only hold regular files", ErrBadArchive, show(name))
	}
	if _, dup := u.files[p]; dup {
		return fmt.Errorf("%w: it holds %s twice, so which one to use is unclear; pack the folder again", ErrBadArchive, show(name))
	}
	if size > u.left {
		return tooMuchUnpacked(p, size)
	}
	rc, err := open()
	if err != nil {
		return fmt.Errorf("%w: cannot read %s: %v", ErrBadArchive, show(name), err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, u.left+1))
	switch {
	case errors.Is(err, ErrTooLarge):
		return err
	case err != nil:
		return fmt.Errorf("%w: cannot read %s: the archive is damaged or cut short (%v)", ErrBadArchive, show(name), err)
	case int64(len(data)) > u.left:
		return tooMuchUnpacked(p, -1)
	}
	u.left -= int64(len(data))
	u.files[p] = data
	return nil
}

// tentacle finds the folder holding workflow.yaml and returns the files
// of the bundle, relative to it.
func (u *unpacker) tentacle() (root string, files map[string][]byte, err error) {
	var specs, lookalikes []string
	for _, p := range slices.Sorted(maps.Keys(u.files)) {
		switch base := path.Base(p); {
		case base == FileName:
			specs = append(specs, p)
		case strings.EqualFold(base, FileName), strings.EqualFold(base, "workflow.yml"):
			lookalikes = append(lookalikes, p)
		}
	}
	switch {
	case len(specs) > 1:
		more := ""
		if len(specs) > 2 {
			more = fmt.Sprintf(" (and %d more)", len(specs)-2)
		}
		return "", nil, fmt.Errorf("%w: it holds more than one tentacle: %s and %s%s; upload one tentacle per archive", ErrBadArchive, specs[0], specs[1], more)
	case len(specs) == 0 && len(lookalikes) > 0:
		return "", nil, fmt.Errorf("%w: it holds %s, but the spec must be named exactly %s", ErrBadArchive, lookalikes[0], FileName)
	case len(specs) == 0 && len(u.files) == 0:
		return "", nil, fmt.Errorf("%w: the archive holds no files (folders, hidden files and macOS metadata do not count)", ErrBadArchive)
	case len(specs) == 0:
		return "", nil, fmt.Errorf("%w: it holds no %s; pack the tentacle's folder, the one with %s in it", ErrBadArchive, FileName, FileName)
	}
	root = path.Dir(specs[0])
	prefix := root + "/"
	if root == "." {
		prefix = ""
	}
	files = map[string][]byte{}
	for p, data := range u.files {
		rel, ok := strings.CutPrefix(p, prefix)
		if !ok || leftOut(rel) {
			continue
		}
		files[rel] = data
	}
	// A volume cannot hold a file and a folder of the same name.
	for _, p := range slices.Sorted(maps.Keys(files)) {
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if _, ok := files[dir]; ok {
				return "", nil, fmt.Errorf("%w: it holds both a file and a folder named %s", ErrBadArchive, path.Join(root, dir))
			}
		}
	}
	return root, files, nil
}

// leftOut applies LoadBundle's rules to a path relative to the tentacle,
// so that an archive of a folder bundles what the folder would.
func leftOut(rel string) bool {
	elems := strings.Split(rel, "/")
	for i, e := range elems {
		if skipped(e, i == 0, i < len(elems)-1) {
			return true
		}
	}
	return false
}

// entryPath cleans an entry's name to a slash-separated relative path,
// "" for the archive's top, or refuses it. Any ".." is refused, even one
// that would stay inside: no honest tool writes one.
func entryPath(name string) (string, error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: it holds %s, %s; an archive may only hold paths inside the tentacle's folder", ErrBadArchive, show(name), why)
	}
	switch {
	case strings.Contains(name, `\`):
		return "", bad(`whose name contains a backslash ("\"), which some systems read as a folder separator; pack the folder with tar or a zip tool that writes "/"`)
	case strings.HasPrefix(name, "/"), len(name) >= 2 && name[1] == ':' && ('a' <= name[0]|0x20 && name[0]|0x20 <= 'z'):
		return "", bad("which is an absolute path")
	case !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl):
		return "", bad("whose name has control characters or is not valid UTF-8")
	}
	var elems []string
	for e := range strings.SplitSeq(name, "/") {
		switch e {
		case "", ".":
			// "./a" and "a//b" as tar writes them from "tar -C dir ."
		case "..":
			return "", bad(`which points outside the tentacle with ".."`)
		default:
			elems = append(elems, e)
		}
	}
	return strings.Join(elems, "/"), nil
}

// junk reports whether an entry is never part of a tentacle, wherever
// it is: hidden files and folders (.secrets*, .git, .DS_Store, macOS's
// ._ files) and macOS's __MACOSX folder.
func junk(p string) bool {
	return slices.ContainsFunc(strings.Split(p, "/"), func(e string) bool {
		return strings.HasPrefix(e, ".") || e == "__MACOSX"
	})
}

// isSecrets reports whether a path element is where LoadSecrets looks.
func isSecrets(e string) bool { return e == ".secrets" || e == ".secrets.yaml" }

// isTar reports whether data starts with a tar header (POSIX, GNU or
// PAX all write "ustar" there) or with the zero block ending an empty one.
func isTar(data []byte) bool {
	if len(data) < 512 {
		return false
	}
	return string(data[257:262]) == "ustar" || !slices.ContainsFunc(data[:512], func(b byte) bool { return b != 0 })
}

// notArchive says what data is instead of an archive, since the likely
// mistake is uploading the wrong file.
func notArchive(name string, data []byte) error {
	what := "data of an unknown kind"
	head := data[:min(len(data), 512)]
	kinds := []struct{ magic, what string }{
		{"\x89PNG\r\n\x1a\n", "a PNG image"},
		{"\xff\xd8\xff", "a JPEG image"},
		{"GIF8", "a GIF image"},
		{"%PDF-", "a PDF document"},
		{"BZh", "bzip2-compressed data (use gzip: tar -czf)"},
		{"\xfd7zXZ\x00", "xz-compressed data (use gzip: tar -czf)"},
		{"\x28\xb5\x2f\xfd", "zstd-compressed data (use gzip: tar -czf)"},
		{"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"},
		{"Rar!\x1a\x07", "a RAR archive"},
	}
	i := slices.IndexFunc(kinds, func(k struct{ magic, what string }) bool { return bytes.HasPrefix(head, []byte(k.magic)) })
	switch {
	case i >= 0:
		what = kinds[i].what
	case !bytes.ContainsFunc(head, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' }):
		what = "text"
	}
	despite := ""
	lower := strings.ToLower(name)
	if slices.ContainsFunc([]string{".zip", ".tgz", ".tar.gz", ".tar"}, func(ext string) bool { return strings.HasSuffix(lower, ext) }) {
		despite = " (whatever its name says)"
	}
	return fmt.Errorf("%w: it looks like %s, not a .zip, .tar.gz or .tar archive%s; pack the tentacle's folder, e.g. with tar -czf hello.tgz hello/", ErrBadArchive, what, despite)
}

func damaged(format string, err error) error {
	if errors.Is(err, ErrTooLarge) {
		return err // from capped, while skipping an entry
	}
	return fmt.Errorf("%w: it looks like %s but cannot be read, it may be damaged or cut short (%v)", ErrBadArchive, format, err)
}

func tooManyEntries() error {
	return fmt.Errorf("%w: the archive holds more than %d entries, while a tentacle may have at most %d files", ErrTooLarge, maxArchiveEntries, MaxBundleFiles)
}

// tooMuchUnpacked names the entry that went over, with its size when
// the archive declares it (size >= 0).
func tooMuchUnpacked(p string, size int64) error {
	which := ""
	if p != "" {
		which = fmt.Sprintf(" (at %s", p)
		if size >= 0 {
			which += ", which alone unpacks to " + humanSize(size)
		}
		which += ")"
	}
	return fmt.Errorf("%w: the archive unpacks to more than %s%s, while a tentacle's files may add up to at most %s",
		ErrTooLarge, humanSize(maxUnpackedSize), which, humanSize(MaxBundleSize))
}

// capped fails with ErrTooLarge once more than left bytes came out of r.
type capped struct {
	r    io.Reader
	left int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, tooMuchUnpacked("", -1)
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, tooMuchUnpacked("", -1)
	}
	return n, err
}

// show quotes a name from an archive when it has characters that would
// garble a message; a name is whatever its author typed.
func show(name string) string {
	if strconv.CanBackquote(name) && !strings.ContainsAny(name, "`\"") {
		return name
	}
	return strconv.Quote(name)
}

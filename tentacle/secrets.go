package tentacle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// MaxSecretSize bounds one secrets file, as Kubernetes bounds a Secret.
const MaxSecretSize = 1 << 20

// DefaultMountedSecrets is where a deployed tentacle finds its secrets.
const DefaultMountedSecrets = "/app/secrets"

// LoadSecrets returns a tentacle's secrets by name. When explicit is set,
// only that file (YAML) or directory (one file per secret) is read, and it
// must exist. Otherwise three sources are merged name by name (top-level
// keys), where dir/.secrets/ wins over dir/.secrets.yaml, which wins over
// mounted (normally DefaultMountedSecrets; "" skips it). Missing sources
// are skipped.
//
// In the directory format each regular, non-hidden file is one secret
// named after the file: a JSON object when it holds one (numbers are kept
// exact as json.Number), else {"value": "<trimmed text>"}.
//
// Errors name files and lines, never secret values.
func LoadSecrets(dir, explicit, mounted string) (map[string]any, error) {
	if explicit != "" {
		s, found, err := loadSecretSource(explicit)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, fmt.Errorf("secrets %s: %w", explicit, fs.ErrNotExist)
		}
		return s, nil
	}
	merged := map[string]any{}
	// Lowest precedence first, so that later sources overwrite.
	for _, src := range []string{mounted, filepath.Join(dir, ".secrets.yaml"), filepath.Join(dir, ".secrets")} {
		if src == "" {
			continue
		}
		s, _, err := loadSecretSource(src)
		if err != nil {
			return nil, err
		}
		maps.Copy(merged, s)
	}
	return merged, nil
}

// LookupSecret resolves a "name.key" reference, as in a contract's
// auth.secret. Values that are not strings come back as JSON text.
func LookupSecret(secrets map[string]any, ref string) (string, bool) {
	name, key, ok := strings.Cut(ref, ".")
	if !ok || name == "" || key == "" {
		return "", false
	}
	m, ok := secrets[name].(map[string]any)
	if !ok {
		// A secret set on its own under the ref's full name ("weather.token",
		// as /kraken secret sets one) answers the ref too.
		v, ok := secrets[ref].(string)
		return v, ok && v != ""
	}
	switch v := m[key].(type) {
	case nil:
		return "", false
	case string:
		return v, true
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return "", false
		}
		return string(b), true
	}
}

// loadSecretSource reads a secrets file or directory; found is false when
// path does not exist.
func loadSecretSource(path string) (s map[string]any, found bool, err error) {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("secrets: %w", err)
	}
	if info.IsDir() {
		s, err = loadSecretDir(path)
	} else {
		s, err = loadSecretFile(path)
	}
	return s, true, err
}

func loadSecretDir(dir string) (map[string]any, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	out := make(map[string]any, len(entries))
	for _, e := range entries {
		// Hidden entries include the ..data links of Kubernetes mounts.
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		// Stat follows symlinks: Kubernetes mounts each key as one.
		info, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("secrets: %w", err)
		}
		if !info.Mode().IsRegular() {
			continue
		}
		data, err := readSecret(path)
		if err != nil {
			return nil, err
		}
		out[e.Name()] = secretFileValue(data)
	}
	return out, nil
}

func readSecret(path string) ([]byte, error) {
	data, err := readAtMost(path, MaxSecretSize)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	if len(data) > MaxSecretSize {
		return nil, fmt.Errorf("secrets %s: larger than %d KiB", path, MaxSecretSize>>10)
	}
	return data, nil
}

// secretFileValue is one secret of the directory format: a JSON object,
// array or string is taken as that value (the cluster mounts secrets so),
// anything else is plain text wrapped as {"value": text}, as the seeds'
// platform reads a file like api-token.
func secretFileValue(data []byte) any {
	text := strings.TrimSpace(string(data))
	if text != "" && strings.ContainsRune(`{["`, rune(text[0])) {
		dec := json.NewDecoder(strings.NewReader(text))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) == nil && !dec.More() && v != nil {
			return v
		}
	}
	return map[string]any{"value": text}
}

// loadSecretFile reads the YAML format: a mapping of secret names.
func loadSecretFile(path string) (map[string]any, error) {
	data, err := readSecret(path)
	if err != nil {
		return nil, err
	}
	r := &report{file: path}
	root, ok := decodeYAML(r, data)
	switch {
	case !ok:
		return nil, r.err()
	case root == nil:
		return map[string]any{}, nil
	case root.Kind != yaml.MappingNode:
		r.errorf(root, "", "secrets must be a mapping of names to values, got %s", describe(root))
		return nil, r.err()
	}
	// Fields name keys; leave them out along with any value.
	checkTree(root, func(at *yaml.Node, _, msg string) { r.errorf(at, "", "%s", msg) })
	if err := r.err(); err != nil {
		return nil, err
	}
	return plainValue(root).(map[string]any), nil
}

// MaxSecretValue bounds one secret set on its own (/kraken secret).
const MaxSecretValue = 64 << 10

// maxSecretKey bounds a secret's name, as Kubernetes bounds a Secret's
// keys.
const maxSecretKey = 253

var secretKeyPattern = regexp.MustCompile(`^[-_a-zA-Z0-9][-._a-zA-Z0-9]*$`)

// CheckSecretKey refuses a name a tentacle's secret cannot have: the
// engine skips hidden files, and Kubernetes allows no other characters in
// a Secret's key (so no path separators either).
func CheckSecretKey(key string) error {
	if len(key) <= maxSecretKey && secretKeyPattern.MatchString(key) {
		return nil
	}
	shown := key
	if len(shown) > 64 {
		shown = shown[:64] + "..."
	}
	return fmt.Errorf("secret %q: a secret name must be letters, digits, '-', '_' or '.', not starting with '.', at most %d characters", shown, maxSecretKey)
}

// CheckSecretValue refuses a value a secret set on its own can't hold:
// too big, or not text (JSON would change it). The error never holds the
// value.
func CheckSecretValue(value string) error {
	if len(value) > MaxSecretValue {
		return fmt.Errorf("%w: the value has %d bytes; a secret set on its own may have at most %d KiB", ErrTooLarge, len(value), MaxSecretValue>>10)
	}
	if !utf8.ValidString(value) {
		return errors.New("the value is not UTF-8 text")
	}
	return nil
}

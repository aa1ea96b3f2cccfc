package tentacle

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadSecretsCascade(t *testing.T) {
	dir := t.TempDir()
	mounted := t.TempDir()
	writeTree(t, mounted, map[string]string{
		"github":    "from-mount",
		"slack":     `{"token": "mount-slack"}`,
		"mounted":   "only-here",
		"svc.token": `"set-alone"`,
		".hidden":   "never",
		"sub/file":  "never",
	})
	writeTree(t, dir, map[string]string{
		".secrets.yaml":  "slack:\n  token: yaml-slack\npg:\n  password: yaml-pg\nnested:\n  port: 5432\n",
		".secrets/slack": `{"token": "dir-slack", "id": 12345678901234567890}`,
		".secrets/api":   "  dir-api\n",
	})
	got, err := LoadSecrets(dir, "", mounted)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"github":    map[string]any{"value": "from-mount"},
		"mounted":   map[string]any{"value": "only-here"},
		"slack":     map[string]any{"token": "dir-slack", "id": json.Number("12345678901234567890")},
		"pg":        map[string]any{"password": "yaml-pg"},
		"nested":    map[string]any{"port": 5432},
		"api":       map[string]any{"value": "dir-api"},
		"svc.token": "set-alone",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("secrets:\n got  %#v\n want %#v", got, want)
	}
	lookups := []struct {
		ref, want string
		ok        bool
	}{
		{"slack.token", "dir-slack", true},
		{"slack.id", "12345678901234567890", true},
		{"api.value", "dir-api", true},
		{"nested.port", "5432", true},
		{"pg.password", "yaml-pg", true},
		{"pg.user", "", false},
		{"nobody.value", "", false},
		{"slack", "", false},
		{".token", "", false},
		// A secret set on its own under a ref's full name answers it.
		{"svc.token", "set-alone", true},
	}
	for _, l := range lookups {
		if v, ok := LookupSecret(got, l.ref); v != l.want || ok != l.ok {
			t.Errorf("LookupSecret(%q) = %q, %v; want %q, %v", l.ref, v, ok, l.want, l.ok)
		}
	}
}

func TestLoadSecretsMissingSourcesAreSkipped(t *testing.T) {
	got, err := LoadSecrets(t.TempDir(), "", filepath.Join(t.TempDir(), "absent"))
	if err != nil || len(got) != 0 {
		t.Errorf("LoadSecrets = %v, %v; want empty", got, err)
	}
	got, err = LoadSecrets(t.TempDir(), "", "")
	if err != nil || len(got) != 0 {
		t.Errorf("LoadSecrets without mount = %v, %v; want empty", got, err)
	}
}

func TestLoadSecretsExplicitOnly(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		".secrets.yaml":  "a:\n  v: from-yaml\n",
		".secrets/b":     "from-dir",
		"other.yaml":     "c:\n  v: explicit\n",
		"otherdir/d":     "explicit-dir",
		"otherdir/.skip": "hidden",
	})
	got, err := LoadSecrets(dir, filepath.Join(dir, "other.yaml"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"c": map[string]any{"v": "explicit"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("explicit file: got %v, want %v", got, want)
	}
	got, err = LoadSecrets(dir, filepath.Join(dir, "otherdir"), "")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"d": map[string]any{"value": "explicit-dir"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("explicit dir: got %v, want %v", got, want)
	}
	if _, err := LoadSecrets(dir, filepath.Join(dir, "absent.yaml"), ""); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing explicit source: err = %v, want fs.ErrNotExist", err)
	}
}

func TestLoadSecretsKubernetesMount(t *testing.T) {
	// Kubernetes mounts each key as a symlink into a hidden ..data dir.
	mounted := t.TempDir()
	writeTree(t, mounted, map[string]string{"..2026_11_23/github": `{"token":"k8s"}`})
	symlink(t, "..2026_11_23", filepath.Join(mounted, "..data"))
	symlink(t, filepath.Join("..data", "github"), filepath.Join(mounted, "github"))
	got, err := LoadSecrets(t.TempDir(), "", mounted)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"github": map[string]any{"token": "k8s"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestSecretFileValue(t *testing.T) {
	tests := []struct {
		in   string
		want any
	}{
		{"tok\n", map[string]any{"value": "tok"}},
		{`{"a": "b"}`, map[string]any{"a": "b"}},
		{` {"a": 1.5} `, map[string]any{"a": json.Number("1.5")}},
		{`{"a": `, map[string]any{"value": `{"a":`}},
		{`{"a": 1} trailing`, map[string]any{"value": `{"a": 1} trailing`}},
		{`["a"]`, []any{"a"}},
		{`"s3cr3t"`, "s3cr3t"},
		{`"unterminated`, map[string]any{"value": `"unterminated`}},
		{`1234`, map[string]any{"value": "1234"}},
		{`null`, map[string]any{"value": "null"}},
		{"", map[string]any{"value": ""}},
	}
	for _, tt := range tests {
		if got := secretFileValue([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("secretFileValue(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestSecretErrorsNeverShowValues(t *testing.T) {
	const secret = "hunter2-s3cr3t"
	tests := []struct {
		name string
		yaml string
		msg  string
		line int
	}{
		{"list", "- " + secret + "\n", "secrets must be a mapping of names to values, got a list", 1},
		{"scalar", secret + "\n", "got a string", 1},
		{"syntax", "gh:\n  token: " + secret + "\n bad: [" + secret + "\n", "invalid YAML", 2},
		{"unclosed quote", "gh:\n  token: \"" + secret + "\n", "invalid YAML", 2}, // where the quote opens
		{"duplicate", "gh:\n  token: " + secret + "\n  token: " + secret + "\n", "duplicate key; first defined at line 2", 3},
		{"alias", "gh:\n  token: &t " + secret + "\n  again: *t\n", "aliases (*name) are not allowed", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, ".secrets.yaml")
			if err := os.WriteFile(file, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadSecrets(dir, "", "")
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if strings.Contains(msg, secret) || strings.Contains(msg, "hunter") {
				t.Errorf("error shows the secret: %s", msg)
			}
			if !strings.Contains(msg, tt.msg) || !strings.Contains(msg, file) {
				t.Errorf("error = %q, want the file and %q", msg, tt.msg)
			}
			var se *SpecError
			if !errors.As(err, &se) || se.Problems[0].Line != tt.line {
				t.Errorf("error %v should be located at line %d", err, tt.line)
			}
		})
	}
}

func TestSecretsEmptyYAML(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{".secrets.yaml": "# nothing yet\n"})
	got, err := LoadSecrets(dir, "", "")
	if err != nil || len(got) != 0 {
		t.Errorf("LoadSecrets = %v, %v; want empty", got, err)
	}
}

func TestSecretTooLarge(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{".secrets/big": strings.Repeat("x", MaxSecretSize+1)})
	_, err := LoadSecrets(dir, "", "")
	if err == nil || !strings.Contains(err.Error(), "larger than") || strings.Contains(err.Error(), "xxx") {
		t.Errorf("err = %v", err)
	}
}

func TestCheckSecretKeyAndValue(t *testing.T) {
	for key, ok := range map[string]bool{
		"api_key": true, "weather.token": true, "-x": true, "A-Z_0.9": true,
		"": false, ".hidden": false, "a/b": false, `a\b`: false, "a b": false, "clé": false,
		strings.Repeat("k", 253): true, strings.Repeat("k", 254): false,
	} {
		if err := CheckSecretKey(key); (err == nil) != ok {
			t.Errorf("CheckSecretKey(%q) = %v", key, err)
		}
	}
	if err := CheckSecretValue(strings.Repeat("v", MaxSecretValue)); err != nil {
		t.Errorf("a value at the limit: %v", err)
	}
	if err := CheckSecretValue(strings.Repeat("v", MaxSecretValue+1)); !errors.Is(err, ErrTooLarge) || strings.Contains(err.Error(), "vvv") {
		t.Errorf("a value over the limit: %v", err)
	}
	if err := CheckSecretValue("bad \xff"); err == nil || strings.Contains(err.Error(), "bad") {
		t.Errorf("a value that is not text: %v", err)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kraken-ops/kraken/store"
)

// testStoreKeys is a keyring for tests that start the bot.
func testStoreKeys(t testing.TB) *store.Keyring {
	t.Helper()
	r, err := store.NewKeyring(bytes.Repeat([]byte{7}, store.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// keyText is a distinct key per seed, as base64.
func keyText(seed byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{seed}, store.KeySize))
}

func TestStoreKeysFrom(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyFile := file("key", keyText(1)+"\n")
	previousFile := file("previous", keyText(2)+"\n"+keyText(3)+"\n")
	badFile := file("bad", "not a key at all\n")
	for _, s := range []struct {
		name         string
		env          map[string]string
		wantCurrent  byte   // the seed of the current key; 0 for none
		wantPrevious []byte // seeds
		wantErr      []string
	}{
		{"nothing set", nil, 0, nil, nil},
		{"key", map[string]string{envStoreKey: keyText(1)}, 1, nil, nil},
		{"key in a file", map[string]string{envStoreKeyFile: keyFile}, 1, nil, nil},
		{"URL base64 unpadded", map[string]string{envStoreKey: base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, store.KeySize))}, 0xfb, nil, nil},
		{"previous, comma-separated", map[string]string{envStoreKey: keyText(1), envStoreKeyPrevious: keyText(2) + ", " + keyText(3) + ","}, 1, []byte{2, 3}, nil},
		{"previous in a file, one per line", map[string]string{envStoreKey: keyText(1), envStoreKeyPreviousFile: previousFile}, 1, []byte{2, 3}, nil},
		{"both key and file", map[string]string{envStoreKey: keyText(1), envStoreKeyFile: keyFile},
			0, nil, []string{"both KRAKEN_STORE_KEY and KRAKEN_STORE_KEY_FILE are set"}},
		{"bad base64", map[string]string{envStoreKey: "not*base64*" + keyText(9)},
			0, nil, []string{"KRAKEN_STORE_KEY: store key is not base64"}},
		{"wrong length", map[string]string{envStoreKey: base64.StdEncoding.EncodeToString([]byte("sixteen bytes!!!"))},
			0, nil, []string{"KRAKEN_STORE_KEY: store key decodes to 16 bytes; it must be 32"}},
		{"file missing", map[string]string{envStoreKeyFile: filepath.Join(dir, "absent")},
			0, nil, []string{"KRAKEN_STORE_KEY_FILE:", "no such file"}},
		{"file holding no key", map[string]string{envStoreKeyFile: badFile},
			0, nil, []string{"KRAKEN_STORE_KEY_FILE (" + badFile + "): store key is not base64"}},
		{"bad previous key", map[string]string{envStoreKey: keyText(1), envStoreKeyPrevious: keyText(2) + "," + keyText(3)[:20]},
			0, nil, []string{"KRAKEN_STORE_KEY_PREVIOUS: key 2: store key decodes to 15 bytes"}},
		{"both previous and its file", map[string]string{envStoreKey: keyText(1), envStoreKeyPrevious: keyText(2), envStoreKeyPreviousFile: previousFile},
			0, nil, []string{"both KRAKEN_STORE_KEY_PREVIOUS and KRAKEN_STORE_KEY_PREVIOUS_FILE are set"}},
		{"previous file missing", map[string]string{envStoreKey: keyText(1), envStoreKeyPreviousFile: filepath.Join(dir, "absent")},
			0, nil, []string{"KRAKEN_STORE_KEY_PREVIOUS_FILE:"}},
	} {
		t.Run(s.name, func(t *testing.T) {
			current, previous, err := storeKeysFrom(envMap(s.env).get)
			if len(s.wantErr) > 0 {
				if err == nil {
					t.Fatal("no error")
				}
				for _, w := range s.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				for _, v := range s.env {
					if len(v) > 8 && !strings.HasPrefix(v, dir) && strings.Contains(err.Error(), v[:8]) {
						t.Errorf("error repeats a key: %q", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.wantCurrent == 0 {
				if current != nil {
					t.Fatal("a current key from nowhere")
				}
			} else if !bytes.Equal(current, bytes.Repeat([]byte{s.wantCurrent}, store.KeySize)) {
				t.Fatal("another current key than the one set")
			}
			if len(previous) != len(s.wantPrevious) {
				t.Fatalf("%d previous keys, want %d", len(previous), len(s.wantPrevious))
			}
			for i, seed := range s.wantPrevious {
				if !bytes.Equal(previous[i], bytes.Repeat([]byte{seed}, store.KeySize)) {
					t.Errorf("previous key %d is not the one set", i+1)
				}
			}
		})
	}
}

func TestServeKeyringMissing(t *testing.T) {
	_, err := serveKeyring(envMap{envStoreKeyPrevious: keyText(2)}.get)
	if !errors.Is(err, errNoStoreKey) {
		t.Fatalf("error %v, want errNoStoreKey", err)
	}
	for _, w := range []string{envStoreKey, envStoreKeyFile, "openssl rand -base64 32"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	// serve itself refuses, before touching the store.
	data := filepath.Join(t.TempDir(), "kraken.db")
	err = serve(context.Background(), env{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, getenv: envMap{}.get}, serveSettings{data: data}, serveHooks{})
	if !errors.Is(err, errNoStoreKey) {
		t.Fatalf("serve without a key: %v", err)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("serve without a key made the store: %v", err)
	}
}

// A rotation as an operator does it: the new key, the old one as
// previous; then the new key alone.
func TestOpenStoreRotates(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kraken.db")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	open := func(env envMap) (*store.DB, error) {
		t.Helper()
		ring, err := serveKeyring(env.get)
		if err != nil {
			t.Fatal(err)
		}
		return openStore(ctx, path, ring, log)
	}
	const secret = "rt-rotated-9c1e"
	db, err := open(envMap{envStoreKey: keyText(1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.NewSealedBucket[string](db, "grants").Put(ctx, "U1", secret); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// The key changed and the old one was not kept: refuse to start,
	// saying what to set.
	_, err = open(envMap{envStoreKey: keyText(2)})
	if !errors.Is(err, store.ErrSealed) || !strings.Contains(err.Error(), "set KRAKEN_STORE_KEY_PREVIOUS") {
		t.Fatalf("open with another key: %v, want ErrSealed saying to set KRAKEN_STORE_KEY_PREVIOUS", err)
	}

	logs.Reset()
	db, err = open(envMap{envStoreKey: keyText(2), envStoreKeyPrevious: keyText(1)})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if !strings.Contains(logs.String(), "resealed=1") {
		t.Errorf("the rotation did not log one value re-sealed:\n%s", logs.String())
	}

	logs.Reset()
	db, err = open(envMap{envStoreKey: keyText(2)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _, err := store.NewSealedBucket[string](db, "grants").Get(ctx, "U1"); err != nil || v != secret {
		t.Fatalf("after the rotation: %q %v", v, err)
	}
	if !strings.Contains(logs.String(), "resealed=0") {
		t.Errorf("a start after the rotation re-sealed something:\n%s", logs.String())
	}
}

func TestDevKeyring(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	keyPath := filepath.Join(data, devStoreKeyFile)

	first, err := devKeyring(envMap{}.get, data, log)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(keyPath)
	if err != nil {
		t.Fatalf("no key file generated: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %o, want 600", perm)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "development only") {
		t.Errorf("no warning that the key is for development:\n%s", logs.String())
	}
	text, _ := os.ReadFile(keyPath)
	if strings.Contains(logs.String(), strings.TrimSpace(string(text))) {
		t.Fatal("the generated key is in the log")
	}

	// The next start reuses the key, without a warning: what the first
	// sealed, the second opens.
	path := filepath.Join(data, "kraken.db")
	db, err := store.Open(path, store.Options{Keyring: first})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.NewSealedBucket[string](db, "s").Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	logs.Reset()
	second, err := devKeyring(envMap{}.get, data, log)
	if err != nil {
		t.Fatal(err)
	}
	if logs.Len() > 0 {
		t.Errorf("reusing the key logged:\n%s", logs.String())
	}
	db, err = store.Open(path, store.Options{Keyring: second})
	if err != nil {
		t.Fatal(err)
	}
	if v, _, err := store.NewSealedBucket[string](db, "s").Get(ctx, "k"); err != nil || v != "v" {
		t.Fatalf("the second start does not open the first's secrets: %q %v", v, err)
	}
	db.Close()

	// A key in the environment wins, and nothing is generated.
	other := t.TempDir()
	if _, err := devKeyring(envMap{envStoreKey: keyText(4)}.get, other, log); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(other, devStoreKeyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key was generated though one was set: %v", err)
	}

	// A damaged key file is an error, and stays as it is.
	if err := os.WriteFile(keyPath, []byte("damaged!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := devKeyring(envMap{}.get, data, log); err == nil || !strings.Contains(err.Error(), "store key is not base64") {
		t.Fatalf("damaged key file: %v", err)
	}
	if got, _ := os.ReadFile(keyPath); string(got) != "damaged!\n" {
		t.Fatal("the damaged key file was replaced")
	}
}

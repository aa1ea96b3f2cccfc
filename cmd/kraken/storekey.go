package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/kraken-ops/kraken/store"
)

// Where the store key comes from: the value itself, or a file holding it
// (a mounted Secret). The previous keys, during a rotation, come the same
// way, separated by commas or newlines.
const (
	envStoreKey             = "KRAKEN_STORE_KEY"
	envStoreKeyFile         = "KRAKEN_STORE_KEY_FILE"
	envStoreKeyPrevious     = "KRAKEN_STORE_KEY_PREVIOUS"
	envStoreKeyPreviousFile = "KRAKEN_STORE_KEY_PREVIOUS_FILE"
)

// errNoStoreKey means neither KRAKEN_STORE_KEY nor KRAKEN_STORE_KEY_FILE
// is set.
var errNoStoreKey = fmt.Errorf("neither %s nor %s (a file, such as a mounted Secret) is set: the bot encrypts the secrets it keeps with this key, the base64 of %d random bytes (make one with: openssl rand -base64 %d)",
	envStoreKey, envStoreKeyFile, store.KeySize, store.KeySize)

// storeKeysFrom reads the store keys from the environment: the current
// one (nil when none is set) and the previous ones. Its errors name the
// variable at fault and never hold key material.
func storeKeysFrom(getenv func(string) string) (current []byte, previous [][]byte, err error) {
	s, ok, err := valueOrFile(getenv, envStoreKey, envStoreKeyFile)
	if err != nil {
		return nil, nil, err
	}
	if ok {
		if current, err = store.ParseKey(s); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", storeKeySource(getenv, envStoreKey, envStoreKeyFile), err)
		}
	}
	s, ok, err = valueOrFile(getenv, envStoreKeyPrevious, envStoreKeyPreviousFile)
	if err != nil || !ok {
		return current, nil, err
	}
	for i, field := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		if strings.TrimSpace(field) == "" {
			continue
		}
		key, err := store.ParseKey(field)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: key %d: %w", storeKeySource(getenv, envStoreKeyPrevious, envStoreKeyPreviousFile), i+1, err)
		}
		previous = append(previous, key)
	}
	return current, previous, nil
}

// valueOrFile returns the variable name's value, or the content of the
// file fileName names; ok is false when neither is set.
func valueOrFile(getenv func(string) string, name, fileName string) (string, bool, error) {
	v, file := getenv(name), getenv(fileName)
	switch {
	case v != "" && file != "":
		return "", false, fmt.Errorf("both %s and %s are set; set one", name, fileName)
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return "", false, fmt.Errorf("%s: %w", fileName, err)
		}
		return string(data), true, nil
	case v != "":
		return v, true, nil
	}
	return "", false, nil
}

func storeKeySource(getenv func(string) string, name, fileName string) string {
	if f := getenv(fileName); f != "" {
		return fmt.Sprintf("%s (%s)", fileName, f)
	}
	return name
}

// serveKeyring is the keyring `kraken serve` opens its store with: a
// missing key is an error, since the bot would otherwise keep secrets it
// cannot protect.
func serveKeyring(getenv func(string) string) (*store.Keyring, error) {
	current, previous, err := storeKeysFrom(getenv)
	if err != nil {
		return nil, err
	}
	if current == nil {
		return nil, errNoStoreKey
	}
	return store.NewKeyring(current, previous...)
}

// devStoreKeyFile is where `kraken dev` keeps the key it generated.
const devStoreKeyFile = "store.key"

// devKeyring is the keyring `kraken dev` opens its store with: the
// environment's key if there is one, or else a key generated into the
// data directory on the first run and reused after.
func devKeyring(getenv func(string) string, data string, log *slog.Logger) (*store.Keyring, error) {
	current, previous, err := storeKeysFrom(getenv)
	if err != nil {
		return nil, err
	}
	if current == nil {
		path := filepath.Join(data, devStoreKeyFile)
		var made bool
		if current, made, err = loadOrMakeKey(path); err != nil {
			return nil, err
		}
		if made {
			log.Warn("generated a store key for development only: a real deployment sets "+envStoreKey+" or "+envStoreKeyFile, "file", path)
		}
	}
	return store.NewKeyring(current, previous...)
}

// loadOrMakeKey reads the key in path, or, when there is no such file,
// generates one and writes it there (0600); made says which. A file that
// is there but does not hold a key is an error, never replaced: the
// store's secrets may be sealed with what it held.
func loadOrMakeKey(path string) (key []byte, made bool, err error) {
	data, err := os.ReadFile(path)
	if err == nil {
		if key, err = store.ParseKey(string(data)); err != nil {
			return nil, false, fmt.Errorf("%s: %w (remove it, and the store it protects, to start afresh)", path, err)
		}
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	key = make([]byte, store.KeySize)
	rand.Read(key) // never fails
	// Written whole to a temporary file, then linked into place: a
	// second kraken starting at the same moment reads a complete key, its
	// own or the first one's.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".store.key-*")
	if err != nil {
		return nil, false, fmt.Errorf("store key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("store key: write %s: %w", tmp.Name(), err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return loadOrMakeKey(path)
	} else if err != nil {
		return nil, false, fmt.Errorf("store key: %w", err)
	}
	return key, true, nil
}

// openStore opens the bot's store with ring and re-seals under the
// current key whatever an older key sealed, so a rotation finishes at
// the first start with the new key.
func openStore(ctx context.Context, path string, ring *store.Keyring, log *slog.Logger) (*store.DB, error) {
	db, err := store.Open(path, store.Options{Keyring: ring})
	if err != nil {
		return nil, err
	}
	n, err := db.Rekey(ctx)
	if errors.Is(err, store.ErrSealed) {
		db.Close()
		return nil, fmt.Errorf("%w: the store key changed, and secrets in %s were sealed with a key it does not have; set %s (or %s) to the key the store had",
			err, path, envStoreKeyPrevious, envStoreKeyPreviousFile)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	log.Info("store secrets sealed under the current store key", "resealed", n)
	return db, nil
}
